"""--precision fp16: loss scaling leaves a clean step's update exactly as unscaled, skips (and halves the scale on)
an overflowing one, logs the scale, and resumes exactly because the scaler's state is in the checkpoint.

    python -m pytest tests/test_precision.py -q
"""
from __future__ import annotations

import json
import signal

import pytest
import torch
from conftest import tiny_overrides
from test_pretrain import final_weights, run_cli

from electra.cli import main
from electra.config import build_config
from electra.errors import UserError
from electra.precision import INIT_SCALE, LossScaler, autocast_dtype


def model_and_loss(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.GELU(), torch.nn.Linear(5, 1))
    x = torch.randn(16, 6)
    return m, m(x).pow(2).mean()


def test_a_clean_scaled_step_is_the_unscaled_step_exactly_and_an_overflow_is_skipped():
    plain, loss = model_and_loss()
    opt = torch.optim.AdamW(plain.parameters(), lr=0.1)
    loss.backward()
    opt.step()
    scaled, loss = model_and_loss()
    opt = torch.optim.AdamW(scaled.parameters(), lr=0.1)
    scaler = LossScaler(True, torch.device("cpu"))
    scaler.scale(loss).backward()  # S = 2^16: a power of two, so the gradients / S are the unscaled ones exactly
    scaler.unscale(opt)
    scaler.step(opt)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), scaled.parameters()))
    assert scaler.loss_scale == INIT_SCALE and scaler.take_skipped() == 0
    before = [p.detach().clone() for p in scaled.parameters()]
    opt.zero_grad()
    loss = scaled(torch.randn(16, 6)).pow(2).mean()
    scaler.scale(loss * float("inf")).backward()  # an overflow: the step is skipped and S halved
    scaler.unscale(opt)
    scaler.step(opt)
    assert all(torch.equal(a, b) for a, b in zip(before, scaled.parameters()))
    assert scaler.loss_scale == INIT_SCALE / 2 and scaler.take_skipped() == 1 and scaler.take_skipped() == 0
    again = LossScaler(True, torch.device("cpu"))
    again.load_state_dict(json.loads(json.dumps(scaler.state_dict())))  # a checkpoint's JSON round trip
    assert again.loss_scale == INIT_SCALE / 2
    with pytest.raises(UserError, match="grad_scaler state is damaged"):
        again.load_state_dict({"scale": "big"})
    off = LossScaler(False, torch.device("cpu"))
    assert off.scale(loss) is loss and off.loss_scale == 1.0 and off.state_dict() == {}


def test_precision_choices():
    cpu = torch.device("cpu")
    assert autocast_dtype("fp16", cpu) == torch.float16 and autocast_dtype("bf16", cpu) == torch.bfloat16
    assert autocast_dtype("fp32", cpu) is None
    with pytest.raises(UserError, match="does not go with --precision fp16"):
        build_config("tiny", {"precision": "fp16", "residual": "bf16"})
    with pytest.raises(UserError, match="auto, fp32, bf16 or fp16"):
        build_config("tiny", {"precision": "fp8"})


def test_fp16_trains_logs_its_scale_and_resumes_exactly(tiny_dataset, tmp_path, capsys):
    args = ["pretrain", "--data", str(tiny_dataset), "--no-tensorboard",
            *tiny_overrides(precision="fp16", max_steps=6, eval_every=0, save_every=2, log_every=2)]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert main([*args, "--out", str(straight)]) == 0
    assert "precision fp16 (dynamic loss scaling)" in capsys.readouterr().out
    rows = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines() if "train/loss" in x]
    assert all(r["train/loss_scale"] <= INIT_SCALE and r["train/skipped_steps"] >= 0 for r in rows)
    assert all(r["train/loss"] == r["train/loss"] for r in rows)  # finite: no NaN
    state = json.loads((straight / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["grad_scaler"]["scale"] == rows[-1]["train/loss_scale"]
    r = run_cli([*args, "--out", str(crashed)], env={"ELECTRA_FAULT_AT_STEP": "3"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert run_cli([*args, "--out", str(crashed)]).returncode == 0
    a, b = final_weights(straight), final_weights(crashed)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the scale (and which steps it skipped) carried over


def test_fp16_fine_tuning_learns_the_toy_task_as_fp32_does(tmp_path):
    from test_finetune_custom import FAST, sentiment_rows, write_csv
    from test_finetune_fixtures import make_run

    run, data = make_run(tmp_path), tmp_path / "mine"
    write_csv(data / "train.csv", ["id", "text", "label"], sentiment_rows(48, 0))
    write_csv(data / "dev.csv", ["id", "text", "label"], sentiment_rows(12, 1))
    for precision in ("fp16", "fp32"):
        out = tmp_path / precision
        assert main(["finetune", "--task", "classify", "--data", str(data), "--model", str(run), "--out", str(out),
                     "--precision", precision, *FAST]) == 0
        res = json.loads((out / "results.json").read_text())
        assert res["summary"]["accuracy"]["median"] == 100.0 and res["config"]["precision"] == precision
