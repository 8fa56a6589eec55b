"""`electra finetune`: fine-tune and evaluate a model on GLUE, SQuAD, token tagging or your own data (electra-spec 3).

    electra finetune --task sst2 --data GLUE_DIR --model RUN_DIR --out OUT_DIR [--seeds N] [--epochs E]
                     [--lr 1e-4] [--weight-decay 0.01] [--max-train-examples N] [--max-seq-len T] ...
    electra finetune --task glue ...        all eight GLUE tasks, one after the other, plus the GLUE score
    electra finetune --print-config         every recipe field with its default

--task takes one name or a comma-separated list (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, squad1,
squad2, conll2003, chunk; `glue` = the eight GLUE tasks; your own data: classify, regress (custom.py), tag).
--model is an `electra pretrain` run folder or a Hugging Face ELECTRA folder (both read by
checkpoint.load_discriminator). --random-init keeps the
model's shape and vocabulary but re-initialises the encoder: the "no pre-training" baseline.

Output (one task): OUT/results.json (resolved config, per-seed dev metrics, median / mean / std),
OUT/model/ (the best seed's weights: model.safetensors with encoder.* / head.*, finetune.json, vocab.txt),
OUT/test_predictions/ (GLUE leaderboard files from the best seed, when the folder has test files).
Several tasks: the same under OUT/<task>/, and OUT/results.json with every task and the GLUE score; with GLUE
test files, OUT/glue_submission.zip holds every leaderboard file (AX from the MNLI model, WNLI's majority class).
A re-run of a stopped (or finished) command trains only what did not finish: the missing seeds, a stopped
seed from its last saved state (progress.py; --fresh: all). SIGTERM, Ctrl-C and --max-time save the seed in
training at the end of its step. Before the model is loaded, --out (not a file, not the --data or --model folder) and every task's
folder, training, dev and test files are read and checked: a bad one stops the run before any task is trained.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from electra.checkpoint import atomic_write_text
from electra.data.shards import lock_folder, staged_dir
from electra.dist import pick_device
from electra.errors import ArgumentParser, UserError
from electra.finetune.config import FinetuneConfig, build_config, split_overrides
from electra.finetune.custom import CUSTOM_TASKS, check_custom, custom_job
from electra.finetune.glue import GLUE_TASKS, check_glue, glue_job
from electra.finetune.metrics import GLUE_SCORE_METRIC, glue_score, summarize
from electra.finetune.outputs import (
    ALL_TASKS,
    check_out,
    clear_results,
    other_results,
    task_folder,
    task_outs,
)
from electra.finetune.progress import Progress, fingerprint_facts, model_digest
from electra.finetune.seeds import best_model, run_seeds
from electra.finetune.squad import SQUAD_TASKS, check_squad, squad_job
from electra.finetune.submission import SUBMISSION_FILES, wnli_predictions, write_submission
from electra.finetune.tagging import TAGGING_TASKS, check_tagging, tagging_job
from electra.finetune.train import Job, TimeUp, predict, save_model
from electra.model_card import pretraining_summary
from electra.overrides import parse_duration
from electra.precision import autocast_dtype


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, FinetuneConfig]:
    overrides, rest = split_overrides(argv)
    recipe = "  ".join(f"--{f.name.replace('_', '-')} {f.default}" for f in dataclasses.fields(FinetuneConfig))
    p = ArgumentParser(prog="electra finetune", description=__doc__.split("\n\n")[0],
                                epilog=f"recipe fields, as --field VALUE (0 = automatic; see docs/finetune.md): {recipe}")
    p.add_argument("--task", help=f"one of {', '.join(ALL_TASKS)}, 'glue', or a comma-separated list")
    p.add_argument("--data", type=Path, help="GLUE root (holding SST-2/ ...) or the task's own folder (your own data: "
                   "the folder holding train.csv and dev.csv, or .tsv, .jsonl, .parquet; dev.* also as validation.*, "
                   "a Hub dataset's shard files as downloaded; tag: train.txt / dev.txt)")
    p.add_argument("--model", type=Path, help="an `electra pretrain` run folder or a Hugging Face ELECTRA folder")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--seeds", type=int, default=1, help="fine-tuning runs per task (the paper reports the median of 10)")
    p.add_argument("--random-init", action="store_true", help="same shape and vocab as --model, random weights")
    p.add_argument("--allow-pickle", action="store_true",
                   help="accept a Hugging Face pytorch_model.bin (loaded with torch.load(weights_only=True))")
    p.add_argument("--no-save-model", action="store_true", help="do not write OUT/model/ (an earlier one is removed)")
    p.add_argument("--max-time", metavar="DURATION", help="stop cleanly after this long (3600, 90m, 6h: a job's "
                   "time limit), the seed in training saved at the end of its step; re-run the command to go on")
    p.add_argument("--fresh", action="store_true", help="train every seed again (by default a re-run of the same "
                   "command, or one with more --seeds, reuses the seeds an earlier run finished)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of another task (or task list) that an earlier run left in --out")
    p.add_argument("--print-config", action="store_true", help="print the recipe fields and defaults, then exit")
    p.add_argument("--wandb", metavar="PROJECT", help="also log each seed's training curve and dev scores to this "
                                                       "Weights & Biases project (one W&B run per task and seed)")
    args, unknown = p.parse_known_args(rest)
    if unknown:
        raise UserError(f"unknown option(s) {' '.join(unknown)} (see `electra finetune --help` and --print-config)")
    args.grid = grid_points(overrides)
    cfg = build_config(overrides)
    if args.print_config:
        return args, cfg
    for name in ("task", "data", "model", "out"):
        if getattr(args, name) is None:
            raise UserError(f"--{name} is required")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    args.deadline = None
    if args.max_time is not None:
        seconds = parse_duration(args.max_time, "--max-time")
        if seconds <= 0:
            raise UserError(f"--max-time must be positive, got {args.max_time!r}")
        args.deadline = time.time() + seconds
    if args.wandb is not None:
        from electra.logs import require_wandb
        require_wandb(args.wandb, "the log lines and results.json are always written")
    return args, cfg


def task_names(spec: str) -> list[str]:
    names: list[str] = []
    for name in spec.replace(" ", "").lower().split(","):
        if name == "glue":
            names += list(GLUE_TASKS)
        elif name in ALL_TASKS:
            names.append(name)
        else:
            raise UserError(f"unknown task {name!r}; choose from {', '.join(ALL_TASKS)} or glue")
    return list(dict.fromkeys(names))


GRID_FIELDS = ("lr", "layer_decay")  # the paper searched these (spec 3.3)


def grid_points(overrides: dict[str, str]) -> list[dict[str, float]] | None:
    """`--lr 1e-4,2e-4 --layer-decay 0.8,0.9`: every combination of the comma-separated values (each checked as
    a lone value would be), or None without a list. The overrides keep each field's first value."""
    lists: dict[str, list[float]] = {}
    for key, text in list(overrides.items()):
        field = key.replace("-", "_")
        if field in GRID_FIELDS and "," in text:
            lists[field] = [getattr(build_config({field: v.strip()}), field) for v in text.split(",")]
            overrides[key] = text.split(",")[0].strip()
    if not lists:
        return None
    points: list[dict[str, float]] = [{}]
    for field, values in lists.items():
        points = [{**p, field: v} for p in points for v in dict.fromkeys(values)]
    return points


