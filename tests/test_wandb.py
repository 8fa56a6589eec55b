"""--wandb PROJECT: every metric that reaches metrics.jsonl reaches Weights & Biases at the same step, a resumed
run logs into the same W&B run, a --time-budget plan updates the config W&B shows, and a real (offline) W&B run
is written; bad use is a one-line error before anything is built. `electra finetune --wandb` logs one W&B run
per seed: its loss curve and its dev scores.

    python -m pytest tests/test_wandb.py -q
"""
from __future__ import annotations

import json
import sys
import types

import pytest
from conftest import tiny_overrides

from electra.cli import main


class FakeRun:
    def __init__(self, calls: list, **kwargs):
        self.calls, self.config = calls, types.SimpleNamespace(update=lambda d, **kw: calls.append(("config", d, kw)))
        calls.append(("init", kwargs))

    def log(self, metrics: dict, step: int) -> None:
        self.calls.append(("log", step, dict(metrics)))

    def finish(self) -> None:
        self.calls.append(("finish",))


@pytest.fixture
def fake_wandb(monkeypatch):
    calls: list = []
    module = types.ModuleType("wandb")
    module.init = lambda **kwargs: FakeRun(calls, **kwargs)
    module.__spec__ = types.SimpleNamespace(name="wandb")  # importlib.util.find_spec finds it in sys.modules
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls


def records(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_wandb_gets_what_metrics_jsonl_gets_and_a_resume_continues_its_run(tiny_dataset, tmp_path, fake_wandb):
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--wandb", "electra-tests",
            *tiny_overrides(max_steps=4)]
    assert main(args) == 0
    init = fake_wandb[0][1]
    run_id = (run / "wandb_id").read_text().strip()
    assert init["project"] == "electra-tests" and init["id"] == run_id and init["resume"] == "allow"
    assert init["dir"] == str(run) and init["config"]["train"]["max_steps"] == 4
    logged = [(c[1], c[2]) for c in fake_wandb if c[0] == "log"]
    assert logged == [(r["step"], {k: v for k, v in r.items() if k not in ("step", "time")}) for r in records(run)]
    assert fake_wandb[-1] == ("finish",)
    fake_wandb.clear()
    assert main([*args[:-len(tiny_overrides(max_steps=4))], *tiny_overrides(max_steps=6)]) == 0
    assert fake_wandb[0][1]["id"] == run_id  # the same W&B run, resumed
    assert next(c[1] for c in fake_wandb if c[0] == "log") == 5  # from the step after the checkpoint


def test_a_time_budget_plan_updates_the_config_wandb_shows(tiny_dataset, tmp_path, fake_wandb):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--wandb", "p", "--time-budget", "2",
                 *tiny_overrides(max_steps=100_000, log_every=50, eval_every=0, save_every=100_000)]) == 0
    updates = [c for c in fake_wandb if c[0] == "config"]
    planned = json.loads((run / "config.json").read_text())
    assert len(updates) == 1 and updates[0][1] == planned and updates[0][2] == {"allow_val_change": True}


def test_wandb_errors_are_one_line_and_leave_no_run_folder(tiny_dataset, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    base = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides()]
    assert main([*base, "--wandb", " "]) == 2
    assert "--wandb needs a project name" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "wandb" else object())
    assert main([*base, "--wandb", "p"]) == 2
    assert "--wandb needs the wandb package: pip install wandb" in capsys.readouterr().err
    assert not run.exists()


def test_wandb_that_cannot_start_is_a_one_line_error(tiny_dataset, tmp_path, capsys, fake_wandb):
    def refuse(**kwargs):
        raise RuntimeError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")
    sys.modules["wandb"].init = refuse
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--wandb", "p", *tiny_overrides()]) == 2
    err = capsys.readouterr().err.strip()
    assert "W&B did not start (api_key not configured" in err and "WANDB_MODE=offline" in err
    assert len(err.splitlines()) == 1 and not run.exists()


def test_a_real_offline_wandb_run_is_written(tiny_dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--wandb", "electra-tests",
                 *tiny_overrides(max_steps=2)]) == 0
    run_id = (run / "wandb_id").read_text().strip()
    written = list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(written) == 1 and written[0].stat().st_size > 0


