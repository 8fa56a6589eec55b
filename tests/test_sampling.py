"""The generator's two samplers draw from the same distribution, softmax(logits / temperature):
`gumbel` (the original's Gumbel-max) and `multinomial` (exact two-level inverse-CDF, the default).

    python -m pytest tests/test_sampling.py -q
"""
from __future__ import annotations

import pytest
import torch

from electra.objective import Masked, sample_tokens
from electra.sampler import inverse_cdf


def slots(logits_NV: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, Masked, torch.Tensor]:
    """(1, N, V) logits for N masked slots at positions 1..N of a row of N + 1 zeros."""
    N = logits_NV.shape[0]
    ids = torch.zeros(1, N + 1, dtype=torch.long)
    t = torch.zeros(1, N, dtype=torch.long) if targets is None else targets[None]
    return logits_NV[None], Masked(ids, torch.arange(1, N + 1)[None], torch.ones(1, N), t), ids


def chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    keep = expected > 0
    assert counts[~keep].sum() == 0  # nothing drawn where the probability is 0
    return float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())


LOGITS = torch.tensor([3.0, 2.0, 1.5, 0.0, -1.0, -3.0, 1.0, 2.5, -20.0])  # includes a (practically) impossible token


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("method", ["gumbel", "multinomial"])
def test_both_samplers_follow_the_softmax(method, temperature):
    n = 40_000
    logits, m, ids = slots(LOGITS.expand(n, -1).contiguous())
    s = sample_tokens(logits, m, ids, temperature, False, torch.Generator().manual_seed(1), method)
    counts = torch.bincount(s.tokens.flatten(), minlength=len(LOGITS)).double()
    p = torch.softmax(LOGITS.double() / temperature, -1)
    # 8 degrees of freedom (the -20 logit contributes ~0): P(chi2 > 35) ~ 2e-5
    assert chi2(counts[:-1], p[:-1] / p[:-1].sum()) < 35, (method, temperature, counts, p * n)


def test_the_two_samplers_agree_with_each_other_on_a_wide_vocabulary():
    """V = 300 (not a multiple of the 64-wide block), bf16 logits as under autocast; two-sample chi-square."""
    g = torch.Generator().manual_seed(0)
    V, n = 300, 60_000
    row = (torch.randn(V, generator=g) * 2).bfloat16()
    logits, m, ids = slots(row.expand(n, -1).contiguous())
    a = sample_tokens(logits, m, ids, 1.0, False, torch.Generator().manual_seed(2), "gumbel").tokens.flatten()
    b = sample_tokens(logits, m, ids, 1.0, False, torch.Generator().manual_seed(3), "multinomial").tokens.flatten()
    assert int(b.max()) < V and int(a.max()) < V
    ca, cb = torch.bincount(a, minlength=V).double(), torch.bincount(b, minlength=V).double()
    p = torch.softmax(row.double(), -1)
    # pool the rare tokens so every cell expects >= 20 draws
    order = p.argsort(descending=True)
    big = order[p[order] * n >= 20]
    rest = order[p[order] * n < 20]
    cells_a = torch.cat([ca[big], ca[rest].sum()[None]])
    cells_b = torch.cat([cb[big], cb[rest].sum()[None]])
    stat = float(((cells_a - cells_b) ** 2 / (cells_a + cells_b).clamp_min(1)).sum())
    dof = len(cells_a) - 1
    assert stat < dof + 6 * (2 * dof) ** 0.5, (stat, dof)  # ~6 sigma of the chi-square(dof)
    for c in (ca, cb):  # and each one against the softmax
        cells = torch.cat([c[big], c[rest].sum()[None]])
        probs = torch.cat([p[big], p[rest].sum()[None]])
        assert chi2(cells, probs) < dof + 6 * (2 * dof) ** 0.5


