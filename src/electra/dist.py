"""torchrun's environment -> (rank, world size, device); process-group set-up and a few collectives.

The only module that imports torch.distributed besides the training loop's DDP wrapper: the model and
the objective know nothing of distribution. One process without torchrun is world size 1.
"""
from __future__ import annotations

import datetime
import os
from typing import NamedTuple

import torch
import torch.distributed as td


class Dist(NamedTuple):
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            from electra.errors import UserError
            raise UserError("--device cuda was asked for but no CUDA device is visible; use --device cpu")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def init(device: str = "auto") -> Dist:
    """Read RANK / LOCAL_RANK / WORLD_SIZE (set by torchrun) and join the group: NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world > 1 and not td.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        td.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=datetime.timedelta(minutes=30))
    return Dist(rank, local_rank, world, dev)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if td.is_initialized() and td.get_world_size() > 1:
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if the flag is set on any rank (used for stop requests: all ranks must stop at the same step)."""
    if not (td.is_initialized() and td.get_world_size() > 1):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor of possibly different lengths from every rank (for AUC over all ranks)."""
    if not (td.is_initialized() and td.get_world_size() > 1):
        return t
    sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(td.get_world_size())]
    td.all_gather(sizes, torch.tensor([t.numel()], device=t.device))
    width = int(max(s.item() for s in sizes))
    padded = torch.zeros(width, dtype=t.dtype, device=t.device)
    padded[: t.numel()] = t
    out = [torch.zeros_like(padded) for _ in sizes]
    td.all_gather(out, padded)
    return torch.cat([o[: int(s.item())] for o, s in zip(out, sizes)])


def barrier() -> None:
    if td.is_initialized():
        td.barrier()


def cleanup() -> None:
    if td.is_initialized():
        td.destroy_process_group()
