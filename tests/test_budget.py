"""--time-budget: the plan's arithmetic, the timing window, durations on the command line, what a resume does
with a saved plan, and runs that plan (a short budget shortens the schedule; one that fits the whole schedule
changes nothing, resumed after SIGKILL or not).

    python -m pytest tests/test_budget.py -q
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import tiny_overrides
from test_pretrain import final_weights, run_cli

from electra import budget
from electra.budget import Plan, Planner, fit, overrun_note, resume_planner
from electra.cli import main
from electra.config import build_config
from electra.errors import UserError
from electra.overrides import parse_duration


def test_fit_pays_each_step_its_share_of_evaluations_and_checkpoints():
    # 100 s left after 10 s; the last step's evaluation (2 s) and checkpoint (1 s) come off first: 97 s.
    # Each step: 0.5 s + 2 s / 10 + 1 s / 20 = 0.75 s -> 129 steps after step 20; warmup keeps its tenth
    assert fit(110, 10, 20, (1000, 100), 0.5, 2.0, 1.0, 10, 20) == (149, 15)
    assert fit(110, 10, 20, (1000, 100), 0.5, 0.0, 0.0, 0, 20) == (220, 22)  # no evaluations at all


def test_fit_never_lengthens_the_schedule_and_stops_when_the_budget_is_spent():
    assert fit(1e9, 0, 5, (300, 30), 0.1, 0, 0, 0, 100) == (300, 30)  # max_steps caps it
    assert fit(50, 60, 7, (300, 30), 0.1, 0, 0, 0, 100) == (7, 1)  # spent: the run ends where it is
    assert fit(50, 0, 7, (300, 0), 0.1, 0, 0, 0, 100)[1] == 0  # no warmup stays none


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_window_skips_the_warm_steps_and_times_the_rest(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(budget.time, "perf_counter", clock)
    p = Planner(budget=1000.0, shape=(10_000, 100), start_step=40)  # window: 5% of 1000 s = 50 s
    syncs = []
    ready = []
    for step in range(41, 200):
        clock.now += 100.0 if step <= 40 + budget.WARM_STEPS else 2.0  # compile-slow first steps: not timed
        ready.append(step) if p.ready(step, 0.0, False, lambda: syncs.append(1), lambda f: f) else None
        if ready:
            break
    # timing starts at step 43; 50 s at 2 s a step is 25 steps: step 68
    assert ready == [40 + budget.WARM_STEPS + 25] and p.step_seconds == pytest.approx(2.0) and len(syncs) == 2


def test_window_closes_at_an_evaluation_once_it_has_enough_steps(monkeypatch):
    monkeypatch.setattr(budget.time, "perf_counter", Clock())
    p = Planner(budget=1000.0, shape=(10_000, 100), start_step=0)
    last = budget.WARM_STEPS + budget.MIN_STEPS  # every step due for an evaluation: the first with enough timed
    assert [s for s in range(1, last + 1) if p.ready(s, 0.0, True, lambda: None, lambda f: f)] == [last]


def test_window_ends_at_once_when_the_budget_is_spent(monkeypatch):
    monkeypatch.setattr(budget.time, "perf_counter", Clock())
    p = Planner(budget=10.0, shape=(100, 10), start_step=0)
    assert p.ready(1, 11.0, False, lambda: None, lambda f: f) and p.step_seconds == 0.0
    plan = p.plan(1, 11.0, 0.1, 0.1, 10, 10, lambda v: v)
    assert (plan.steps, plan.at) == (1, 1)


def test_ranks_plan_from_the_slowest_timings(monkeypatch):
    monkeypatch.setattr(budget.time, "perf_counter", Clock())
    p = Planner(budget=100.0, shape=(1000, 10), start_step=0)
    p.step_seconds = 0.1
    plan = p.plan(10, 5.0, 0.0, 0.0, 0, 100, lambda v: [max(x, y) for x, y in zip(v, [0.2, 0.0, 0.0, 5.0])])
    assert plan.step_seconds == 0.2 and plan.steps == 10 + int(95 // 0.2)


def test_ranks_agree_only_every_few_steps(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(budget.time, "perf_counter", clock)
    p = Planner(budget=1.0, shape=(1000, 10), start_step=0, world_size=2)
    asked = []
    for step in range(1, 40):
        clock.now += 1.0
        if p.ready(step, 0.0, False, lambda: None, lambda f, at=step: asked.append(at) or f):
            break
    timed_from = budget.WARM_STEPS
    assert all((s - timed_from) % budget.CHECK_EVERY == 0 for s in asked if s > timed_from)
    assert step == timed_from + budget.CHECK_EVERY  # the first agreed step with enough timed steps


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("45m", 2700), ("6h", 21600), ("1.5d", 129600),
                                          (" 2H ", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text, "train.time_budget") == seconds


@pytest.mark.parametrize("text", ["6 hours", "h", "inf", "nanh", ""])
def test_bad_durations_name_the_field(text):
    with pytest.raises(UserError, match="train.time_budget"):
        parse_duration(text, "train.time_budget")


def test_config_takes_durations_and_refuses_a_negative_budget():
    assert build_config("tiny", {"time_budget": "2h", "max_time": "30m"}).train.time_budget == 7200
    with pytest.raises(UserError, match="train.time_budget must be"):
        build_config("tiny", {"time_budget": "-1h"})


def test_resume_keeps_a_plan_and_replans_what_changed():
    plan = Plan(100.0, 300, 60, (5000, 1000), 13, 0.3, 1.0, 0.5).to_dict()
    assert resume_planner(0.0, 300, 60, plan, 50, 1) == (None, None)  # --time-budget 0 lifts it
    assert resume_planner(100.0, 300, 60, plan, 50, 1) == (None, Plan.from_dict(plan))
    planner, held = resume_planner(200.0, 300, 60, plan, 50, 1)  # a new budget: the original schedule, shortened
    assert held is None and planner.shape == (5000, 1000) and planner.first == 50 + budget.WARM_STEPS
    # the command line that started the run, run again: the plan holds
    assert resume_planner(100.0, 5000, 1000, plan, 50, 1) == (None, Plan.from_dict(plan))
    assert resume_planner(100.0, 5000, 60, plan, 50, 1) == (None, Plan.from_dict(plan))
    planner, _ = resume_planner(100.0, 400, 60, plan, 50, 1)  # a new --max-steps: the new shape
    assert planner.shape == (400, 60)
    assert resume_planner(100.0, 5000, 1000, None, 0, 1)[0].shape == (5000, 1000)  # fresh


def read_json(path):
    return json.loads(path.read_text())


def test_a_short_budget_shortens_the_schedule_and_records_the_plan(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    # 8 s, not less: the window needs WARM_STEPS + MIN_STEPS steps before the budget is spent, and a loaded box
    # runs tiny steps at a fifth of their usual speed (3 s planned at step 3 once)
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run),
            *tiny_overrides(max_steps=100_000, warmup_steps=10_000, log_every=50, eval_every=0, save_every=100_000,
                            time_budget="8s")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "time budget 8s:" in out and "config had 100,000 and 10,000" in out
    cfg = read_json(run / "config.json")["train"]
    steps, warmup = cfg["max_steps"], cfg["warmup_steps"]
    ckpts = sorted((run / "checkpoints").glob("step_*"))
    planned = read_json(ckpts[0] / "state.json")  # the checkpoint the plan was timed with
    final = read_json(ckpts[-1] / "state.json")
    assert steps < 100_000 and warmup == math.ceil(10_000 * steps / 100_000)
    if "note: timing the steps, one evaluation and one checkpoint took" in out:  # a box so loaded that the budget
        assert steps == planned["step"]  # ran out inside the window: the plan stops where it was made, and says so
    else:
        assert budget.WARM_STEPS + budget.MIN_STEPS <= planned["step"] <= steps
    assert planned["budget_plan"] == final["budget_plan"] and planned["config"]["train"]["max_steps"] == steps
    assert final["step"] == steps and final["budget_plan"]["at"] == planned["step"]
    assert f"done at step {steps} (max_steps)" in out and "of the 8s time budget spent" in out
    # the same command again: the plan holds, nothing left to train
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "nothing to train: the run is at step" in out and "time budget 8s:" not in out
    # a longer budget plans again, from where the run is, the schedule the first plan shortened (4 s more than
    # the run has trained: a loaded box may have overrun the first budget)
    longer = math.ceil(final["elapsed"]) + 4
    assert main([*args[:-2], "--time-budget", str(longer)]) == 0
    out = capsys.readouterr().out
    again = read_json(run / "config.json")["train"]
    assert f"time budget {longer}s:" in out and "config had 100,000 and 10,000" in out and again["max_steps"] > steps
    assert read_json(max((run / "checkpoints").glob("step_*")) / "state.json")["budget_plan"]["at"] > steps
    # a budget shorter than the time already trained: nothing to plan, nothing to train
    assert main([*args[:-2], "--time-budget", "1"]) == 0
    assert "the run has spent its time budget of 1s; raise --time-budget" in capsys.readouterr().out


def test_a_budget_that_fits_the_schedule_changes_nothing_and_resumes_exactly(tiny_dataset, tmp_path):
    # a window of 50 s (5% of 1000 s) closes at step 20, due for a checkpoint, long before 50 s (even on a loaded
    # box); the whole 40-step schedule fits the budget, so the plan keeps it: the same weights as without a budget
    common = tiny_overrides(max_steps=40, warmup_steps=10, log_every=10, eval_every=0, save_every=20)
    plain, timed, killed = tmp_path / "plain", tmp_path / "timed", tmp_path / "killed"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(plain), *common]) == 0
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(timed), *common, "--time-budget", "1000"]) == 0
    plan = read_json(timed / "checkpoints" / "step_00000040" / "state.json")["budget_plan"]
    assert (plan["at"], plan["steps"], plan["warmup"]) == (20, 40, 10)
    ref = final_weights(plain)
    assert all(torch.equal(ref[k], v) for k, v in final_weights(timed).items())
    cmd = ["pretrain", "--data", str(tiny_dataset), "--out", str(killed), *common, "--time-budget", "1000"]
    first = run_cli(cmd, env={"ELECTRA_FAULT_AT_STEP": "30"})
    assert first.returncode != 0 and "time budget 1000s:" in first.stdout
    again = run_cli(cmd)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stdout and "time budget 1000s:" not in again.stdout  # the saved plan holds
    assert all(torch.equal(ref[k], v) for k, v in final_weights(killed).items())


def test_a_budget_spent_by_its_own_timing_says_so(tiny_dataset, tmp_path, capsys):
    plan = Plan(20.0, 9, 2, (5000, 1000), 9, 0.5, 1.0, 1.0)
    assert overrun_note(plan, 19.0) is None
    assert "took 24s of the 20s time budget; the run stops at step 9, over it" in overrun_note(plan, 24.0)
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
            *tiny_overrides(max_steps=100_000, log_every=50, eval_every=0, save_every=100_000, time_budget="0.2")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "note: timing the steps, one evaluation and one checkpoint took" in out and "over it" in out
