"""Dropout, fast on CPU in eager mode (`dropout`, `Dropout`; model.py uses them). torch's CPU dropout (`bernoulli_` + div + mul) draws a double-precision
Bernoulli per element from the serial mt19937 generator (~7.5 ms per million elements here) and writes a
mask in the activation dtype: 8-27% of an ELECTRA step on CPU. This one draws 16 random bits per
element (4 elements per 64-bit draw, from the same seeded torch generator) and keeps an element when
they fall below floor(q * 2^16); the few elements exactly at the threshold (1 in 65536) are decided by
an extra uniform, so P(keep) = q exactly (to float32 precision, as torch's). The mask is stored as one
byte per element for the backward pass. CUDA and torch.compile keep F.dropout (fused RNG there).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_TIE_ROW = 64  # elements per tie-check row (8 int64 words of bools)


def keep_mask(shape: torch.Size | tuple[int, ...], keep_prob: float, device: torch.device,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool tensor of `shape`, each element independently True with probability `keep_prob`."""
    n = math.prod(shape)
    n_pad = -(-n // _TIE_ROW) * _TIE_ROW
    words = torch.empty(n_pad // 4, dtype=torch.int64, device=device).random_(-2**63, None, generator=generator)
    u = words.view(torch.int16)  # n_pad uniform 16-bit integers in [-32768, 32767]
    t = keep_prob * 65536.0
    k = math.floor(t)
    thr = k - 32768
    keep = u < thr
    if t > k:  # u == thr: keep with probability t - k
        tie = u == thr
        rows = tie.view(torch.int64).view(-1, _TIE_ROW // 8).ne(0).any(-1).nonzero().squeeze(1)  # ~0.1% of rows
        if rows.numel():
            kr = keep.view(-1, _TIE_ROW)
            extra = torch.rand(rows.shape[0], _TIE_ROW, generator=generator, device=device) < (t - k)
            kr[rows] = kr[rows] | (tie.view(-1, _TIE_ROW)[rows] & extra)
    return keep[:n].view(shape)


class _FastDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = keep_mask(x.shape, 1.0 - p, x.device).view(torch.uint8)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return x.mul(keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout's semantics (zero with probability p, scale the rest by 1 / (1 - p)); see _FastDropout."""
    if not training or p == 0.0:
        return x
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        return _FastDropout.apply(x, p)
    return F.dropout(x, p, True)


class Dropout(nn.Dropout):
    """nn.Dropout (no parameters, same state dict) through `dropout` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