def check_data(name: str, data: Path, cfg: FinetuneConfig) -> None:
    """A task's data folder and every file its job reads (training, dev, test), read without the model."""
    if name in GLUE_TASKS:
        check_glue(GLUE_TASKS[name], data, cfg.max_train_examples, cfg.max_eval_examples)
    elif name in SQUAD_TASKS:
        check_squad(SQUAD_TASKS[name], data, cfg.max_train_examples, cfg.max_eval_examples)
    elif name in CUSTOM_TASKS:
        check_custom(CUSTOM_TASKS[name], data, cfg)
    else:
        check_tagging(TAGGING_TASKS[name], data, cfg)


def build_job(name: str, data: Path, cfg: FinetuneConfig, tokenizer: Any, cls_id: int, sep_id: int) -> Job:
    if name in GLUE_TASKS:
        return glue_job(GLUE_TASKS[name], data, cfg, tokenizer, cls_id, sep_id)
    if name in SQUAD_TASKS:
        return squad_job(SQUAD_TASKS[name], data, cfg, tokenizer, cls_id, sep_id)
    if name in CUSTOM_TASKS:
        return custom_job(CUSTOM_TASKS[name], data, cfg, tokenizer, cls_id, sep_id)
    return tagging_job(TAGGING_TASKS[name], data, cfg, tokenizer, cls_id, sep_id)


def task_defaults(name: str) -> tuple[float, int]:
    """(epochs, max_seq_len) of a task (spec 3.3)."""
    t = GLUE_TASKS.get(name) or SQUAD_TASKS.get(name) or CUSTOM_TASKS.get(name) or TAGGING_TASKS[name]
    return t.epochs, t.max_seq_len


class Base(NamedTuple):
    """The pre-trained model every task starts from."""
    encoder: torch.nn.Module
    pre: Any  # checkpoint.Pretrained: vocabulary, normalisation, config
    digest: str  # progress.model_digest
    pretraining: dict[str, Any] | None  # model_card.pretraining_summary


