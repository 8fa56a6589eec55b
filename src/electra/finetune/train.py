"""The fine-tuning loop shared by every task (electra-spec 1.7, 3.3), batching, inference and saving.

A task module (glue.py, squad.py, tagging.py) turns its files into a `Job`: training features (dicts of
lists), a head factory, an `evaluate(predict)` that scores the dev set(s) and an optional
`write_test(predict, out_dir)`. This module owns everything that is the same for all of them:

- steps = n_train // batch * epochs (the original's count), 10% warmup multiplied onto a linear decay
  to 0 (`optim.lr_at`), Adam without bias correction, eps 1e-6, global-norm clip 1.0;
- layer-wise LR decay through `optim.layerwise_lr_scales` (off-by-one of the original optional);
- the batch loss: the head's loss terms summed (or averaged, --loss-reduction) by `reduce_loss`;
  the loss is kept on the device and read on logging steps only (no per-step host sync on a GPU);
- bf16 autocast on GPUs that have it, fp32 elsewhere (--precision fp32 | bf16 | fp16 to choose); batches padded to their longest row (no fixed-length pad);
- `save_model`: OUT/model/model.safetensors (`encoder.*`, `head.*`), finetune.json, vocab.txt.
"""
from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from electra.checkpoint import optimizer_from_flat, optimizer_to_flat, save_tensors
from electra.data.shards import staged_dir
from electra.errors import UserError
from electra.finetune.config import FinetuneConfig
from electra.finetune.heads import IGNORE, FinetuneModel, Terms, encoder_depth
from electra.logs import fmt_duration
from electra.optim import build_optimizer, layerwise_lr_scales, lr_at, set_lr
from electra.precision import LossScaler, autocast_dtype
from electra.precision import autocast as precision_autocast
from electra.stopping import StopAtStepEnd

Feature = dict[str, Any]
Predict = Callable[[list[Feature]], list[Any]]


@dataclass
class Job:
    """One task, ready to fine-tune: everything the loop needs that differs between tasks."""

    task: str
    head_kind: str  # classification | regression | tagging | qa_simple | qa_electra
    labels: list[str] | None  # label strings in output order (None for regression / QA)
    train: list[Feature]
    make_head: Callable[[int], nn.Module]  # hidden size -> head
    evaluate: Callable[[Predict], dict[str, float]]  # dev metric name -> value (x100)
    main_metric: str  # the metric used to pick the best seed and shown first
    write_test: Callable[[Predict, Path], list[str]] | None = None  # -> written file names
    meta: dict[str, Any] = field(default_factory=dict)  # task facts for finetune.json (segments, target_range, ...)


def _row_mask(rows: list[list[Any]], width: int) -> np.ndarray:
    """(len(rows), width) bool: True on the positions each row fills when left-aligned."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    return np.arange(width) < lengths[:, None]


def pad_rows(rows: list[list[int]], width: int, fill: int) -> np.ndarray:
    """(len(rows), width) int64 array of the rows left-aligned, `fill` after them. Built in one go (one flat
    array of every value, one masked write): a tensor per row costs more than the copy itself."""
    mask = _row_mask(rows, width)
    out = np.full(mask.shape, fill, dtype=np.int64)
    # a boolean-mask write fills the True positions in row-major order: the rows' values concatenated
    out[mask] = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(mask.sum()))
    return out


def collate(feats: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to the longest row. Token-level fields are padded with IGNORE (labels) or
    0 (allowed answer positions); scalar fields are stacked; None (test rows) is left out."""
    column = lambda key: [f[key] for f in feats]
    ids = column("input_ids")
    T = max(map(len, ids))
    mask = _row_mask(ids, T)
    batch: dict[str, Any] = {"input_ids": torch.from_numpy(pad_rows(ids, T, pad_id)),
                             "segment_ids": torch.from_numpy(pad_rows(column("segment_ids"), T, 0)),
                             "attention_mask": None if mask.all() else torch.from_numpy(mask)}
    for key, fill in (("labels", IGNORE), ("allowed", 0)):
        if key in feats[0]:
            batch[key] = torch.from_numpy(pad_rows(column(key), T, fill))
    for key in ("label", "start", "end", "is_impossible"):
        if key in feats[0] and feats[0][key] is not None:
            batch[key] = torch.tensor(column(key))  # int64, or float32 for regression targets
    return batch


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def autocast(device: torch.device, precision: str = "auto"):
    """FinetuneConfig.precision: auto = bf16 autocast on GPUs that have it, fp32 elsewhere (CPUs too: the original
    fine-tunes in fp32); fp32; bf16; fp16 (with loss scaling, electra/precision.py)."""
    return precision_autocast(autocast_dtype(precision, device, auto_on_cpu=False), device)


