"""The seeds of one task at one --lr / --layer-decay point: each trained from the pre-trained encoder with its own
seed, or read back when an earlier run finished it (progress.py); a seed in training saves its state every
--checkpoint-minutes and on SIGTERM / Ctrl-C / --max-time, and goes on from it when run again; the best seed's
model, from its kept weights or trained again."""
from __future__ import annotations

import argparse
import copy
import functools
import secrets
import time
from pathlib import Path
from typing import Any

import torch

from electra.finetune.config import FinetuneConfig
from electra.finetune.progress import Progress, SeedCheckpoint
from electra.finetune.train import Job, TimeUp, UnusableState, predict, train
from electra.model import set_activation_checkpointing


def new_model(args: argparse.Namespace, cfg: FinetuneConfig, encoder0: torch.nn.Module, job: Job, seed: int,
              device: torch.device) -> torch.nn.Module:
    """The model a seed starts from: the pre-trained encoder (or its shape, re-initialised) and a fresh head."""
    from electra.finetune.heads import FinetuneModel
    from electra.model import init_weights

    torch.manual_seed(seed)
    encoder = copy.deepcopy(encoder0)
    if args.random_init:
        init_weights(encoder, std=encoder0.cfg.initializer_range)
    model = FinetuneModel(encoder, job.make_head(encoder0.cfg.hidden_size)).to(device)
    set_activation_checkpointing(model, cfg.activation_checkpointing)
    return model


def start_wandb(name: str, args: argparse.Namespace, cfg: FinetuneConfig, seed: int, out: Path,
                state: SeedCheckpoint) -> Any:
    """One W&B run per task, seed (and grid point), grouped by task, files in OUT/wandb. A seed that goes on from
    its saved state logs into the W&B run it began (the id is saved with the state); one that starts over, a new one."""
    from electra.logs import wandb_run
    out.mkdir(parents=True, exist_ok=True)
    saved = state.peek()  # read once: the training loop's load() gets the same
    earlier = saved[1].get("wandb_id") if saved is not None else None
    run_id = earlier if isinstance(earlier, str) and earlier else secrets.token_hex(4)
    state.extra["wandb_id"] = run_id
    point = f"-lr{cfg.lr:g}-ld{cfg.layer_decay:g}" if args.grid else ""
    return wandb_run(args.wandb, {**cfg.to_dict(), "task": name, "seed": seed, "model": str(args.model),
                                  "random_init": args.random_init}, group=name, name=f"{name}{point}-seed{seed}",
                     job_type="finetune", dir=str(out), id=run_id, resume="allow")


def train_seed(name: str, args: argparse.Namespace, cfg: FinetuneConfig, encoder0: torch.nn.Module, job: Job,
               seed: int, pad_id: int, progress: Progress, device: torch.device
               ) -> tuple[dict[str, Any], torch.nn.Module]:
    """One fine-tuning: ({'seed', 'metrics' (dev), 'train' (steps, loss, seconds)}, the trained model). Its state
    is saved every --checkpoint-minutes; a seed stopped mid-way goes on from the last state saved."""
    model = new_model(args, cfg, encoder0, job, seed, device)
    state = progress.seed_state(cfg.lr, cfg.layer_decay, seed, cfg.checkpoint_minutes * 60)
    wb = start_wandb(name, args, cfg, seed, progress.out, state) if args.wandb is not None else None
    fit = functools.partial(train, feats=job.train, cfg=cfg, pad_id=pad_id, device=device, seed=seed,
                            log=lambda s: print(s, flush=True), state=state, deadline=args.deadline,
                            report=(lambda m, step: wb.log(m, step=step)) if wb is not None else None)
    try:
        stats = fit(model)
    except UnusableState as e:
        print(f"[{name}] seed {seed}: its saved state does not fit ({str(e)[:120]}): the seed starts over", flush=True)
        state.drop()
        if wb is not None:  # its curve starts over too: a W&B run of its own
            wb.finish()
            wb = start_wandb(name, args, cfg, seed, progress.out, state)
        model = new_model(args, cfg, encoder0, job, seed, device)
        stats = fit(model)
    metrics = job.evaluate(functools.partial(predict, model, pad_id=pad_id, device=device,
                                             batch_size=cfg.eval_batch_size, precision=cfg.precision))
    if wb is not None:
        wb.log({f"dev/{m}": v for m, v in metrics.items()}, step=stats["steps"])
        wb.finish()
    return {"seed": seed, "metrics": metrics, "train": stats}, model


def run_seeds(name: str, args: argparse.Namespace, cfg: FinetuneConfig, encoder0: torch.nn.Module, job: Job,
              pad_id: int, device: torch.device, progress: Progress) -> tuple[list[dict[str, Any]], int]:
    """--seeds fine-tunings of one config, those on record in `progress` read instead of trained: each seed's
    run and the best seed (the first of equals), whose weights `progress` keeps."""
    runs: list[dict[str, Any]] = []
    best: tuple[float, int] | None = None
    for seed in range(cfg.seed, cfg.seed + args.seeds):
        run, model = progress.done(cfg.lr, cfg.layer_decay, seed, job.main_metric), None
        if run is None and args.deadline is not None and time.time() >= args.deadline:
            raise TimeUp(f"[{name}] before seed {seed}")
        if run is None:
            run, model = train_seed(name, args, cfg, encoder0, job, seed, pad_id, progress, device)
        runs.append(run)
        leads = best is None or run["metrics"][job.main_metric] > best[0]
        if model is not None:  # on record before it is reported: a seed shown as finished is never trained again
            progress.add(cfg.lr, cfg.layer_decay, run, model if leads else None, best[1] if leads and best else None)
        print(f"[{name}] seed {seed}: " + "  ".join(f"{m} {v:.2f}" for m, v in run["metrics"].items())
              + (" (trained earlier)" if model is None else ""), flush=True)
        if leads:
            best = (run["metrics"][job.main_metric], seed)
    assert best is not None
    return runs, best[1]


def best_model(name: str, args: argparse.Namespace, cfg: FinetuneConfig, encoder0: torch.nn.Module, job: Job,
               pad_id: int, device: torch.device, progress: Progress, seed: int) -> torch.nn.Module:
    """The best seed's model: its kept weights, or (when an earlier run kept none: --no-save-model, a model/
    removed) that seed trained again."""
    weights = progress.weights(cfg.lr, cfg.layer_decay, seed)
    if weights is not None:
        model = new_model(args, cfg, encoder0, job, seed, device)
        try:
            model.load_state_dict(weights)
            return model
        except RuntimeError:  # weights of another shape put in their place
            pass
    print(f"[{name}] seed {seed} (the best) finished earlier, but its weights are not at hand (not kept, or not "
          f"this model's): training it again", flush=True)
    return train_seed(name, args, cfg, encoder0, job, seed, pad_id, progress, device)[1]
