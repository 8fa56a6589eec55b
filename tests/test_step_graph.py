"""`--compile-mode step-graph`: the whole training step recorded as one CUDA graph (`device.StepGraph`).

What it relies on is tested everywhere: a learning rate held as a tensor (filled in place by `set_lr`, saved as a
number) trains as the float one, and the mode refuses, in one line, what it cannot record. The graph itself is
tested on CUDA (skipped here): a step-graph run gives the compiled run's losses, with the `electra` optimizer
and with torch's AdamW, and it trains, saves and resumes.

    python -m pytest tests/test_step_graph.py -q
"""
from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_overrides
from test_objective import SP, tiny_cfg
from torch import nn

from electra.checkpoint import optimizer_to_flat
from electra.cli import main
from electra.device import StepGraph, full_step
from electra.optim import build_optimizer, lr_at, set_lr

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_a_tensor_learning_rate_is_filled_in_place_and_trains_as_the_float_one():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    b = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    b.load_state_dict(a.state_dict())
    opt_a = build_optimizer(a, "electra", 1e-2, 0.01, (0.9, 0.999), 1e-6)
    opt_b = build_optimizer(b, "electra", 1e-2, 0.01, (0.9, 0.999), 1e-6)
    rates = [torch.tensor(1e-2) for _ in opt_b.param_groups]
    for group, rate in zip(opt_b.param_groups, rates):
        group["lr"] = rate
    for step in range(12):
        x, y = torch.randn(8, 6), torch.randn(8, 3)
        for model, opt in ((a, opt_a), (b, opt_b)):
            set_lr(opt, lr_at(step, 1e-2, 12, 4))
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    assert all(g["lr"] is r for g, r in zip(opt_b.param_groups, rates))  # the same tensors, refilled
    assert float(rates[0]) == pytest.approx(lr_at(11, 1e-2, 12, 4))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6, rtol=1e-5)
    _, meta = optimizer_to_flat(opt_b)  # the checkpoint's state.json holds the number
    assert json.loads(json.dumps(meta))["param_groups"][0]["lr"] == pytest.approx(float(rates[0]))
    with pytest.raises(ValueError, match="lr as a device tensor"):
        StepGraph(lambda: None, opt_a)


def test_the_recorded_step_is_the_loops_step():
    """`full_step` (what the graph records) against the same step written out by hand on a copy of the model:
    the same losses, gradient norm and updated weights; its outputs hold no autograd graph; the rates became
    tensors that set_lr fills."""
    from electra.objective import Electra
    cfg = tiny_cfg(hidden_dropout="0.1")
    torch.manual_seed(0)
    a, b = Electra(cfg, SP), Electra(cfg, SP)
    b.load_state_dict(a.state_dict())
    opt_a = build_optimizer(a, "electra", 1e-3, 0.01, (0.9, 0.999), 1e-6)
    opt_b = build_optimizer(b, "electra", 1e-3, 0.01, (0.9, 0.999), 1e-6)
    params_a = [p for p in a.parameters() if p.requires_grad]
    ids = torch.randint(110, 300, (4, 16))
    ids[:, 0], ids[:, -1] = SP.cls, SP.sep
    batch = (ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool))
    step = full_step(a, opt_a, params_a, 0.5, torch.autocast("cpu", enabled=False))
    assert all(torch.is_tensor(g["lr"]) for g in opt_a.param_groups)
    set_lr(opt_a, 1e-3)
    torch.manual_seed(7)
    out, norm = step(*batch)
    torch.manual_seed(7)
    ref = b(*batch)
    ref.losses.total.backward()
    ref_norm = torch.nn.utils.clip_grad_norm_([p for p in b.parameters() if p.requires_grad], 0.5)
    opt_b.step()
    assert out.disc_logits is None and out.labels is None
    assert all(x.grad_fn is None and not x.requires_grad for x in out.losses)
    assert torch.equal(out.losses.total, ref.losses.total.detach()) and torch.equal(norm, ref_norm)
    assert float(norm) > 0.5  # the clip did act
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-7)