def lr_scales(model: FinetuneModel, cfg: FinetuneConfig) -> dict[str, float] | None:
    if cfg.layer_decay >= 1.0:
        return None
    names = [n for n, _ in model.named_parameters()]
    return layerwise_lr_scales(names, len(model.encoder.blocks), cfg.layer_decay, encoder_depth,
                               original_off_by_one=cfg.layer_decay_off_by_one)


def reduce_loss(losses: torch.Tensor | Terms, how: str) -> torch.Tensor:
    """The batch loss from a head's loss terms (FinetuneConfig.loss_reduction). The original sums them
    (run_finetuning.py: reduce_sum of the stacked per-example losses; a tagging example's loss is itself a
    sum over its words); `mean` averages the terms instead (tagging: over the labelled words)."""
    if isinstance(losses, Terms):
        total = losses.values.sum()
        return total if how == "sum" else total / losses.count.clamp_min(1)
    return losses.sum() if how == "sum" else losses.mean()


class LossTracker:
    """The smoothed training loss (EMA 0.9 / 0.1) and the first step whose loss was not finite, both kept on
    the device: reading a GPU value makes the host wait for the GPU, so they are read on logging steps only.
    (On the CPU a read costs nothing, and the loop reads every step to stop at the first bad one.)"""

    def __init__(self, device: torch.device):
        self.ema: torch.Tensor | None = None
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_value = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor, step: int) -> None:
        value = loss.detach().double()  # float64: the same arithmetic as an EMA kept in Python floats
        self.ema = value if self.ema is None else 0.9 * self.ema + 0.1 * value
        bad = ~torch.isfinite(value) & (self.first_bad < 0)
        self.first_bad.masked_fill_(bad, step)  # a scalar fill: no host-to-device copy, no sync
        self.bad_value = torch.where(bad, value, self.bad_value)

    def check(self, lr: float) -> None:
        """UserError naming the first non-finite loss, if there was one (a host sync)."""
        step = int(self.first_bad)
        if step >= 0:
            raise UserError(f"fine-tuning loss became {float(self.bad_value)} at step {step} (lr {lr:g}); "
                            f"lower --lr")

    def value(self, lr: float) -> float:
        """The smoothed loss as a Python float (a host sync), after `check`."""
        self.check(lr)
        return float("nan") if self.ema is None else float(self.ema)


