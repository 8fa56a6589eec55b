"""What an `electra pretrain` command starts from: its command line; the run's config (a fresh run's from the
preset, a config file, the command line and the dataset; a resumed run's from its saved config), the checkpoint
it resumes and the Hugging Face folder it is initialised from, each combination checked before anything is built
or written; and the per-micro-batch seeds and the crash hook that exact resume is tested with.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np

from electra import dist
from electra.checkpoint import check_fresh_out, latest_checkpoint, read_run_json
from electra.config import (
    PRESETS,
    PretrainConfig,
    TrainConfig,
    build_config,
    check_same_shapes,
    config_values,
    field_index,
    file_overrides,
    named_fields,
    split_overrides,
)
from electra.data.dataset import Examples, PretrainData
from electra.data.extend_vocab import added_words
from electra.data.mixture import Mixture
from electra.data.tokenizer import normalisation, read_vocab, vocab_sha256
from electra.errors import ArgumentParser, UserError


def tell(message: str) -> None:
    """A note or warning on stderr, once per run: from rank 0 under torchrun (every rank resolves the run)."""
    if dist.launched_rank() == 0:
        print(f"electra pretrain: {message}", file=sys.stderr)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    overrides, rest = split_overrides(argv)
    p = ArgumentParser(prog="electra pretrain", description="Train a generator and a discriminator jointly with "
                                                            "replaced-token detection.",
                       epilog="Any config field is an option too: --hidden-size 256, --train.lr=5e-4, "
                              "--mask-prob 0.25, ... (see --print-config).")
    p.add_argument("--preset", choices=list(PRESETS),
                   help="the paper's sizes (small, base, large); tiny for CPU; debug: the original's 20-step check")
    p.add_argument("--config", type=Path, help="a JSON config (--print-config output or a run's config.json, whole "
                                                "or in part): on top of the preset, below the command line's fields")
    p.add_argument("--data", type=Path, nargs="+", metavar="DATASET",
                   help="dataset folder written by `electra prepare`; several (same vocabulary and sequence length) "
                        "train on a mix of them, the first one's held-out split evaluated")
    p.add_argument("--data-weights", metavar="W1,W2,...",
                   help="with several --data: each one's share of the training rows (3,1: three quarters from the "
                        "first), or sizes^A (the sizes to the power A: sizes^0.3 lifts the small ones); default: "
                        "their sizes, as if concatenated")
    p.add_argument("--eval-data", type=Path, metavar="DATASET",
                   help="evaluate on this prepared dataset's held-out split instead of --data's (same vocabulary "
                        "and sequence length): your domain's text, say, while training on a mix")
    p.add_argument("--also-eval", type=Path, nargs="+", default=[], metavar="DATASET",
                   help="at each evaluation, also these prepared datasets' held-out splits, logged as "
                        "eval_NAME/... (NAME: the folder's name): each source of a mix, say")
    p.add_argument("--out", type=Path, help="run folder (checkpoints, config, metrics); resumed if it has any")
    p.add_argument("--resume", action="store_true", help="require an existing checkpoint in --out")
    p.add_argument("--init", type=Path, help="start from a Hugging Face ELECTRA folder (continued pre-training, "
                                              "fresh optimizer); the folder decides the architecture")
    p.add_argument("--allow-pickle", action="store_true", help="with --init: accept a pytorch_model.bin (loaded "
                                                               "with torch.load(weights_only=True))")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default, one per "
                                                           "core); bit-for-bit reproduction needs the same count")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project (WANDB_ENTITY, "
                                                       "WANDB_MODE=offline, ... as W&B reads them)")
    args, unknown = p.parse_known_args(rest)
    if unknown:
        import difflib

        guess = difflib.get_close_matches(unknown[0].lstrip("-"), list(field_index()), n=1)
        hint = f" (did you mean --{guess[0]}?)" if guess else ""
        raise UserError(f"unknown option {unknown[0]}{hint}: neither a flag nor a config field; see --help and --print-config")
    if args.config is not None:  # the command line's fields win: they come later
        overrides = {**file_overrides(args.config), **overrides}
    return args, overrides


def data_weights(text: str | None, sizes: list[int]) -> list[float]:
    """--data-weights for datasets of these training sizes: one number per dataset (3,1), or `sizes^A`, the sizes
    to the power A (XLM-R's sampling of languages: A = 0.3 lifts the small ones, 0 = equal shares); default the
    sizes, as if the datasets were one."""
    if text is None:
        return [float(n) for n in sizes]
    if len(sizes) < 2:
        raise UserError(f"--data-weights needs two or more --data datasets, got {len(sizes)}")
    if text.startswith("sizes^"):
        try:
            power = float(text[len("sizes^"):])
        except ValueError:
            raise UserError(f"--data-weights sizes^A takes a number A (sizes^0.3), got {text!r}") from None
        return [float(n) ** power if n else 0.0 for n in sizes]  # an empty dataset: refused by Mixture
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise UserError(f"--data-weights takes numbers separated by commas (3,1) or sizes^A, got {text!r}") from None
    if len(weights) != len(sizes):
        raise UserError(f"--data-weights gives {len(weights)} weights for {len(sizes)} --data datasets; give one each")
    return weights


def resolve_run(args: argparse.Namespace, overrides: dict[str, str], data: PretrainData | None):
    """The run's config, the checkpoint to resume from (None for a fresh run) and, for `--init HF_DIR`,
    the Hugging Face weights to start from (the folder decides the architecture; a resumed run ignores it)."""
    ckpt = latest_checkpoint(args.out) if args.out and (args.out / "checkpoints").exists() else None
    if args.resume and ckpt is None:
        raise UserError(f"--resume: {args.out} has no checkpoint to resume from")
    if ckpt is not None:  # the saved config, with this command's overrides on top (e.g. a longer --max-steps)
        base = read_run_json(args.out, "config.json")
        cfg = build_config(None, overrides, base=base)
        check_same_shapes(PretrainConfig.from_dict(base), cfg.to_dict(), args.out)
        if args.init is not None:
            tell(f"note: {args.out} has checkpoints, so the run resumes from them; --init {args.init} only starts "
                 f"a fresh run")
        if args.preset is not None:
            tell(f"note: {args.out} has checkpoints, so the run resumes with its saved config.json; --preset "
                 f"{args.preset} only sets up a fresh run")
        return cfg, ckpt, None
    if args.out is not None:
        check_fresh_out(args.out)
    given, overrides = overrides, dict(overrides)
    if data is not None:  # the dataset decides sequence length and vocabulary size unless told otherwise
        told = named_fields(overrides)
        for name, value in (("seq_len", data.seq_len), ("vocab_size", data.vocab_size)):
            if name not in told:
                overrides[name] = str(value)
    if args.init is None:
        cfg = build_config(args.preset, overrides)
        if cfg.model.modern:  # said now, not only when the export is refused
            from electra.hf_modern import check_exportable
            try:
                check_exportable(cfg.model, "this run will not export as ModernBertModel")
            except UserError as e:
                tell(f"note: {e}")
        return cfg, None, None
    from electra.hf import load_hf_pretraining
    values = config_values(args.preset, overrides)  # checked once the folder has filled in the architecture
    init = load_hf_pretraining(args.init, values, allow_pickle=args.allow_pickle)
    if data is not None and vocab_sha256(init.vocab_path) != vocab_sha256(data.vocab_path):
        added = added_words(read_vocab(init.vocab_path), read_vocab(data.vocab_path))
        if added is None:
            raise UserError(f"{data.root} was prepared with another vocabulary than {args.init}; prepare it with "
                            f"--vocab {init.vocab_path} so that token ids mean the same thing (or with `electra "
                            f"vocab CORPUS --extend {init.vocab_path}`, which keeps them)")
        tell(f"note: {data.root}'s vocabulary puts {len(added)} new words in {args.init}'s [unused] slots; each "
             f"starts at the mean of the embeddings of the pieces it was split into")
    theirs = normalisation(init.lowercase, init.strip_accents)
    if data is not None and (ours := normalisation(data.lowercase, data.strip_accents)) != theirs:
        tell(f"warning: {data.root} was prepared with {ours} but {args.init}'s tokenizer uses {theirs}; the model "
             f"will see text normalised otherwise than in its training. Prepare the data again "
             f"{prepare_flags(init.lowercase, init.strip_accents)}")
    check_same_shapes(PretrainConfig.from_dict(init.cfg), values, args.init, told=given)  # what the user asked for
    return PretrainConfig.from_dict(init.cfg), None, init


def prepare_flags(lowercase: bool, strip_accents: bool | None) -> str:
    """How to call `electra prepare` for a dataset of this normalisation (lower-casing is its default)."""
    how = "without --no-lowercase" if lowercase else "with --no-lowercase"
    if strip_accents is not None:
        how += f" and with --{'' if strip_accents else 'no-'}strip-accents"
    return how


def check_dataset(args: argparse.Namespace, cfg: PretrainConfig, data: PretrainData, resumed: bool) -> None:
    """The dataset fits the run: its example length, a vocabulary the model covers and, for a resumed run, the
    vocabulary the run was trained with."""
    T = cfg.train.seq_len
    if T != data.seq_len:
        raise UserError(f"the run in {args.out} trains on {T}-token examples but {data.root} now holds "
                        f"{data.seq_len}-token ones (prepared again?); resume with data prepared with --seq-len {T}"
                        if resumed else f"train.seq_len={T} but {data.root} holds {data.seq_len}-token examples; "
                        f"prepare the data with --seq-len {T} or drop the override")
    if cfg.model.vocab_size < data.vocab_size:
        raise UserError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the dataset's vocabulary ({data.vocab_size})")
    if resumed:
        recorded = read_run_json(args.out, "tokenizer.json", require="vocab_sha256")["vocab_sha256"]
        if recorded != (have := vocab_sha256(data.vocab_path)):
            raise UserError(f"{data.root} was built with a different vocabulary than the run in {args.out} "
                            f"(vocab sha256 {have[:12]} vs {recorded[:12]}); use the run's dataset")


def check_step_modes(t: TrainConfig, cuda: bool, world_size: int, n_micro: int, unpad: bool) -> None:
    """The step modes that cannot go together, refused before anything is built."""
    if t.compile and t.compile_mode == "step-graph" and (not cuda or world_size > 1 or n_micro > 1 or unpad
                                                          or t.precision == "fp16"):
        raise UserError("--compile-mode step-graph records one whole optimizer step as a CUDA graph: it needs one "
                        "CUDA device in one process, one micro-step per step (--micro-batch-size = "
                        "--global-batch-size), padded encoders (--unpad auto or off) and no fp16 loss scaling (its "
                        "overflow check waits for the GPU); use reduce-overhead otherwise")
    if t.precision == "fp16" and t.parallel == "fsdp" and world_size > 1:
        raise UserError("--precision fp16 is not available with --parallel fsdp; use --parallel ddp, or bf16 on GPUs "
                        "that have it")


def held_out_of(path: Path, data: PretrainData, what: str) -> PretrainData:
    """The dataset at `path` for its held-out split (--eval-data, --also-eval), checked like `like` and to have one."""
    other = like(PretrainData(path), data, what)
    if len(other.valid) == 0:
        raise UserError(f"{what} {path} has no held-out examples; prepare it with --valid-fraction above 0")
    return other


def like(other: PretrainData, data: PretrainData, what: str) -> PretrainData:
    """`other`, checked to hold the same vocabulary and sequence length as `data` (the first --data)."""
    if vocab_sha256(other.vocab_path) != vocab_sha256(data.vocab_path):
        raise UserError(f"{what} {other.root} was prepared with another vocabulary than --data {data.root}; "
                        f"prepare it with --vocab {data.vocab_path}")
    if other.seq_len != data.seq_len:
        raise UserError(f"{what} {other.root} holds {other.seq_len}-token examples, --data {data.root} "
                        f"{data.seq_len}-token ones; prepare it with --seq-len {data.seq_len}")
    return other


def training_rows(args: argparse.Namespace, datasets: list[PretrainData]) -> Examples | Mixture:
    """What the run trains on: one dataset's training split, or several mixed at --data-weights (default: their
    sizes) shares (data/mixture.py)."""
    weights = data_weights(args.data_weights, [len(x.train) for x in datasets])
    if len(datasets) == 1:
        return datasets[0].train
    for other in datasets[1:]:
        like(other, datasets[0], "--data")
    return Mixture([x.train for x in datasets], weights, [str(x.root) for x in datasets])


def held_out_data(args: argparse.Namespace, data: PretrainData, resumed: bool = False) -> PretrainData:
    """The dataset whose held-out split the run evaluates on: --eval-data's, checked against --data, or --data.
    A resume that evaluates elsewhere than the run did (recorded in tokenizer.json) is told so: its curves jump."""
    held = data if args.eval_data is None else held_out_of(args.eval_data, data, "--eval-data")
    before = read_run_json(args.out, "tokenizer.json").get("eval_dataset") if resumed else None
    if isinstance(before, str) and Path(before).resolve() != held.root.resolve():
        tell(f"warning: the run in {args.out} evaluated on {before}'s held-out split and now evaluates on "
             f"{held.root}'s, so its held-out curves change here; pass --eval-data {before} to keep them")
    return held


def extra_held_out(args: argparse.Namespace, data: PretrainData) -> dict[str, PretrainData]:
    """--also-eval: {metric prefix: dataset}, each checked like --eval-data; the prefix is eval_FOLDER (eval_FOLDER_2
    for a second folder of the same name)."""
    extra: dict[str, PretrainData] = {}
    for path in args.also_eval:
        other = held_out_of(path, data, "--also-eval")
        base = "eval_" + re.sub(r"\W", "_", other.root.resolve().name)
        name, k = base, 2
        while name in extra:
            name, k = f"{base}_{k}", k + 1
        extra[name] = other
    return extra


def micro_seed(seed: int, step: int, index: int) -> int:
    """One seed per (run seed, optimizer step, global micro-batch index): dropout, masking and sampling
    draw from it, so a resumed or re-sharded run draws exactly what an uninterrupted one would."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1, np.uint64)[0] >> 1)


def inject_fault(step: int, rank: int) -> None:
    """Test hook for crash recovery: ELECTRA_FAULT_AT_STEP=S[:R] SIGKILLs rank R (default all) right after
    step S, on a first attempt only (torchrun's restarts set TORCHELASTIC_RESTART_COUNT > 0)."""
    spec = os.environ.get("ELECTRA_FAULT_AT_STEP")
    if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    at, _, who = spec.partition(":")
    if step == int(at) and (not who or int(who) == rank):
        os.kill(os.getpid(), signal.SIGKILL)