def test_inverse_cdf_maps_the_unit_interval_exactly():
    """With u on a fine grid instead of random draws, every index gets exactly its share of [0, 1):
    the map itself is exact (float64 cumulative sums), the only randomness is the one uniform per row."""
    g = torch.Generator().manual_seed(5)
    V, n = 200, 100_000  # 4 blocks, the last one partly padding
    w = torch.rand(V, generator=g) ** 4
    w[[0, 63, 64, 130, 199]] = 0.0  # zero weights at block edges: never drawn
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    idx = inverse_cdf(w.expand(n, -1).contiguous(), None, u[:, None])
    counts = torch.bincount(idx, minlength=V).double()
    assert counts.shape[0] == V  # never a padded index
    assert counts[[0, 63, 64, 130, 199]].sum() == 0
    expected = w.double() / w.double().sum() * n
    assert (counts - expected).abs().max() <= 1.0  # a grid of n points: off by at most one point per index
    # u at the extremes
    ends = inverse_cdf(w.expand(2, -1).contiguous(), None, torch.tensor([[0.0], [1.0 - 2**-53]]))
    assert ends.tolist() == [1, 198]


def test_disallow_correct_never_samples_the_target_in_both():
    g = torch.Generator().manual_seed(4)
    n, V = 2000, 50
    logits = torch.randn(n, V, generator=g)
    targets = torch.randint(0, V, (n,), generator=g)
    logits[torch.arange(n), targets] = 30.0  # the generator is sure and right
    lg, m, ids = slots(logits, targets)
    for method in ("gumbel", "multinomial"):
        s = sample_tokens(lg, m, ids, 1.0, True, torch.Generator().manual_seed(0), method)
        assert (s.tokens[0] != targets).all(), method


def test_multinomial_returns_the_generators_argmax():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(1, 30, 77, generator=g)
    _, m, ids = slots(logits[0])
    s = sample_tokens(logits, m, ids, 1.0, False, None, "multinomial")
    assert (s.argmax == logits.argmax(-1)).all()
    with pytest.raises(ValueError):
        sample_tokens(logits, m, ids, 1.0, False, None, "topk")


def test_electra_step_runs_with_either_sampler(monkeypatch):
    """--sampling picks the sampler a training step calls (spied on), and the step trains."""
    from electra import objective
    from electra.config import build_config
    from electra.objective import Electra, SpecialTokens
    calls = []
    for name in ("gumbel_max", "inverse_cdf"):
        real = getattr(objective, name)
        spy = lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k)
        monkeypatch.setattr(objective, name, spy)
    sp = SpecialTokens(0, 101, 102, 103)
    ids = torch.randint(110, 300, (3, 16), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1] = sp.cls, sp.sep
    ids[2, 8:] = 0
    for method, sampler in (("gumbel", "gumbel_max"), ("multinomial", "inverse_cdf")):
        calls.clear()
        cfg = build_config(None, dict(vocab_size="300", hidden_size="32", embedding_size="16", num_layers="1",
                                      num_heads="2", intermediate_size="64", seq_len="16", sampling=method))
        model = Electra(cfg, sp)
        out = model(ids, torch.zeros_like(ids), ids != 0)
        out.losses.total.backward()
        assert calls == [sampler], (method, calls)
        assert torch.isfinite(out.losses.total) and out.stats.masked > 0
        assert all(p.grad is not None for p in model.discriminator.parameters())


def test_uniform_draws_from_the_given_generator_or_the_default_one():
    """sampler.uniform leaves the generator keyword out when there is none (functionalized RNG rejects it), and
    then draws what torch.rand draws from the default generator."""
    from electra.sampler import uniform

    torch.manual_seed(3)
    expected = torch.rand(4, 5, dtype=torch.float64)
    torch.manual_seed(3)
    assert torch.equal(uniform((4, 5), None, torch.device("cpu"), torch.float64), expected)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(uniform((4, 5), g, torch.device("cpu"), torch.float64), expected)
