"""Mixed precision for pre-training: bf16 autocast, or fp16 autocast with dynamic loss scaling.

bf16 keeps fp32's exponent range, so gradients need no care: it is the default where the hardware has it (CUDA
since Ampere, CPUs with AVX512-BF16 or AMX). GPUs without it (V100, T4, P100: where much limited compute is) run
fp16 fast, whose largest number is 65,504, so small gradients underflow to 0 and large ones overflow to inf.
`--precision fp16` scales the loss by S before backward (gradients come out x S, out of the underflow range) and
divides them by S before clipping and the update. A step whose gradients hold an inf or a NaN is skipped and S is
halved; after 2,000 clean steps S doubles (torch.amp.GradScaler's dynamic scaling, S starting at 2^16).

The check of every step's gradients for inf is a host synchronisation, so fp16 runs without `--compile-mode
step-graph`. The scaler's state (S and its count of clean steps) is saved with each checkpoint, so a resume is
exact. The loss scale and the skipped steps are logged (`train/loss_scale`, `train/skipped_steps`).
"""
from __future__ import annotations

import contextlib

import torch

from electra.device import native_bf16
from electra.errors import UserError

INIT_SCALE = 2.0**16  # torch's default; tests lower or raise it to force overflows


def autocast_dtype(precision: str, device: torch.device, auto_on_cpu: bool = True) -> torch.dtype | None:
    """The autocast dtype of a run: bf16, fp16, or None (fp32). `auto` = bf16 where it is native; with
    `auto_on_cpu=False` (fine-tuning, which the original does in fp32) on GPUs only."""
    if precision == "fp16":
        return torch.float16
    native = native_bf16(device) and (auto_on_cpu or device.type == "cuda")
    return torch.bfloat16 if precision == "bf16" or (precision == "auto" and native) else None


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


class LossScaler:
    """Dynamic loss scaling when `enabled` (fp16), else a pass-through: the training loop calls the same methods."""

    def __init__(self, enabled: bool, device: torch.device) -> None:
        self.enabled = enabled
        self.scaler = torch.amp.GradScaler(device.type, init_scale=INIT_SCALE, enabled=enabled)
        self.skipped = 0  # steps skipped since the last `take_skipped`

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss)

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by S in place (before clipping measures them)."""
        if self.enabled:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's update, skipped (and S halved) if a gradient is not finite."""
        if not self.enabled:
            optimizer.step()
            return
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        self.skipped += self.scaler.get_scale() < before  # only an overflow lowers the scale

    def take_skipped(self) -> int:
        n, self.skipped = self.skipped, 0
        return n

    @property
    def loss_scale(self) -> float:
        return self.scaler.get_scale() if self.enabled else 1.0

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.enabled else {}

    def load_state_dict(self, state: object) -> None:
        """A checkpoint's scaler state (absent: a run saved without fp16, whose scale starts afresh)."""
        if not self.enabled or not state:
            return
        if not isinstance(state, dict) or not isinstance(state.get("scale"), (int, float)) or state["scale"] <= 0:
            raise UserError(f"the checkpoint's grad_scaler state is damaged ({str(state)[:80]}); resume from an "
                            f"earlier checkpoint (point checkpoints/LATEST at another step_* folder)")
        self.scaler.load_state_dict(state)
