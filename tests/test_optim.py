"""Optimizer and schedule against the original (spec 1.7): hand-computed Adam-without-bias-correction
update, torch.optim.AdamW for the bias-corrected variant, learning-rate values, decay groups.

    python -m pytest tests/test_optim.py -q
"""
import math

import pytest
import torch
from torch import nn

from electra.optim import ElectraAdam, build_optimizer, layerwise_lr_scales, lr_at, param_groups


def test_lr_schedule_values():
    peak, T, W = 5e-4, 1000, 100
    assert lr_at(0, peak, T, W) == 0.0  # warmup starts at 0
    assert math.isclose(lr_at(50, peak, T, W), peak * 0.5 * (1 - 50 / T))  # warmup times decay (they overlap)
    assert math.isclose(lr_at(100, peak, T, W), peak * (1 - 100 / T))  # end of warmup: 0.9 peak, not peak
    assert math.isclose(lr_at(500, peak, T, W), peak * 0.5)  # mid
    assert math.isclose(lr_at(999, peak, T, W), peak / T)  # last step
    assert lr_at(1000, peak, T, W) == 0.0
    assert math.isclose(lr_at(10_000, 5e-4, 1_000_000, 10_000), 0.99 * 5e-4)  # spec: ~0.99 lr at 10k of 1M
    assert math.isclose(lr_at(500, peak, T, W, power=2.0), peak * 0.25)  # lr_decay_power: (1 - t/T)^p
    assert math.isclose(lr_at(50, peak, T, W, power=2.0), peak * 0.5 * (1 - 50 / T) ** 2)


def test_warmup_stable_decay_and_cosine_schedules():
    peak, T, W = 1e-3, 1000, 100
    wsd = lambda t, **kw: lr_at(t, peak, T, W, schedule="wsd", decay_fraction=0.2, **kw)
    assert wsd(0) == 0.0 and math.isclose(wsd(50), peak / 2)  # warmup alone, not times a decay
    assert wsd(100) == wsd(500) == wsd(800) == peak  # flat until the last 20% (step 800)
    assert math.isclose(wsd(900), peak / 2) and math.isclose(wsd(999), peak / 200)  # linear to 0 at T
    assert math.isclose(wsd(900, power=2.0), peak / 4) and wsd(1000) == 0.0
    cos = lambda t: lr_at(t, peak, T, W, schedule="cosine")
    assert math.isclose(cos(50), peak / 2) and cos(100) == peak
    assert math.isclose(cos(550), peak / 2) and math.isclose(cos(1000), 0.0, abs_tol=1e-18)
    assert math.isclose(cos(325), peak * (1 + math.cos(math.pi / 4)) / 2)
    assert lr_at(0, peak, T, 0, schedule="cosine") == peak  # no warmup: starts at the peak


@pytest.mark.parametrize("fused", [False, True])
def test_update_matches_hand_computation_without_bias_correction(fused):
    p = nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = ElectraAdam([{"params": [p], "weight_decay": 0.01}], lr=0.1, betas=(0.9, 0.999), eps=1e-6, fused=fused)
    grads = [torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-0.5, 0.25, 1.0])]
    expect = p.detach().clone()
    m = torch.zeros(3)
    v = torch.zeros(3)
    for g in grads:
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expect = expect - 0.1 * (m / (v.sqrt() + 1e-6) + 0.01 * expect)
    assert torch.allclose(p.detach(), expect, atol=1e-6)


def train_side_by_side(pairs, steps: int, width: int) -> None:
    """`steps` updates of each (model, optimizer) pair on the same random inputs (loss: sum of squared outputs)."""
    for _ in range(steps):
        x = torch.randn(8, width)
        for model, opt in pairs:
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()


def test_fused_kernel_path_equals_the_foreach_path_on_a_model():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    b = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    b.load_state_dict(a.state_dict())
    fused = build_optimizer(a, "electra", 1e-2, 0.01, (0.9, 0.999), 1e-6)  # CPU has torch's fused kernel
    assert fused.fused
    plain = ElectraAdam(param_groups(b, 0.01), lr=1e-2, eps=1e-6, fused=False)
    train_side_by_side(((a, fused), (b, plain)), 20, 6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6, rtol=1e-5)
    sa, sb = fused.state_dict()["state"], plain.state_dict()["state"]
    assert all(torch.allclose(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) and float(sa[k]["step"]) == 20 for k in sa)


def test_bias_corrected_variant_equals_torch_adamw():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 4), nn.Linear(5, 4)
    b.load_state_dict(a.state_dict())
    ours = ElectraAdam(a.parameters(), lr=1e-2, eps=1e-6, weight_decay=0.01, bias_correction=True)
    ref = torch.optim.AdamW(b.parameters(), lr=1e-2, eps=1e-6, weight_decay=0.01)
    train_side_by_side(((a, ours), (b, ref)), 5, 5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_no_decay_on_biases_and_layernorm_and_shared_once():
    emb = nn.Embedding(10, 4)
    model = nn.ModuleDict({"emb": emb, "lin": nn.Linear(4, 4), "norm": nn.LayerNorm(4), "again": emb})
    groups = param_groups(model, 0.01)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(emb.weight), id(model["lin"].weight)}
    assert sum(len(g["params"]) for g in groups) == 5  # the shared embedding once
    opt = build_optimizer(model, "adamw", 1e-3, 0.01, (0.9, 0.999), 1e-6)
    assert isinstance(opt, torch.optim.AdamW)


@pytest.mark.parametrize("layers, decay", [(12, 0.8), (24, 0.9)])
def test_layerwise_scales(layers, decay):
    names = ["embeddings.word.weight", "project.weight"] + [f"blocks.{i}.mlp.fc.weight" for i in range(layers)] + ["head.out.weight"]

    def depth(n: str):
        if n.startswith(("embeddings", "project")):
            return 0
        if n.startswith("blocks."):
            return int(n.split(".")[1]) + 1
        return None

    fixed = layerwise_lr_scales(names, layers, decay, depth)
    assert fixed["head.out.weight"] == 1.0
    assert math.isclose(fixed[f"blocks.{layers - 1}.mlp.fc.weight"], decay)
    assert math.isclose(fixed["embeddings.word.weight"], decay ** (layers + 1))
    orig = layerwise_lr_scales(names, layers, decay, depth, original_off_by_one=True)
    assert math.isclose(orig[f"blocks.{layers - 1}.mlp.fc.weight"], decay ** 2)  # the original's top layer
    assert math.isclose(orig["blocks.0.mlp.fc.weight"], decay ** (layers + 1))
    assert math.isclose(orig["embeddings.word.weight"], decay ** (layers + 2))