class SeedState(Protocol):
    """Where a seed's training state is kept (progress.SeedCheckpoint): every `every` seconds it is saved, and a
    re-run loads it and goes on from there."""
    every: float

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None: ...
    def save(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None: ...


class TimeUp(Exception):
    """--max-time reached: the seed in training saved its state at the end of its step."""


class UnusableState(Exception):
    """A saved seed state that does not fit this model or optimizer: the seed starts over."""


def capture(model: FinetuneModel, opt: torch.optim.Optimizer, epoch_gen: torch.Tensor, batch: int, step: int,
            steps: int, tracker: LossTracker, scaler: LossScaler, elapsed: float, device: torch.device
            ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Everything the loop needs to go on exactly: weights, optimizer state, the data order's generator as the
    epoch began and the next batch in it, the dropout RNG, the smoothed loss, the loss scale."""
    opt_tensors, opt_meta = optimizer_to_flat(opt)
    tensors = {**{f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
               **{f"optim.{k}": v for k, v in opt_tensors.items()},
               "rng.order": epoch_gen, "rng.cpu": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    meta = {"step": step, "steps": steps, "saved_at": time.time(), "batch": batch, "elapsed": elapsed,
            "optimizer": opt_meta, "scaler": scaler.state_dict(),
            "ema": None if tracker.ema is None else float(tracker.ema), "first_bad": int(tracker.first_bad),
            "bad_value": float(tracker.bad_value)}
    return tensors, meta


def restore(saved: tuple[dict[str, torch.Tensor], dict[str, Any]], model: FinetuneModel,
            opt: torch.optim.Optimizer, gen: torch.Generator, tracker: LossTracker, scaler: LossScaler,
            device: torch.device) -> tuple[int, int, float]:
    """`capture`'s state into the loop's objects: (step, next batch of the epoch, seconds trained so far)."""
    tensors, meta = saved
    part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        model.load_state_dict({k: v.to(device) for k, v in part("model.").items()})
        opt.load_state_dict(optimizer_from_flat(part("optim."), meta["optimizer"]))
        scaler.load_state_dict(meta["scaler"])
        gen.set_state(tensors["rng.order"])
        torch.set_rng_state(tensors["rng.cpu"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        if meta["ema"] is not None:
            tracker.ema = torch.tensor(meta["ema"], dtype=torch.float64, device=device)
        tracker.first_bad.fill_(int(meta["first_bad"]))
        tracker.bad_value.fill_(float(meta["bad_value"]))
        return int(meta["step"]), int(meta["batch"]), float(meta["elapsed"])
    except (KeyError, ValueError, RuntimeError, TypeError, UserError) as e:
        raise UnusableState(str(e)) from None


def train(model: FinetuneModel, feats: list[Feature], cfg: FinetuneConfig, pad_id: int, device: torch.device,
          seed: int, log: Callable[[str], None] = print,
          report: Callable[[dict[str, float], int], Any] | None = None, state: SeedState | None = None,
          deadline: float | None = None) -> dict[str, float]:
    """Fine-tune in place. Returns {'steps', 'final_loss', 'seconds'}. `report(metrics, step)`: the log lines'
    numbers (train/loss, train/lr), for W&B (a W&B run's `log`). `state`: where the loop's state is saved every
    `state.every` seconds and resumed from (UnusableState: the saved one does not fit; start over without it),
    and when a step ends after SIGTERM, Ctrl-C (`StopAtStepEnd`) or `deadline` (a time.time(); TimeUp)."""
    bs = cfg.batch_size
    steps = max(1, int(len(feats) // bs * cfg.epochs)) if cfg.epochs > 0 else 0
    if steps == 0:
        return {"steps": 0, "final_loss": float("nan"), "seconds": 0.0}
    warmup = steps * cfg.warmup_proportion  # a fraction of a step, as the original: MRPC's 687 steps warm up over 68.7
    opt = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, (cfg.adam_beta1, cfg.adam_beta2),
                          cfg.adam_eps, lr_scales(model, cfg))
    gen = torch.Generator().manual_seed(seed)
    step, first_batch, elapsed, tracker = 0, 0, 0.0, LossTracker(device)
    scaler = LossScaler(autocast_dtype(cfg.precision, device, auto_on_cpu=False) == torch.float16, device)
    saved = state.load() if state is not None else None
    if saved is not None:
        step, first_batch, elapsed = restore(saved, model, opt, gen, tracker, scaler, device)
        log(f"  going on from step {step}/{steps} (this seed's saved state)")
    model.train()
    t0, saved_at = time.time() - elapsed, time.time()
    with StopAtStepEnd() as stop:
        while step < steps:
            epoch_gen = gen.get_state()  # what draws this epoch's order: saved with the position in it
            order = torch.randperm(len(feats), generator=gen).tolist()
            # full batches only (the original's drop_remainder), unless the whole set is smaller than a batch
            n_batches = max(1, len(order) // bs)
            for b in range(first_batch, n_batches):
                if step >= steps:
                    break
                batch = to_device(collate([feats[i] for i in order[b * bs:(b + 1) * bs]], pad_id), device)
                set_lr(opt, lr_at(step, cfg.lr, steps, warmup))
                with autocast(device, cfg.precision):
                    out = model(batch)
                loss = reduce_loss(model.head.losses(out, batch), cfg.loss_reduction)
                scaler.scale(loss).backward()
                scaler.unscale(opt)  # fp16: the gradients / S before clipping; an overflow skips the step
                if cfg.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
                scaler.step(opt)
                opt.zero_grad(set_to_none=True)
                tracker.add(loss, step)
                if device.type == "cpu":  # reading costs nothing here: stop at the first bad step
                    tracker.check(cfg.lr)
                step += 1
                if step % cfg.log_every == 0 or step == steps:
                    loss_now, lr_now = tracker.value(cfg.lr), lr_at(step - 1, cfg.lr, steps, warmup)
                    elapsed = time.time() - t0
                    left = f", {fmt_duration(elapsed / step * (steps - step))} left" if step < steps else ""
                    log(f"  step {step}/{steps}  loss {loss_now:.4f}  lr {lr_now:.2e}  {elapsed:.0f}s{left}")
                    if report is not None:
                        report({"train/loss": loss_now, "train/lr": lr_now}, step)
                halt = stop.signum is not None or (deadline is not None and time.time() >= deadline)
                # the last step too, so that a stop in the evaluation after it redoes only the evaluation
                due = state is not None and state.every > 0 and time.time() - saved_at >= state.every
                if state is not None and (halt or due):
                    state.save(*capture(model, opt, epoch_gen, b + 1, step, steps, tracker, scaler, time.time() - t0,
                                        device))
                    saved_at = time.time()
                if halt:
                    log(f"  stopped at step {step}/{steps}" + (", its state saved" if state is not None else ""))
                    if stop.signum is not None:
                        stop.stop()
                    raise TimeUp(f"step {step}/{steps}")
            first_batch = 0
    if stop.signum is not None:  # a signal between the last step's check and here
        stop.stop()
    return {"steps": steps, "final_loss": tracker.value(cfg.lr), "seconds": time.time() - t0}


@torch.no_grad()
def predict(model: FinetuneModel, feats: list[Feature], pad_id: int, device: torch.device,
            batch_size: int, precision: str = "auto") -> list[Any]:
    """Head outputs per feature, in the input order. Rows are batched by length (less padding)."""
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
    out: list[Any] = [None] * len(feats)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        batch = to_device(collate([feats[i] for i in idx], pad_id), device)
        with autocast(device, precision):
            res = model.head.predict(model(batch), batch)
        for i, r in zip(idx, res):
            out[i] = r
    return out


def read_finetune_meta(model_dir: Path) -> dict[str, Any]:
    """OUT/model/finetune.json as `save_model` wrote it (read by `electra export` and `electra predict`)."""
    try:
        meta = json.loads((model_dir / "finetune.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{model_dir / 'finetune.json'} is unreadable ({e}); re-run `electra finetune`") from None
    if not isinstance(meta, dict):
        raise UserError(f"{model_dir / 'finetune.json'} is not a JSON object; re-run `electra finetune`")
    return meta


def save_model(model: FinetuneModel, out_dir: Path, meta: dict[str, Any], vocab_path: Path) -> Path:
    """OUT/model/: model.safetensors (`encoder.<Encoder names>`, `head.<...>`), finetune.json, vocab.txt, written
    under a temporary name and renamed into place, so that a crash never leaves a folder with half a model."""
    with staged_dir(out_dir) as tmp:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_tensors(tensors, tmp / "model.safetensors", metadata={"format": "electra-finetune"})
        (tmp / "finetune.json").write_text(json.dumps(meta, indent=1))
        shutil.copyfile(vocab_path, tmp / "vocab.txt")
    return out_dir
