"""Optimizer and learning-rate schedule, as the original's model/optimization.py (electra-spec 1.7).

- `ElectraAdam`: BERT's AdamWeightDecayOptimizer: Adam *without* bias correction, eps added to sqrt(v),
  decoupled weight decay added to the update before it is scaled by the learning rate. With
  `bias_correction=True` it is standard AdamW (tests check it against torch.optim.AdamW).
- `param_groups`: weight decay on everything except biases and LayerNorm parameters.
- `lr_at`: peak * (1 - t/T)^power * min(1, t/warmup): warmup multiplies the decay (they overlap); or, opt-in,
  warmup-stable-decay and cosine.
- `layerwise_lr_scales`: fine-tuning's layer-wise decay, with the original's off-by-one as an option.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def lr_at(step: int, peak: float, total_steps: int, warmup_steps: float, power: float = 1.0,
          schedule: str = "linear", decay_fraction: float = 0.1) -> float:
    """The learning rate used for the update at `step` (0-based); every schedule reaches 0 at total_steps.
        linear  the original's: peak * (1 - t/T)^power * min(1, t/W), warmup and decay overlapping
        wsd     warmup-stable-decay: up to peak over W steps, flat, then (1 - progress)^power down to 0 over the
                last decay_fraction of the steps (ModernBERT's, MiniCPM's shape; a run can be extended before it)
        cosine  up to peak over W steps, then half a cosine from peak to 0 over the rest"""
    warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "linear":
        return peak * max(0.0, 1.0 - step / total_steps) ** power * warmup
    if step < warmup_steps:
        return peak * warmup
    if schedule == "wsd":
        decay_start = total_steps * (1.0 - decay_fraction)
        if step < decay_start:
            return peak
        return peak * max(0.0, 1.0 - (step - decay_start) / (total_steps - decay_start)) ** power
    span = max(1, total_steps - warmup_steps)  # cosine
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def param_groups(model: nn.Module, weight_decay: float, lr_scales: dict[str, float] | None = None) -> list[dict]:
    """Split parameters into decayed / not decayed (biases and LayerNorm, by module type, not by name).
    Shared tensors appear once. `lr_scales` maps parameter names to a learning-rate multiplier."""
    no_decay: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            no_decay.update(id(p) for p in m.parameters(recurse=False))
    seen: set[int] = set()
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        wd = 0.0 if (id(p) in no_decay or name.endswith("bias")) else weight_decay
        scale = 1.0 if lr_scales is None else lr_scales[name]
        groups.setdefault((wd, scale), []).append(p)
    return [{"params": ps, "weight_decay": wd, "lr_scale": scale} for (wd, scale), ps in groups.items()]


class ElectraAdam(torch.optim.Optimizer):
    """Adam with decoupled weight decay; by default without bias correction, as BERT/ELECTRA's optimizer:
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        update = m / (sqrt(v) + eps) + wd * p;  p -= lr * update
    With bias_correction=True, m and v are divided by (1 - b^t) and decay is p -= lr * wd * p (AdamW)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, bias_correction: bool = False, fused: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction))
        self.fused = fused
        self._no_correction: dict[torch.device, torch.Tensor] = {}

    def _fused_step(self, params: list, grads: list, m: list, v: list, group: dict) -> bool:
        """The update in one pass per tensor list with torch's fused AdamW kernel. Its bias corrections
        1 - b^t vanish exactly (b^t underflows to 0) when it is shown a step count of 2^40, and its decoupled
        decay p *= 1 - lr wd followed by p -= lr m / (sqrt(v) + eps) is the update above, term for term. Plain
        tensors only (FSDP's DTensors take the foreach path); False when it did not apply."""
        if not self.fused or group["bias_correction"] or any(type(p) is not nn.Parameter for p in params):
            return False
        dev = params[0].device
        if dev not in self._no_correction:
            self._no_correction[dev] = torch.tensor(2.0 ** 40, device=dev)
        b1, b2 = group["betas"]
        torch._fused_adamw_(params, grads, m, v, [], [self._no_correction[dev]] * len(params), lr=group["lr"],
                            beta1=b1, beta2=b2, weight_decay=group["weight_decay"], eps=group["eps"],
                            amsgrad=False, maximize=False)
        return True

    @torch.no_grad()
    def step(self, closure=None):  # torch's signature
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = group["betas"]
            for p in params:
                if not self.state[p]:
                    self.state[p]["step"] = torch.zeros((), dtype=torch.float32)
                    self.state[p]["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    self.state[p]["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            grads = [p.grad for p in params]
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            steps = [self.state[p]["step"] for p in params]
            torch._foreach_add_(steps, 1.0)
            if self._fused_step(params, grads, m, v, group):
                continue
            torch._foreach_lerp_(m, grads, 1 - b1)  # m = b1 m + (1 - b1) g
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)  # v = b2 v + (1 - b2) g^2
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            if group["bias_correction"]:
                t = float(steps[0])
                bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
                if wd:
                    torch._foreach_mul_(params, 1 - lr * wd)
                denom = torch._foreach_sqrt(v)
                torch._foreach_div_(denom, bc2 ** 0.5)
                torch._foreach_add_(denom, eps)
                torch._foreach_addcdiv_(params, m, denom, value=-lr / bc1)
            else:
                denom = torch._foreach_sqrt(v)
                torch._foreach_add_(denom, eps)
                update = torch._foreach_div(m, denom)
                if wd:
                    torch._foreach_add_(update, params, alpha=wd)
                torch._foreach_add_(params, update, alpha=-lr)


def build_optimizer(model: nn.Module, kind: str, lr: float, weight_decay: float, betas: tuple[float, float],
                    eps: float, lr_scales: dict[str, float] | None = None) -> torch.optim.Optimizer:
    """`electra` (the original: no bias correction) or `adamw` (torch's); both fused where the device has it."""
    groups = param_groups(model, weight_decay, lr_scales)
    device = next(model.parameters()).device
    fused = device.type in ("cuda", "xpu", "cpu")  # torch has fused AdamW kernels for all three
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
    return ElectraAdam(groups, lr=lr, betas=betas, eps=eps, bias_correction=False, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Apply the scheduled rate to every group, times its layer-wise scale. A group whose lr is a tensor (a step
    replayed as a CUDA graph reads it there) has it filled in place."""
    for group in optimizer.param_groups:
        value = lr * group.get("lr_scale", 1.0)
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


def layerwise_lr_scales(param_names: list[str], num_layers: int, decay: float, depth_of,
                        original_off_by_one: bool = False) -> dict[str, float]:
    """Layer-wise learning-rate decay for fine-tuning (spec 1.7): scale = decay^(top - depth), where depth is
    0 for embeddings, i+1 for block i and the task head is on top. The original's code counts a pooler
    layer that ELECTRA no longer has, so its top block gets decay^2 and everything below one more
    factor; `original_off_by_one=True` reproduces that (richarddwang's `original_lr_layer_decays`).
    `depth_of(name) -> int | None` returns the depth, None for head parameters."""
    top = num_layers + 2 if original_off_by_one else num_layers + 1
    scales = {}
    for name in param_names:
        depth = depth_of(name)
        scales[name] = 1.0 if depth is None else decay ** (top - depth)
    return scales