def run_task(name: str, args: argparse.Namespace, cfg0: FinetuneConfig, base: Base, out: Path,
             device: torch.device) -> dict[str, Any]:
    """All seeds of one task, for each point of the --lr / --layer-decay grid; the point with the best median
    dev score wins, and its best seed is saved. Writes out/results.json, out/model/, out/test_predictions/.
    Seeds an earlier run finished under the same fingerprint are read, not trained."""
    from electra.data.tokenizer import SpecialIds, load_tokenizer

    encoder0, pre = base.encoder, base.pre

    mcfg = encoder0.cfg
    epochs, seq = task_defaults(name)
    resolve = lambda c: c.resolve(mcfg.hidden_size, epochs, seq, mcfg.max_position_embeddings)
    cfg = resolve(cfg0)
    tokenizer = load_tokenizer(pre.vocab_path, lowercase=pre.lowercase, strip_accents=pre.strip_accents)
    special = SpecialIds.from_vocab(pre.vocab_path)
    t0 = time.time()
    job = build_job(name, args.data, cfg, tokenizer, special.cls, special.sep)
    print(f"[{name}] {len(job.train)} training features, {cfg.epochs:g} epochs, max_seq_len {cfg.max_seq_len}, "
          f"device {device} ({time.time() - t0:.1f}s to read)", flush=True)
    arithmetic = f"{device.type} {autocast_dtype(cfg.precision, device, auto_on_cpu=False) or torch.float32}"
    facts = fingerprint_facts(name, cfg.to_dict(), base.digest, args.random_init, pre.lowercase, pre.strip_accents,
                              task_folder(name, args.data), args.out, arithmetic)
    progress = Progress(out, name, facts, fresh=args.fresh, log=lambda s: print(f"[{name}] {s}", flush=True))
    fp = progress.fp
    progress.plan = {"seeds": list(range(cfg.seed, cfg.seed + args.seeds)), "main_metric": job.main_metric,
                     "points": [[c.lr, c.layer_decay] for c in (resolve(dataclasses.replace(cfg0, **point))
                                                                for point in args.grid or [{}])]}
    progress.stamp()  # from the start, so that `electra status` sees the task before its first seed is saved
    grid, chosen = [], None
    for point in args.grid or [{}]:
        cfg = resolve(dataclasses.replace(cfg0, **point))
        print(f"[{name}] lr {cfg.lr:g}, layer decay {cfg.layer_decay:g}", flush=True)
        runs, best_seed = run_seeds(name, args, cfg, encoder0, job, special.pad, device, progress)
        median = summarize([r["metrics"][job.main_metric] for r in runs])["median"]
        grid.append({"lr": cfg.lr, "layer_decay": cfg.layer_decay, "median": median, "runs": runs})
        if chosen is None or median > chosen[0]:
            chosen = (median, cfg, runs, best_seed)
    assert chosen is not None
    _, cfg, runs, best_seed = chosen
    if args.grid:
        print(f"[{name}] chosen: lr {cfg.lr:g}, layer decay {cfg.layer_decay:g} (median {job.main_metric} "
              f"{chosen[0]:.2f})", flush=True)
    model = best_model(name, args, cfg, encoder0, job, special.pad, device, progress, best_seed)
    pred = functools.partial(predict, model, pad_id=special.pad, device=device, batch_size=cfg.eval_batch_size,
                             precision=cfg.precision)
    # OUT holds this run's results only: test_predictions/ and model/ are replaced whole (or removed when this run
    # writes none), each built aside and renamed into place, and results.json comes last.
    test_files: list[str] = []
    if job.write_test is not None:
        with staged_dir(out / "test_predictions") as staged:
            test_files = job.write_test(pred, staged)
    else:
        shutil.rmtree(out / "test_predictions", ignore_errors=True)
    summary = {m: summarize([r["metrics"][m] for r in runs]) for m in runs[0]["metrics"]}
    meta = {"task": name, "head": job.head_kind, "labels": job.labels, "model_config": dataclasses.asdict(mcfg),
            "lowercase": pre.lowercase, "strip_accents": pre.strip_accents, "config": cfg.to_dict(), "seed": best_seed,
            "fingerprint": fp, **job.meta}
    if not args.no_save_model:
        save_model(model, out / "model", meta, pre.vocab_path)
    else:
        shutil.rmtree(out / "model", ignore_errors=True)
    result = {"task": name, "model": str(args.model), "random_init": args.random_init, "device": str(device),
              "head": job.head_kind, "labels": job.labels, "main_metric": job.main_metric, "config": cfg.to_dict(),
              "model_config": dataclasses.asdict(mcfg), "lowercase": pre.lowercase,
              "strip_accents": pre.strip_accents, "runs": runs,
              "summary": summary, "best_seed": best_seed, "test_predictions": test_files,
              **({"grid": grid} if args.grid else {}), "pretraining": base.pretraining, "fingerprint": fp,
              "fingerprint_facts": facts,
              "seconds": time.time() - t0}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(result, indent=1))
    progress.finish()  # results.json (and model/) now hold what a re-run with more seeds goes on from
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'task':<10} {'metric':<22} {'median':>8} {'mean':>8} {'std':>7} {'n':>3}"]
    for name, r in results.items():
        for metric, s in r["summary"].items():
            lines.append(f"{name:<10} {metric:<22} {s['median']:8.2f} {s['mean']:8.2f} {s['std']:7.2f} {s['n']:3d}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args, cfg = parse_args(argv)
    if args.print_config:
        # null_threshold's NaN (not JSON) means "the QA head's default": printed as null
        print(json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v
                          for k, v in cfg.to_dict().items()}, indent=1))
        return 0
    names = task_names(args.task)
    check_out(args, names)
    for name in names:  # every task's files before the model is loaded or any task trained (and written)
        check_data(name, args.data, cfg)
    if submits(names):
        wnli_predictions(args.data)  # WNLI's files, read for the submission at the end
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return finetune_all(args, cfg, names)
    except TimeUp as e:
        print(f"stopped at --max-time {args.max_time} ({e}); re-run the same command to go on", file=sys.stderr)
        return 0
    except torch.OutOfMemoryError:
        raise UserError("out of GPU memory; run the same command with a smaller --batch-size or --max-seq-len, or "
                        "with --activation-checkpointing (same results, less memory)") from None
    finally:  # main() also runs in-process (tests, notebooks): leave the caller's thread count as it was
        torch.set_num_threads(threads)


