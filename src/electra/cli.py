"""The `electra` command: one subcommand per job, each owned by its module.

    electra vocab CORPUS... --vocab-size 30522 --out DIR
    electra prepare CORPUS... --vocab VOCAB.txt --seq-len 128 --out DATASET_DIR
    electra inspect DATASET_DIR [--rows 5 --mask]
    electra pretrain --preset tiny --data DATASET_DIR --out RUN_DIR
    electra detect --model RUN_DIR "some text"
    electra finetune --task sst2 --data GLUE_DIR --model RUN_DIR --out OUT_DIR
    electra predict --model OUT_DIR/model "some text" [--input FILE] [--output FILE]
    electra export RUN_DIR OUT_DIR

Each entry point is `main(argv) -> int` and parses its own arguments; modules are imported lazily so
`electra --help` is instant and a missing optional dependency only affects the command that needs it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import functools
import importlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from electra.errors import Terminated, UserError

COMMANDS: dict[str, tuple[str, str]] = {
    "vocab": ("electra.data.vocab", "train a WordPiece vocabulary on a corpus"),
    "prepare": ("electra.data.prepare", "tokenize a corpus into packed, sharded pre-training examples"),
    "inspect": ("electra.inspect_data", "show what a prepared dataset holds: lengths, segments, rows decoded, masking"),
    "pretrain": ("electra.pretrain", "pre-train a generator and discriminator with replaced-token detection"),
    "detect": ("electra.detect", "show which tokens of a sentence the discriminator thinks were replaced"),
    "finetune": ("electra.finetune.cli", "fine-tune and evaluate on GLUE, SQuAD, token tagging or your own data"),
    "predict": ("electra.finetune.predict", "run a fine-tuned model on new text (labels, scores, tags, answers)"),
    "export": ("electra.hf", "export a run to Hugging Face transformers folders"),
    "evaluate": ("electra.evaluate_run", "a checkpoint's held-out numbers on any prepared dataset"),
    "status": ("electra.status", "where a pre-training run (progress, ETA, metrics, alerts) or a fine-tuning stands"),
}


LONG_RUNNING = ("pretrain", "finetune")
PACKAGE = Path(__file__).resolve().parent


def tune_allocator() -> bool:
    """glibc: serve no allocation by mmap and never trim the heap, so the large activation buffers freed at
    the end of a training step are reused by the next one instead of being unmapped and page-faulted again
    (1.2x tokens/s for ELECTRA-Small on CPU, no extra peak memory; benchmarks/results/pretrain_*). The same
    as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11, which glibc only reads at process start. Opt out with
    ELECTRA_MALLOC=default; a user's own MALLOC_* settings are left alone."""
    if os.environ.get("ELECTRA_MALLOC") == "default" or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 100_000_000_000))
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False


def usage() -> str:
    lines = ["usage: electra COMMAND [options]   (electra COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<10} {doc}" for name, (_, doc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        near = difflib.get_close_matches(name, COMMANDS, n=1)
        print(f"electra: unknown command {name!r}{f'; did you mean {near[0]!r}?' if near else ''} (`electra --help` "
              f"lists them: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    if name in LONG_RUNNING:
        tune_allocator()
    formatted, terminate = warnings.formatwarning, signal.getsignal(signal.SIGTERM)
    unwinds = name not in ("pretrain", "prepare") and threading.current_thread() is threading.main_thread()
    warnings.formatwarning = functools.partial(format_warning, name, formatted)
    # SIGTERM (kill, a job's time limit) as an exception, as Ctrl-C is: cleanups run, no staging folder is left
    # behind. Not for pretrain, which stops at the end of its step itself (and under torchrun must die at once),
    # nor for prepare, whose worker processes would finish the whole build before the pool let it unwind (its
    # shards are committed atomically and its workers end with it).
    if unwinds:
        signal.signal(signal.SIGTERM, raise_terminated)
    try:
        module = importlib.import_module(COMMANDS[name][0])  # inside: a Ctrl-C while torch loads is one line too
        code = int(module.main(rest) or 0)
        sys.stdout.flush()  # a buffered stdout meets a closed pipe here, not in the interpreter's final flush
        return code
    except UserError as e:
        print(f"electra {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"electra {name}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"electra {name}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # `electra detect ... | head`: the reader has gone, as a shell pipeline expects
        quiet_stdout()
        return 128 + 13  # the status of a process ended by SIGPIPE
    except OSError as e:  # a file or folder the command could not read or write (a path under a file, a full disk)
        where = f" {e.filename!r}" if e.filename else ""
        print(f"electra {name}: error: cannot use{where}: {e.strerror or e}; check the path and its permissions",
              file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatted
        if unwinds:
            signal.signal(signal.SIGTERM, terminate)


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def format_warning(command: str, default: Callable[..., str], message: Warning | str, category: type[Warning],
                   filename: str, lineno: int, line: str | None = None) -> str:
    """A warning this package raises (a note on what `--init` loaded, say) as one line addressed to the user, like
    its errors; other libraries' warnings as Python formats them, with their source location. (Formatting, not
    showing: a caller that records warnings, as pytest.warns does, still gets them.)"""
    if Path(filename).resolve().is_relative_to(PACKAGE):
        return f"electra {command}: warning: {message}\n"
    return default(message, category, filename, lineno, line)


def quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
