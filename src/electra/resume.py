"""What a resumed `electra pretrain` run takes back from its checkpoint: the weights, the data position and the
counters (`restore`), then the optimizer's state once the optimizer is built (`load_optimizer`). Every random draw
is seeded from (seed, step, micro-batch), so nothing else is needed for the run to continue exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from electra import dist
from electra.checkpoint import EARLIER, checkpoint_weights, optimizer_from_flat, read_state
from electra.data.dataset import BatchStream
from electra.errors import UserError


class Restored(NamedTuple):
    step: int
    elapsed: float  # seconds trained so far, summed over resumes
    tokens_seen: int
    optimizer: dict[str, Any] | None  # the optimizer's state dict, full tensors
    state: dict[str, Any]  # the checkpoint's state.json
    init: str | None  # the Hugging Face folder the run was first initialised from
    note: str | None  # what to tell the user about this resume


def restore(ckpt: Path | None, model: torch.nn.Module, stream: BatchStream, device: torch.device,
            micro: int, global_batch: int, world_size: int, init: str | None) -> Restored:
    """Load the checkpoint's weights into `model` and its data position into `stream`: full (gathered) tensors,
    whatever world size or sharding wrote them. A fresh run (`ckpt` None) starts at zero."""
    if ckpt is None:
        return Restored(0, 0.0, 0, None, {}, init, None)
    state = read_state(ckpt)
    if not all(key in state for key in ("step", "data", "optimizer")):
        raise UserError(f"checkpoint state {ckpt / 'state.json'} lacks step, data or optimizer; {EARLIER}")
    try:
        model.load_weights({k: v.to(device) for k, v in checkpoint_weights(ckpt, state=state).items()})
    except (KeyError, RuntimeError) as e:
        raise UserError(f"checkpoint {ckpt} does not fit the run's config ({' '.join(str(e).split())[:200]})") from None
    optimizer = optimizer_from_flat(checkpoint_weights(ckpt, "optimizer.safetensors", state), state["optimizer"])
    stream.load_state_dict(state["data"])
    was = (state.get("config", {}).get("train", {}).get("micro_batch_size")
           or global_batch // state.get("world_size", world_size))
    note = None
    if was != micro:  # the draws are seeded per micro-batch: a correct run, but not the uninterrupted one
        note = (f"note: the checkpoint was trained in micro-batches of {was}, this run uses {micro}: same schedule "
                f"and data order, other dropout, masking and sampling draws than an uninterrupted run; pass "
                f"--micro-batch-size {was} to continue it exactly")
    return Restored(state["step"], state.get("elapsed", 0.0), state.get("tokens_seen", 0), optimizer, state,
                    state.get("init"), note)


def load_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any],
                   sharded: bool, ckpt: Path) -> None:
    """The saved optimizer state into `optimizer` (`sharded`: an FSDP model's, each rank taking its shards), its
    hyperparameters left as this command's config says."""
    # torch restores the saved hyperparameters with the state; this command's config (its --weight-decay,
    # --adam-eps, --adam-beta1/2 overrides, written to config.json) is what the run must use from here on
    hparams = [{k: g[k] for k in ("weight_decay", "eps", "betas")} for g in optimizer.param_groups]
    try:
        dist.load_full_optimizer(model, optimizer, saved) if sharded else optimizer.load_state_dict(saved)
    except (ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"checkpoint {ckpt}: its optimizer state does not fit this run's optimizer "
                        f"({str(e)[:200]}); weight_decay cannot be switched to or from 0 when resuming") from None
    for group, hp in zip(optimizer.param_groups, hparams):
        group.update(hp)
