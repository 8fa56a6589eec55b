"""Exact categorical sampling on the accelerator: the samplers behind the objective's step 3.

`inverse_cdf` draws one index per row of non-negative weights with ONE uniform number per row, exactly (the
draw is the index whose cumulative weight first exceeds u x total), in two levels so that nothing
vocabulary-wide is sorted, cumulated or converted to float64. `gumbel_max` is the original's algorithm, one
uniform per vocabulary entry; both sample the same distribution (tests/test_sampling.py).
"""
from __future__ import annotations

import torch

BLOCK = 64  # vocabulary block of the two-level inverse-CDF sampler


def uniform(shape: torch.Size | tuple[int, ...], rng: torch.Generator | None, device: torch.device,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) numbers from `rng`, or from the default generator when it is None. The keyword is left out
    then, because functionalized RNG (AOTAutograd's functionalize_rng_ops) rejects a generator argument."""
    return torch.rand(shape, device=device, dtype=dtype, **({"generator": rng} if rng is not None else {}))


def gumbel_max(logits: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """The original's sampler: argmax(logits + g), g = -log(-log(u + 1e-9) + 1e-9), one uniform per vocabulary
    entry (B*N*V draws)."""
    u = uniform(logits.shape, rng, logits.device)
    u.add_(1e-9).log_().neg_().add_(1e-9).log_().neg_()  # Gumbel(0, 1) noise, in place
    return (logits + u).argmax(dim=-1)


def padded(shape: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """An fp32 buffer (..., nb * BLOCK) whose tail past V is zero, and its (..., V) view to write into."""
    *lead, V = shape
    nb = -(-V // BLOCK)
    buf = torch.empty(*lead, nb * BLOCK, device=device)
    buf[..., V:] = 0.0
    return buf, buf[..., :V]


def inverse_cdf(weights: torch.Tensor, rng: torch.Generator | None, u: torch.Tensor | None = None,
                 buffer: torch.Tensor | None = None) -> torch.Tensor:
    """One index per row of `weights` (..., V), drawn with probability weights / weights.sum(-1): exact
    inverse-CDF sampling with ONE float64 uniform per row, in two levels so that nothing V-wide is sorted,
    cumulated or converted to float64: pick a block of BLOCK entries by the cumulative block sums, then an entry
    inside it. `weights` must be >= 0 with a positive row sum; entries of weight 0 are never drawn.
    `buffer`: the `padded` buffer that `weights` is the (..., V) view of (used in place, no copy). `u`
    (..., 1) in [0, 1) replaces the random draw (tests)."""
    *lead, V = weights.shape
    nb = -(-V // BLOCK)
    if buffer is not None:
        base = buffer
    else:
        base, view = padded(tuple(weights.shape), weights.device)
        view.copy_(weights)
    blocks = base.view(*lead, nb, BLOCK)
    # block sums in fp32 (64 terms: relative error ~1e-7, below the fp32 rounding the Gumbel-max path has
    # in logits + noise); the cumulative sums over blocks and inside the chosen block in float64
    cdf = blocks.sum(-1).double().cumsum_(-1)  # (..., nb)
    total = cdf[..., -1:]
    if u is None:
        u = uniform(total.shape, rng, weights.device, torch.float64)
    u = u.to(torch.float64) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))  # strictly below the total
    b = torch.searchsorted(cdf, u, right=True)  # first block whose cumulative sum exceeds u: never empty
    # non-finite weights (a diverged generator) must not index out of range: the step then reports its
    # non-finite loss as a one-line error instead of crashing in a gather here
    b.clamp_max_(nb - 1)
    below = torch.where(b > 0, cdf.gather(-1, (b - 1).clamp_min(0)), torch.zeros_like(u))
    inner = blocks.gather(-2, b[..., None].expand(*b.shape, BLOCK)).squeeze(-2).double().cumsum_(-1)  # (..., B)
    r = torch.minimum(u - below, torch.nextafter(inner[..., -1:], torch.zeros_like(u)))
    j = torch.searchsorted(inner, r, right=True)  # first entry whose cumulative weight exceeds r: weight > 0
    return (b * BLOCK + j).clamp_max_(V - 1).squeeze(-1)


def from_cdf(weights: torch.Tensor, cdf: torch.Tensor, u: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Indices drawn from ONE distribution over V entries, shared by all draws: `weights` (V,) >= 0 and its
    float64 running sum `cdf` (V,); `u` (...) float64 in [0, 1), one per draw. `exclude` (...): an entry each
    draw must not take (drawn from the rest, renormalised), by skipping its stretch of [0, total)."""
    total = cdf[-1]
    if exclude is None:
        x = u * total
    else:
        w_ex = weights.double()[exclude]
        below = cdf[exclude] - w_ex  # the cumulative weight before the excluded entry
        x = u * (total - w_ex)
        x = torch.where(x >= below, x + w_ex, x)
    x = torch.minimum(x, torch.nextafter(total, torch.zeros_like(total)))  # strictly below the total
    # the first entry whose cumulative weight exceeds x: never one of weight 0
    return torch.searchsorted(cdf, x, right=True).clamp_max_(len(cdf) - 1)