def test_step_graph_refuses_what_it_cannot_record_in_one_line(tiny_dataset, tmp_path, capsys):
    base = ["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"), "--compile", "true",
            "--compile-mode", "step-graph"]
    for extra in (["--device", "cpu"], ["--micro-batch-size", "4"], ["--unpad", "on"]):
        assert main([*base, *tiny_overrides(), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "step-graph records one whole optimizer step" in err[0], (extra, err)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def losses(run) -> dict[int, tuple[float, float]]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["train/loss"], r["train/grad_norm"]) for r in rows if "train/loss" in r}


@cuda
def test_step_graph_run_gives_the_compiled_runs_losses(tiny_dataset, tmp_path):
    """A rate so small that the weights stay put: every step then compares the two on the same weights (with a
    real rate, bf16 rounding differences grow chaotically). Steps 1-3 are the warm-up, 4 the recording, 5-8
    replays; their losses and gradient norms must agree."""
    args = ["pretrain", "--data", str(tiny_dataset), *tiny_overrides(max_steps=8, eval_every=0, precision="bf16",
                                                                     lr=1e-12), "--compile", "true", "--no-tensorboard",
            "--unpad", "off"]  # both padded: the unpadded encoders (CUDA's default) draw other dropout masks
    curves = {}
    for mode in ("default", "step-graph"):
        assert main([*args, "--out", str(tmp_path / mode), "--compile-mode", mode]) == 0
        curves[mode] = losses(tmp_path / mode)
    assert curves["default"].keys() == curves["step-graph"].keys() == set(range(1, 9))
    for step, (loss, norm) in curves["default"].items():
        got_loss, got_norm = curves["step-graph"][step]
        assert got_loss == pytest.approx(loss, rel=1e-3) and got_norm == pytest.approx(norm, rel=1e-2), step


@cuda
def test_step_graph_trains_saves_and_resumes(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--compile", "true", "--compile-mode",
            "step-graph", "--no-tensorboard", *tiny_overrides(max_steps=6, eval_every=3, save_every=3,
                                                              precision="bf16")]
    assert main(args) == 0
    assert "each step one CUDA graph" in capsys.readouterr().out
    first = losses(run)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in first.values()) and first[6][0] < first[1][0]
    state = json.loads((run / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert isinstance(state["optimizer"]["param_groups"][0]["lr"], float)
    assert main([*args, "--max-steps", "9"]) == 0  # resumes from step 6 and runs 7-9
    assert set(losses(run)) == set(range(1, 10))


@cuda
def test_step_graph_with_torch_adamw_follows_the_compiled_run(tiny_dataset, tmp_path):
    """torch's AdamW in the graph (set capturable): its step counts, and with them its bias corrections, advance
    on the device in every replay, and the learning rate follows the schedule. In fp32 with a real, changing
    rate the graph's losses follow the compiled run's, and the saved step count is the run's."""
    from safetensors.torch import load_file

    args = ["pretrain", "--data", str(tiny_dataset), *tiny_overrides(max_steps=8, eval_every=0, save_every=8,
                                                                     precision="fp32", warmup_steps=2),
            "--compile", "true", "--no-tensorboard", "--unpad", "off", "--optimizer", "adamw"]
    curves = {}
    for mode in ("default", "step-graph"):
        run = tmp_path / mode
        assert main([*args, "--out", str(run), "--compile-mode", mode]) == 0
        curves[mode] = losses(run)
        steps = [v for k, v in load_file(str(run / "checkpoints" / "step_00000008" / "optimizer.safetensors")).items()
                 if k.endswith(".step")]
        assert steps and all(float(s) == 8 for s in steps), mode
    for step, (loss, _) in curves["default"].items():
        assert curves["step-graph"][step][0] == pytest.approx(loss, rel=1e-3), step
