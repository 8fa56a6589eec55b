"""Running the training step fast on the device at hand: bf16 where it is native, torch.compile and CUDA
graphs, and batches prepared on the host (packing for the unpadded encoders, pinned memory) so that the step
never waits for them. The model and the objective know nothing of this; `electra pretrain` and the
benchmarks use it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from electra.config import TrainConfig
from electra.data.dataset import Batch
from electra.packing import Packing, pack


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
    an unpadded batch changes every step: dynamo recompiles once, at the second count, with it dynamic.
    `step-graph` compiles in Inductor's default mode: `StepGraph` records the CUDA graph itself."""
    return torch.compile(model, mode=None if mode in ("default", "step-graph") else mode)


def cuda_graphs(t: TrainConfig) -> bool:
    """CUDA graphs replay fixed shapes: with them, unpadded batches (a new token count each step) would record
    a graph per count, so `unpad=auto` keeps the padded layout."""
    return t.compile and t.compile_mode in ("reduce-overhead", "max-autotune", "step-graph")


class StepGraph:
    """A whole training step (forward, backward, gradient clipping and the optimizer's update) recorded once as
    ONE CUDA graph and replayed on every later batch: torch's "whole network capture". Against
    `reduce-overhead` (a graph for the forward, one for the backward, the optimizer launched kernel by kernel)
    the host launches one graph per step and nothing else, so the GPU never waits for Python.

    The first `warmup` calls run `step` as it is, on a side stream (compilation, the optimizer's state); the
    next call records it, then replays it. Each call is one real training step, drawing its random numbers
    (masking, sampling, dropout) from the generator's state at that call, as the plain step does: both give
    the same losses (benchmarks/stepgraph_check.py). The gradients live in the graph's memory and each replay
    overwrites them, so nothing may zero them in between; the learning rate must be a device tensor in each
    param group (`set_lr` fills it), or the first rate would be recorded for good. `step(*inputs)` returns
    tensors, which replays overwrite in place: read (or copy) them before the next call. They should hold no
    autograd graph (detached): a graph kept alive from one step to the next keeps its gradient-accumulation
    nodes on the stream of the step that made them (the warm-up's), and autograd then warns of the mismatch."""

    def __init__(self, step, optimizer: torch.optim.Optimizer, warmup: int = 3):
        for group in optimizer.param_groups:
            if not torch.is_tensor(group["lr"]):
                raise ValueError("StepGraph needs each param group's lr as a device tensor")
            if "capturable" in group:  # torch's AdamW: its step counters on the device, as a capture needs
                group["capturable"] = True
        self.step, self.optimizer, self.warmup, self.calls = step, optimizer, warmup, 0
        self.side = torch.cuda.Stream()  # every warm-up step on this one
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self, *inputs: torch.Tensor):
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                self.optimizer.zero_grad(set_to_none=True)
                out = self.step(*inputs)
            torch.cuda.current_stream().wait_stream(self.side)
            return out
        if self.graph is None:
            self.inputs = [t.clone() for t in inputs]
            self.optimizer.zero_grad(set_to_none=True)  # the capture allocates the gradients in the graph's memory
            rng = torch.cuda.get_rng_state()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = self.step(*self.inputs)
            torch.cuda.set_rng_state(rng)  # this step draws as if nothing had been recorded
        for static, t in zip(self.inputs, inputs):
            static.copy_(t, non_blocking=True)
        self.graph.replay()
        return self.out


def full_step(step_model: torch.nn.Module, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
              max_norm: float, autocast: contextlib.AbstractContextManager) -> Callable[..., tuple[Any, torch.Tensor]]:
    """The step that `StepGraph` records (`--compile-mode step-graph`): forward, backward, clipping and update on
    one batch, returning the model's output, detached (no autograd graph outlives the step), and the gradient
    norm. It turns each group's learning rate into a device tensor, which the graph reads at every replay and
    `set_lr` fills."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=params[0].device)

    def step(*batch: torch.Tensor) -> tuple[Any, torch.Tensor]:
        with autocast:
            out = step_model(*batch)
        out.losses.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        losses = type(out.losses)(*(x.detach() for x in out.losses))
        return out._replace(losses=losses, disc_logits=None, labels=None), grad_norm  # what the loop reads

    return step


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
