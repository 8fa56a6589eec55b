"""Running the training step fast on the device at hand: bf16 where it is native, torch.compile and CUDA
graphs, and batches prepared on the host (packing for the unpadded encoders, pinned memory) so that the step
never waits for them. The model and the objective know nothing of this; `electra pretrain` and the
benchmarks use it.
"""
from __future__ import annotations

import torch

from electra.config import TrainConfig
from electra.data.dataset import Batch
from electra.model import Packing, pack


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast is a speed-up here: CUDA with bf16 support, or a CPU with bf16 instructions
    (AVX512-BF16 or AMX), where it measured 1.7x fp32 for ELECTRA-Small. Elsewhere bf16 is emulated: fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:  # older torch: no capability probes
            return False
    return False


def compile_model(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """torch.compile of the whole step's forward (and so its backward through AOTAutograd). The token count of
    an unpadded batch changes every step: dynamo recompiles once, at the second count, with it dynamic."""
    return torch.compile(model, mode=None if mode == "default" else mode)


def cuda_graphs(t: TrainConfig) -> bool:
    """CUDA graphs replay fixed shapes: with them, unpadded batches (a new token count each step) would record
    a graph per count, so `unpad=auto` keeps the padded layout."""
    return t.compile and t.compile_mode in ("reduce-overhead", "max-autotune")


def unpadded(setting: str, device: torch.device, graphs: bool) -> bool:
    """Whether the encoders run on real tokens only: `unpad=on`, or `auto` on CUDA without CUDA graphs (there it
    measured 1.17x the padded eager step on an H100; under compile it gained nothing, and graphs need fixed
    shapes)."""
    return setting == "on" or (setting == "auto" and device.type == "cuda" and not graphs)


def host_batch(batch: Batch, unpad: bool, pin: bool) -> tuple[Batch, Packing | None]:
    """One micro-batch as the step takes it, prepared on the host: its `Packing` when the encoders run
    unpadded (`nonzero` on the CPU copy: the device is never waited for), all in pinned memory on CUDA so
    that the copies really are asynchronous (a copy from pageable memory waits for the GPU to drain)."""
    packing = host_packing(batch.attention_mask, pin) if unpad else None
    return (Batch(*(t.pin_memory() for t in batch)) if pin else batch), packing


def host_packing(attention_mask: torch.Tensor, pin: bool) -> Packing:
    """`pack` of a CPU mask, pinned for an asynchronous copy when `pin`."""
    packing = pack(attention_mask)
    return packing.pin_memory() if pin else packing


def to_device(batch: Batch, device: torch.device) -> Batch:
    return Batch(*(t.to(device, non_blocking=True) for t in batch))
