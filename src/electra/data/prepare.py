"""`electra prepare`: corpus -> tokenized, packed, sharded pre-training examples (spec 2.1).

    electra prepare CORPUS... --vocab VOCAB.txt --seq-len 128 --out DATASET_DIR [--workers N]

Plan: expand and detect the inputs, group consecutive files into work units of about `--unit-mb`
MB, give each unit a key (hash of inputs, vocab and settings), build the units whose shard is not
already finished (in parallel processes when `--workers` > 1), delete shards of older plans, copy
the vocab, and write `meta.json` last. A dataset is complete exactly when `meta.json` exists; it is
removed before anything else changes, so an interrupted re-run never leaves a stale one behind.
The output is byte-identical whatever the number of workers and however often the run was killed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from electra.data.args import add_corpus_arg, add_text_args, corpus_format
from electra.data.corpus import DEFAULT_MAX_LINE_BYTES
from electra.data.dedup import SHINGLE, fingerprint_unit, mark_repeats
from electra.data.inputs import CorpusFile, default_warn, file_bytes_estimate, resolve_corpus
from electra.data.pipeline import Settings, Unit, _init_worker, build_unit, build_unit_in_worker
from electra.data.report import dedup_flags, summary, unk_hint, unk_share
from electra.data.shards import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SPLITS,
    atomic_write_bytes,
    dump_json,
    foreign,
    fsync_dir,
    lock_folder,
    read_shard_info,
    token_dtype,
)
from electra.data.tokenizer import SPECIAL_TOKENS, VocabFile
from electra.errors import ArgumentParser, UserError

META = "meta.json"
# What `prepare` writes into --out besides meta.json and vocab.txt: finished shards, and the temporary folders and
# files of a write in progress (`.tmp-<name>-<pid>`). Anything else there is the user's and is never touched.
_SHARD = r"shard-\d{5,}-[0-9a-f]{16}"  # Unit.name
_OWN = re.compile(rf"{_SHARD}|\.tmp-({_SHARD}|meta\.json|vocab\.txt)-\d+")
# Warn when more of the corpus's word pieces than this are [UNK]: the vocabulary does not fit the text.
UNK_WARN_FRACTION = 0.02
# Test hook: SIGKILL this process right after the N-th shard of the run is committed.
KILL_HOOK_ENV = "ELECTRA_PREPARE_KILL_AFTER_SHARDS"


def plan_units(files: Sequence[CorpusFile], unit_bytes: int, base: dict[str, Any]) -> list[Unit]:
    """Group consecutive files into units of >= unit_bytes (estimated raw text) and key each one."""
    groups: list[list[CorpusFile]] = [[]]
    size = 0
    for cf in files:
        if groups[-1] and size >= unit_bytes:
            groups.append([])
            size = 0
        groups[-1].append(cf)
        size += file_bytes_estimate(cf)
    units = []
    for i, g in enumerate(groups):
        key = hashlib.sha256(dump_json({**base, "unit": i, "inputs": [f.identity() for f in g]})).hexdigest()
        units.append(Unit(index=i, files=tuple(g), key=key))
    return units


def _ours(p: Path) -> bool:
    if p.name in (META, "vocab.txt", ".lock"):
        return True
    # an entry renamed away meanwhile (a concurrent prepare committing its shard) was ours too: the lock then says so
    return _OWN.fullmatch(p.name) is not None and (
        not p.exists() or p.is_dir() == p.name.startswith((".tmp-shard-", "shard-")))


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the dataset")
    if out.is_dir():
        others = [p.name for p in out.iterdir() if not _ours(p)]
        if others:
            raise UserError(f"--out {out} contains {foreign(others)} not an electra dataset; give an empty or new "
                            f"folder")


def _sum_counts(infos: Sequence[dict]) -> dict[str, Any]:
    total: dict[str, Any] = {s: {} for s in SPLITS}
    read: dict[str, int] = {}
    for info in infos:
        for s in SPLITS:
            for k, v in info["counts"][s].items():
                total[s][k] = total[s].get(k, 0) + v
        for k, v in info["read"].items():
            read[k] = read.get(k, 0) + v
    # A counter that shards built by an older version lack (`unk_tokens`) would be a partial sum: left out.
    read = {k: v for k, v in read.items() if all(k in info["read"] for info in infos)}
    return {**total, **read}


def _check_settings(settings: Settings) -> None:
    if settings.seq_len < 5:
        raise UserError(f"--seq-len {settings.seq_len} is too small; use at least 5 (128 or 512 as in ELECTRA)")
    for name in ("single_segment_prob", "short_seq_prob", "valid_fraction"):
        v = getattr(settings, name)
        if not 0.0 <= v <= 1.0:
            raise UserError(f"--{name.replace('_', '-')} {v} must be between 0 and 1")
    if not 0.0 <= settings.near_dup <= 1.0:
        raise UserError(f"--near-dup {settings.near_dup:g} must be a Jaccard similarity between 0 and 1 "
                        f"(0.8 is usual: documents sharing 80% of their 5-word shingles)")
    if settings.max_line_bytes < 4:  # the longest UTF-8 character: a split never cuts one
        raise UserError(f"--max-line-bytes {settings.max_line_bytes} must be at least 4 (the default is "
                        f"{DEFAULT_MAX_LINE_BYTES})")
    if settings.seq_len > 512:  # allowed: a model with a longer position table can take them
        default_warn(f"--seq-len {settings.seq_len} is longer than the presets' 512 positions; pre-train it "
                     f"with --max-position-embeddings {settings.seq_len} or more")


def _has_bytes(path: Path, data: bytes) -> bool:
    return path.is_file() and path.read_bytes() == data


def _up_to_date(out: Path, dataset_key: str, units: Sequence[Unit],
                vocab: VocabFile) -> dict[str, Any] | None:
    """The metadata of a complete dataset in `out` that this plan would rebuild identically, else None."""
    try:
        old = json.loads((out / META).read_text())
    except ValueError:
        return None
    if (isinstance(old, dict) and old.get("key") == dataset_key and all(read_shard_info(out / u.name) for u in units)
            and _has_bytes(out / "vocab.txt", vocab.data)):
        return old
    return None


def _replaced_settings(out: Path, base: dict[str, Any], files: Sequence[CorpusFile], unit_mb: float) -> list[str]:
    """What a finished dataset in `out` was prepared with that this run changes (vocab, settings, --unit-mb, an input
    file's format, input files left out): rebuilding it would leave the runs trained on it unable to resume. Edited
    and added input files are not in the list. Empty when nothing differs or the old meta is unreadable."""
    try:
        old = json.loads((out / META).read_text())
        before = {"vocab": old["vocab_sha256"][:12], **old["settings"], "unit_mb": old.get("unit_mb", unit_mb)}
        old_formats = {i["path"]: i["fmt"] for i in old["inputs"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    after = {"vocab": base["vocab_sha256"][:12], **base["settings"], "unit_mb": unit_mb}
    changes = [f"{k} {before.get(k, '(default)')} -> {after.get(k, '(default)')}"
               for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    formats = {str(f.path): f.fmt for f in files}
    changes += [f"format of {p} {fmt} -> {formats[p]}" for p, fmt in old_formats.items()
                if p in formats and formats[p] != fmt][:3]
    dropped = [p for p in old_formats if p not in formats]
    if dropped:
        changes.append(f"{len(dropped)} input file(s) left out, such as {dropped[0]}")
    return changes


def _finished_shards(out: Path, units: Sequence[Unit]) -> tuple[dict[int, dict], list[Unit]]:
    """Infos of the units whose shard is already finished with the same key, and the units still to build."""
    infos: dict[int, dict] = {}
    todo = []
    for u in units:
        info = read_shard_info(out / u.name)
        if info is not None and info.get("key") == u.key:
            infos[u.index] = info
        else:
            todo.append(u)
    return infos, todo


def _pool(workers: int) -> ProcessPoolExecutor:
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(threads, os.getpid()))


def _without_repeats(units: Sequence[Unit], settings: Settings, workers: int, log: Callable[[str], None]) -> list[Unit]:
    """--dedup / --near-dup: the units, each with the documents to leave out and that list's digest in its key
    (dedup.py)."""
    t0, args, workers = time.time(), [(u, settings) for u in units], max(1, min(workers, len(units)))
    if workers == 1:
        prints = [fingerprint_unit(a) for a in args]
    else:
        with _pool(workers) as pool:
            try:
                prints = list(pool.map(fingerprint_unit, args))
            except BrokenProcessPool:
                raise UserError("a --workers process died during the duplicate pass (killed, or out of memory?); "
                                "re-run, with fewer --workers if memory is short") from None
    marked, n = mark_repeats(units, prints, settings.dedup, settings.near_dup)
    flags = dedup_flags(settings.as_dict())
    nearly = (f" or nearly (MinHash of {SHINGLE}-word shingles, agreement >= {settings.near_dup:g})"
              if settings.near_dup else "")
    log(f"{flags}: {n} of {sum(len(p.exact) for p in prints)} documents repeat an earlier one{nearly} and are "
        f"left out ({time.time() - t0:.1f}s)")
    return marked


def _build_units(todo: Sequence[Unit], settings: Settings, vocab: VocabFile, out: Path, dtype: np.dtype,
                 batch_lines: int, workers: int, committed: Callable[[dict], None]) -> None:
    """Build the shards of `todo`, calling `committed` with each one's info in unit order."""
    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        for u in todo:
            committed(build_unit(u, settings, vocab.tokens, out, dtype, batch_lines))
    elif todo:
        with _pool(workers) as pool:
            args = [(u, settings, vocab.tokens, out, dtype, batch_lines) for u in todo]
            try:
                for info in pool.map(build_unit_in_worker, args):
                    committed(info)
            except BrokenProcessPool:
                raise UserError("a --workers process died (killed, or out of memory?); the finished shards are "
                                "kept: re-run to resume, with fewer --workers if memory is short") from None


def _meta(base: dict[str, Any], dataset_key: str, unit_mb: float, vocab: VocabFile, files: Sequence[CorpusFile],
          units: Sequence[Unit], infos: dict[int, dict], counts: dict[str, Any]) -> dict[str, Any]:
    vocab_meta = {"file": "vocab.txt", "sha256": vocab.sha256, "size": len(vocab.tokens),
                  "special": vocab.special._asdict(), "special_tokens": list(SPECIAL_TOKENS)}
    return {**base, "key": dataset_key, "unit_mb": unit_mb, "vocab": vocab_meta,
            "inputs": [f.identity() for f in files],
            "shards": [{"name": u.name, **{s: infos[u.index]["counts"][s]["examples"] for s in SPLITS}}
                       for u in units],
            "counts": counts}


def prepare(corpus: Sequence[str | Path], vocab: str | Path, out: str | Path, settings: Settings,
            workers: int = 1, fmt: str | None = None, unit_mb: float = 64.0, batch_lines: int = 4096,
            log: Callable[[str], None] = print, run_info: dict[str, int] | None = None,
            overwrite: bool = False) -> dict[str, Any]:
    """Build (or finish, or confirm) the dataset in `out`; returns its metadata. A finished dataset of another
    vocab or other settings is replaced only with `overwrite` (changed input files just rebuild their shards).

    `run_info`, if given, receives {"built": shards built now, "reused": shards kept}."""
    run_info = {} if run_info is None else run_info
    run_info.update(built=0, reused=0)
    _check_settings(settings)
    if not 0 < unit_mb < float("inf"):
        raise UserError(f"--unit-mb {unit_mb} must be a positive number of MB (the default is 64)")
    if batch_lines < 1:
        raise UserError(f"--batch-lines {batch_lines} must be at least 1 (the default is 4096)")
    vocab_file = VocabFile.read(vocab)  # the only read of the vocab: everything below uses these bytes
    dtype = token_dtype(len(vocab_file.tokens))
    out = Path(out)
    # An --out folder inside a corpus folder must not be read back as corpus on a re-run.
    files = resolve_corpus(corpus, fmt, exclude=out)
    base = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "vocab_sha256": vocab_file.sha256,
            "dtype": dtype.name, "settings": settings.as_dict()}
    units = plan_units(files, int(unit_mb * (1 << 20)), base)
    if settings.dedup or settings.near_dup:
        units = _without_repeats(units, settings, workers, log)
    dataset_key = hashlib.sha256("".join(u.key for u in units).encode()).hexdigest()
    _check_out_dir(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(out, "prepare", note_pid=False)
    try:
        meta_path = out / META
        if meta_path.exists():
            old = _up_to_date(out, dataset_key, units, vocab_file)
            if old is not None:
                log(f"{out} is up to date ({old['counts']['train']['examples']} train examples); nothing to do")
                run_info["reused"] = len(units)
                return old
            changes = _replaced_settings(out, base, files, unit_mb)
            if changes and not overwrite:
                raise UserError(f"{out} holds a dataset prepared otherwise ({'; '.join(changes)}); runs trained on "
                                f"it could not resume with it: give another --out, or pass --overwrite to replace it")
            meta_path.unlink()  # the dataset is about to change: it must not look complete meanwhile
            fsync_dir(out)
        for p in out.glob(".tmp-*"):  # leftovers of a killed run
            if _ours(p):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        infos, todo = _finished_shards(out, units)
        run_info.update(built=len(todo), reused=len(infos))
        if infos:
            log(f"reusing {len(infos)} finished shard(s) of {len(units)}")
        t0 = time.time()
        kill_after = int(os.environ.get(KILL_HOOK_ENV, "0") or 0)
        done = [0]

        def committed(info: dict) -> None:
            infos[info["unit"]] = info
            done[0] += 1
            c = info["counts"]["train"]
            log(f"shard {info['unit'] + 1}/{len(units)}: {c['examples']} train examples, {c['tokens']} tokens "
                f"({time.time() - t0:.1f}s)")
            for w in info.get("warnings", []):
                default_warn(w)
            if kill_after and done[0] >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        _build_units(todo, settings, vocab_file, out, dtype, batch_lines, workers, committed)
        wanted = {u.name for u in units}
        for p in out.glob("shard-*"):
            if p.name not in wanted and _ours(p):
                shutil.rmtree(p)
        counts = _sum_counts([infos[u.index] for u in units])
        if counts["train"]["examples"] == 0:
            for u in units:
                shutil.rmtree(out / u.name, ignore_errors=True)
            hint = " (all of it went to the validation split: lower --valid-fraction)" if counts["valid"]["examples"] else ""
            raise UserError(f"the corpus {' '.join(map(str, corpus))} is too small to make one training example"
                            f"{hint}; give more text")
        unk = unk_share(counts) or 0.0
        if unk > UNK_WARN_FRACTION:
            default_warn(f"{100 * unk:.1f}% of the corpus's word pieces are [UNK]; {unk_hint(counts, settings.lowercase, vocab_file.tokens)}")
        if counts["valid"]["examples"] == 0 and settings.valid_fraction > 0:
            default_warn(f"no validation examples ({counts['documents']} documents); raise --valid-fraction "
                         "for a held-out split")
        if not _has_bytes(out / "vocab.txt", vocab_file.data):
            atomic_write_bytes(out / "vocab.txt", vocab_file.data)
        meta = _meta(base, dataset_key, unit_mb, vocab_file, files, units, infos, counts)
        atomic_write_bytes(meta_path, dump_json(meta))  # last: from now on the dataset is complete
        return meta
    except BaseException:
        # Nothing worth keeping from a failed first run except finished shards (reused next time).
        if created and not (out / META).exists() and not any(out.glob("shard-*")):
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        os.close(lock)


def default_workers() -> int:
    # The Rust tokenizer already uses every core inside one process; extra processes only help
    # when there are many cores (measured on 2 cores: 1 process with 2 threads is as fast).
    return max(1, (os.cpu_count() or 1) // 4)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="electra prepare", description=__doc__.split("\n\n")[0])
    add_corpus_arg(p)
    p.add_argument("--vocab", required=True, help="BERT-style vocab.txt (from `electra vocab` or BERT's)")
    p.add_argument("--out", required=True, help="dataset folder to create (or finish)")
    p.add_argument("--seq-len", type=int, default=128, help="max_seq_length (128 small, 512 base/large)")
    p.add_argument("--workers", type=int, default=default_workers(), help="parallel processes")
    add_text_args(p)
    p.add_argument("--single-segment-prob", type=float, default=0.1, help="ELECTRA: 0.1")
    p.add_argument("--short-seq-prob", type=float, default=0.05, help="random short target length (ELECTRA: 0.05)")
    p.add_argument("--valid-fraction", type=float, default=0.01, help="fraction of documents held out")
    p.add_argument("--seed", type=int, default=12345, help="seed of all random draws (output is reproducible)")
    p.add_argument("--unit-mb", type=float, default=64.0, help="raw MB of input per shard (resume granularity; "
                   "part of the dataset: another value builds other examples)")
    p.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES, help="longer lines are split")
    p.add_argument("--blanks-separate-docs", action=argparse.BooleanOptionalAction, default=True,
                   help="a blank line ends a document (ELECTRA's default); --no-blanks-separate-docs: each text "
                        "file or JSON record is one document, as the original's OpenWebText builder (a page a file)")
    p.add_argument("--dedup", action="store_true", help="leave out every document whose text repeats an earlier "
                   "one exactly (the first is kept), across all input files; a hash pass reads the corpus first")
    p.add_argument("--near-dup", type=float, default=0.0, metavar="J", help="also leave out documents that nearly "
                   "repeat an earlier one: Jaccard similarity of their 5-word shingles (lower-cased) at least J, "
                   "estimated by MinHash (0.8 is usual; 0: off); a MinHash pass reads the corpus first")
    p.add_argument("--batch-lines", type=int, default=4096, help="lines per tokenizer batch")
    p.add_argument("--overwrite", action="store_true", help="replace a finished dataset in --out that was prepared "
                   "with another vocab, other settings or fewer input files (edited or added files never need it)")
    p.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    if a.workers < 1:
        raise UserError(f"--workers {a.workers} must be at least 1")
    settings = Settings(seq_len=a.seq_len, lowercase=a.lowercase, strip_accents=a.strip_accents,
                        single_segment_prob=a.single_segment_prob, short_seq_prob=a.short_seq_prob, seed=a.seed,
                        valid_fraction=a.valid_fraction, text_field=a.text_field, max_line_bytes=a.max_line_bytes,
                        blanks_separate_docs=a.blanks_separate_docs, dedup=a.dedup,
                        near_dup=a.near_dup)
    t0 = time.time()
    log = (lambda *_: None) if a.quiet else (lambda m: print(m, file=sys.stderr))
    info: dict[str, int] = {}
    meta = prepare(a.corpus, a.vocab, a.out, settings, workers=a.workers, fmt=corpus_format(a),
                   unit_mb=a.unit_mb, batch_lines=a.batch_lines, log=log, run_info=info, overwrite=a.overwrite)
    if not a.quiet:
        # Throughput only means something when every shard was built by this run.
        seconds = time.time() - t0 if info["built"] and not info["reused"] else None
        print(f"dataset {a.out}:\n{summary(meta, seconds)}")
    return 0
