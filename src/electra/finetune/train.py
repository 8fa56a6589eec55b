"""The fine-tuning loop shared by every task (electra-spec 1.7, 3.3), batching, inference and saving.

A task module (glue.py, squad.py, tagging.py) turns its files into a `Job`: training features (dicts of
lists), a head factory, an `evaluate(predict)` that scores the dev set(s) and an optional
`write_test(predict, out_dir)`. This module owns everything that is the same for all of them:

- steps = n_train // batch * epochs (the original's count), 10% warmup multiplied onto a linear decay
  to 0 (`optim.lr_at`), Adam without bias correction, eps 1e-6, global-norm clip 1.0;
- layer-wise LR decay through `optim.layerwise_lr_scales` (off-by-one of the original optional);
- bf16 autocast on CUDA only, fp32 on CPU; batches padded to their longest row (no fixed-length pad);
- `save_model`: OUT/model/model.safetensors (`encoder.*`, `head.*`), finetune.json, vocab.txt.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from electra.errors import UserError
from electra.finetune.config import FinetuneConfig
from electra.finetune.heads import IGNORE, FinetuneModel, encoder_depth
from electra.optim import build_optimizer, layerwise_lr_scales, lr_at, set_lr

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


def collate(feats: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to the longest row. Token-level fields are padded with IGNORE (labels) or
    0 (allowed answer positions); scalar fields are stacked; None (test rows) is left out."""
    T = max(len(f["input_ids"]) for f in feats)
    B = len(feats)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    seg = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.bool)
    for i, f in enumerate(feats):
        n = len(f["input_ids"])
        ids[i, :n] = torch.tensor(f["input_ids"])
        seg[i, :n] = torch.tensor(f["segment_ids"])
        mask[i, :n] = True
    batch: dict[str, Any] = {"input_ids": ids, "segment_ids": seg,
                             "attention_mask": None if bool(mask.all()) else mask}
    for key, fill in (("labels", IGNORE), ("allowed", 0)):
        if key in feats[0]:
            t = torch.full((B, T), fill, dtype=torch.long)
            for i, f in enumerate(feats):
                t[i, :len(f[key])] = torch.tensor(f[key])
            batch[key] = t
    for key in ("label", "start", "end", "is_impossible"):
        if key in feats[0] and feats[0][key] is not None:
            batch[key] = torch.tensor([f[key] for f in feats])
    return batch


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def autocast(device: torch.device):
    """bf16 autocast on CUDA only; fp32 everywhere else (the issue's rule)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def lr_scales(model: FinetuneModel, cfg: FinetuneConfig) -> dict[str, float] | None:
    if cfg.layer_decay >= 1.0:
        return None
    names = [n for n, _ in model.named_parameters()]
    return layerwise_lr_scales(names, len(model.encoder.blocks), cfg.layer_decay, encoder_depth,
                               original_off_by_one=cfg.layer_decay_off_by_one)


def train(model: FinetuneModel, feats: list[Feature], cfg: FinetuneConfig, pad_id: int, device: torch.device,
          seed: int, log: Callable[[str], None] = print) -> dict[str, float]:
    """Fine-tune in place. Returns {'steps', 'final_loss', 'seconds'}."""
    bs = cfg.batch_size
    steps = max(1, int(len(feats) // bs * cfg.epochs)) if cfg.epochs > 0 else 0
    if steps == 0:
        return {"steps": 0, "final_loss": float("nan"), "seconds": 0.0}
    warmup = int(steps * cfg.warmup_proportion)
    opt = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, (cfg.adam_beta1, cfg.adam_beta2),
                          cfg.adam_eps, lr_scales(model, cfg))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    step, t0, ema = 0, time.time(), None
    while step < steps:
        order = torch.randperm(len(feats), generator=gen).tolist()
        # full batches only (the original's drop_remainder), unless the whole set is smaller than a batch
        n_batches = max(1, len(order) // bs)
        for b in range(n_batches):
            if step >= steps:
                break
            batch = to_device(collate([feats[i] for i in order[b * bs:(b + 1) * bs]], pad_id), device)
            set_lr(opt, lr_at(step, cfg.lr, steps, warmup))
            with autocast(device):
                out = model(batch)
            loss = model.head.loss(out, batch)
            loss.backward()
            if cfg.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise UserError(f"fine-tuning loss became {value} at step {step} (lr {cfg.lr:g}); lower --lr")
            ema = value if ema is None else 0.9 * ema + 0.1 * value
            step += 1
            if step % cfg.log_every == 0 or step == steps:
                log(f"  step {step}/{steps}  loss {ema:.4f}  lr {lr_at(step - 1, cfg.lr, steps, warmup):.2e}  "
                    f"{time.time() - t0:.0f}s")
    return {"steps": steps, "final_loss": float(ema), "seconds": time.time() - t0}


@torch.no_grad()
def predict(model: FinetuneModel, feats: list[Feature], pad_id: int, device: torch.device,
            batch_size: int) -> list[Any]:
    """Head outputs per feature, in the input order. Rows are batched by length (less padding)."""
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
    out: list[Any] = [None] * len(feats)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        batch = to_device(collate([feats[i] for i in idx], pad_id), device)
        with autocast(device):
            res = model.head.predict(model(batch), batch)
        for i, r in zip(idx, res):
            out[i] = r
    return out


def save_model(model: FinetuneModel, out_dir: Path, meta: dict[str, Any], vocab_path: Path) -> Path:
    """OUT/model/: model.safetensors (`encoder.<Encoder names>`, `head.<...>`), finetune.json, vocab.txt."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "electra-finetune"})
    (out_dir / "finetune.json").write_text(json.dumps(meta, indent=1))
    shutil.copyfile(vocab_path, out_dir / "vocab.txt")
    return out_dir