def write_results(args: argparse.Namespace, cfg: FinetuneConfig, names: list[str], encoder: torch.nn.Module,
                  pre: Any, device: torch.device) -> None:
    """Every task into its folder, then (several tasks) OUT/results.json, the GLUE score and the submission zip."""
    outs = task_outs(args.out, names)
    # --random-init uses the model's shape only: none of its pre-training went into the results
    pretraining = None if args.random_init else pretraining_summary(args.model, pre)
    base = Base(encoder, pre, model_digest(encoder, pre.vocab_path), pretraining)
    if args.random_init:
        print(f"{args.model}: its shape only (--random-init: the weights are initialised afresh)", flush=True)
    elif base.pretraining is not None:
        p = base.pretraining
        print(f"{args.model}: pre-trained {p['step']:,} steps"
              + (f", {p['tokens_seen'] / 1e6:,.1f} M tokens" if p["tokens_seen"] else "")
              + f", {p['flops']:.2e} FLOPs (the paper's count)", flush=True)
    results = {name: run_task(name, args, cfg, base, out, device) for name, out in zip(names, outs)}
    print(table(results))
    if len(names) > 1:
        medians = {n: {m: s["median"] for m, s in r["summary"].items()} for n, r in results.items()}
        score = glue_score(medians)
        if score is not None:
            print(f"GLUE score (median per task; {', '.join(f'{t} {m}' for t, m in GLUE_SCORE_METRIC.items())}): "
                  f"{score:.2f}")
        atomic_write_text(args.out / "results.json", json.dumps({"tasks": results, "glue_score": score,
                                                                 "pretraining": base.pretraining}, indent=1))
    if submits(names):
        zipped, missing = write_submission(args.out, [o / "test_predictions" for o in outs], args.data)
        if zipped is not None:
            print(f"GLUE leaderboard submission: {zipped} ({len(SUBMISSION_FILES) - len(missing)} of "
                  f"{len(SUBMISSION_FILES)} files" + (f"; without {', '.join(missing)}, which the server needs"
                                                      if missing else "") + ")")


def submits(names: list[str]) -> bool:
    """Whether the run ends with a GLUE leaderboard zip: several tasks, GLUE's among them."""
    return len(names) > 1 and any(n in GLUE_TASKS for n in names)


def finetune_all(args: argparse.Namespace, cfg: FinetuneConfig, names: list[str]) -> int:
    from electra.checkpoint import load_discriminator

    device = pick_device()
    encoder, pre = load_discriminator(args.model, allow_pickle=args.allow_pickle)
    encoder.cpu()
    for name in names:  # each task's recipe against the model (--max-seq-len vs. its positions) before any training
        cfg.resolve(encoder.cfg.hidden_size, *task_defaults(name), encoder.cfg.max_position_embeddings)
    args.out.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(args.out, "finetune")  # two runs never write one OUT (released however this one ends)
    try:
        if args.overwrite and other_results(args.out, names):  # once all is checked and loaded; this run's own
            clear_results(args.out, keep=[args.data, args.model])  # results and seeds are not another task's
        write_results(args, cfg, names, encoder, pre, device)
    finally:
        os.close(lock)
    print(f"results: {args.out / 'results.json'}", file=sys.stderr)
    return 0