def test_finetune_logs_one_wandb_run_per_seed(tmp_path, fake_wandb):
    from test_finetune_fixtures import make_run
    from test_finetune_glue import _learnable_sst2

    run, data, out = make_run(tmp_path), _learnable_sst2(tmp_path / "glue", n=32), tmp_path / "out"
    assert main(["finetune", "--task", "sst2", "--data", str(data), "--model", str(run), "--out", str(out),
                 "--seeds", "2", "--epochs", "2", "--batch-size", "8", "--log-every", "2", "--wandb", "ft"]) == 0
    inits = [c[1] for c in fake_wandb if c[0] == "init"]
    assert [(i["project"], i["group"], i["name"], i["config"]["seed"]) for i in inits] == [
        ("ft", "sst2", "sst2-seed1", 1), ("ft", "sst2", "sst2-seed2", 2)]
    assert inits[0]["config"]["lr"] == json.loads((out / "results.json").read_text())["config"]["lr"]
    assert inits[0]["dir"] == str(out) and inits[0]["job_type"] == "finetune"
    res = json.loads((out / "results.json").read_text())
    # each seed: its loss curve at the log steps, then its dev scores, then finish
    per_seed, current = [], None
    for c in fake_wandb:
        if c[0] == "init":
            current = []
            per_seed.append(current)
        elif c[0] in ("log", "finish"):
            current.append(c)
    for seed_calls, r in zip(per_seed, res["runs"]):
        steps = [c[1] for c in seed_calls if c[0] == "log" and "train/loss" in c[2]]
        assert steps == list(range(2, r["train"]["steps"] + 1, 2))
        assert seed_calls[-2] == ("log", r["train"]["steps"], {f"dev/{m}": v for m, v in r["metrics"].items()})
        assert seed_calls[-1] == ("finish",)


def test_a_finetune_seed_resumed_from_its_saved_state_logs_into_its_own_wandb_run(tmp_path, monkeypatch, fake_wandb):
    """SIGTERM in seed 2 saves its state with its W&B run id; the re-run goes on from that state and from that W&B
    run (resume="allow"), logging only the steps after the saved one; a seed that starts over gets a new run."""
    import os
    import signal

    from test_finetune_fixtures import make_run
    from test_finetune_glue import _learnable_sst2

    import electra.finetune.train as loop

    run, data, out = make_run(tmp_path), _learnable_sst2(tmp_path / "glue", n=64), tmp_path / "out"
    cmd = ["finetune", "--task", "sst2", "--data", str(data), "--model", str(run), "--out", str(out), "--seeds", "2",
           "--epochs", "3", "--batch-size", "8", "--threads", "1", "--max-seq-len", "32", "--log-every", "2",
           "--wandb", "ft"]
    real, calls = loop.set_lr, [0]

    def signalling(*args):
        calls[0] += 1
        if calls[0] == 30:  # seed 2, step 6 (24 steps a seed)
            os.kill(os.getpid(), signal.SIGTERM)
        real(*args)
    monkeypatch.setattr(loop, "set_lr", signalling)
    assert main(cmd) == 143
    inits = [c[1] for c in fake_wandb if c[0] == "init"]
    assert [i["name"] for i in inits] == ["sst2-seed1", "sst2-seed2"] and inits[0]["id"] != inits[1]["id"]
    partial = next((out / "progress").glob("*_seed2.partial"))
    state = json.loads((partial / "state.json").read_text())
    assert state["step"] == 6 and state["wandb_id"] == inits[1]["id"]
    monkeypatch.setattr(loop, "set_lr", real)
    fake_wandb.clear()
    assert main(cmd) == 0
    inits = [c[1] for c in fake_wandb if c[0] == "init"]
    assert [(i["name"], i["id"], i["resume"]) for i in inits] == [("sst2-seed2", state["wandb_id"], "allow")]
    logged = [c[1] for c in fake_wandb if c[0] == "log" and "train/loss" in c[2]]
    assert logged == list(range(8, 25, 2))  # after the saved step 6
    # a damaged state: the seed starts over, in a W&B run of its own
    fake_wandb.clear()
    part = partial.with_name(partial.name.replace("seed2", "seed3"))
    part.mkdir(parents=True)
    (part / "state.json").write_text(json.dumps({"step": 6, "wandb_id": "0badc0de"}))  # and no tensors
    cmd[cmd.index("--seeds") + 1] = "3"
    assert main(cmd) == 0
    inits = [c[1] for c in fake_wandb if c[0] == "init"]
    assert [i["name"] for i in inits] == ["sst2-seed3"] and inits[0]["id"] != "0badc0de"


def test_finetune_without_the_wandb_package_names_what_it_logs_anyway(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "wandb" else object())
    assert main(["finetune", "--task", "sst2", "--data", str(tmp_path), "--model", str(tmp_path / "m"),
                 "--out", str(tmp_path / "out"), "--wandb", "p"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("pip install wandb (or drop --wandb; the log lines and results.json are always written)")
