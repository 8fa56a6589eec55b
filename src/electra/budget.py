"""`--time-budget`: fit the learning-rate schedule to a wall-clock budget instead of a step count.

People on limited compute think in hours ("one GPU overnight"), but the schedule is in steps: a run stopped by
`--max-time` ends with its learning rate still high, and one whose `--max-steps` was guessed too small finishes
early, leaving the hours unused. With a budget, a run times its own steps and then plans:

    window   after WARM_STEPS steps (compilation, CUDA-graph capture), time at least MIN_STEPS steps for at least
             window_seconds(budget); it closes early at a step due for an evaluation or a checkpoint, so that
             neither is timed as training
    plan     evaluate and save once, timed, then fit  steps x step_seconds + evaluations + checkpoints  into what
             is left of the budget (the final evaluation and checkpoint included)
    shape    the config's schedule is shortened to that many steps, never lengthened (max_steps caps it), and
             keeps its shape: warmup keeps its share (tiny's 1,000 of 5,000 steps stay a fifth)

The plan is written into the run's config and every checkpoint after it; from there on the run is an ordinary
fixed-length one, so a resume continues it exactly. The budget counts training time summed over resumes
(the checkpoints' `elapsed`), not start-up. A resume with another budget (or other --max-steps/--warmup-steps)
plans again from where the run is, which bends the schedule there. The steps of the window ran on the
config's own schedule (the early part of its warmup), so they differ slightly from the planned one's.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

WARM_STEPS = 3  # not timed: torch.compile and CUDA-graph capture happen in the first steps
MIN_STEPS = 10  # timed steps, at least
CHECK_EVERY = 10  # under torchrun, ranks agree that the window closed every this many steps (one all-reduce)


def window_seconds(budget: float) -> float:
    """How long the timing window lasts: 5% of the budget, between 1 and 60 seconds (step times wander by 10-20%
    over seconds on a shared CPU; on a GPU a few hundred steps are plenty)."""
    return min(60.0, max(1.0, 0.05 * budget))


@dataclass(frozen=True)
class Plan:
    budget: float  # seconds of training it was made for
    steps: int  # the schedule's max_steps from now on
    warmup: int  # and its warmup_steps
    shape: tuple[int, int]  # the (max_steps, warmup_steps) it shortened
    at: int  # the step it was made at
    step_seconds: float  # what it measured: one training step,
    eval_seconds: float  # one held-out evaluation (0: the run has no held-out rows)
    save_seconds: float  # one checkpoint

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(**{**d, "shape": tuple(d["shape"])})

    def describe(self) -> str:
        return (f"time budget {self.budget:g}s: {self.step_seconds * 1e3:.1f} ms per step, "
                f"{self.eval_seconds:.1f}s per evaluation, {self.save_seconds:.1f}s per checkpoint -> the schedule "
                f"ends at step {self.steps:,} (warmup {self.warmup:,}; config had {self.shape[0]:,} and "
                f"{self.shape[1]:,})")


def overrun_note(plan: Plan, elapsed: float) -> str | None:
    """What to tell the user when timing the window, one evaluation and one checkpoint spent the whole budget."""
    if elapsed < plan.budget:
        return None
    return (f"note: timing the steps, one evaluation and one checkpoint took {elapsed:.0f}s of the {plan.budget:g}s "
            f"time budget; the run stops at step {plan.steps}, over it: give a budget several times that long")


def fit(budget: float, elapsed: float, step: int, shape: tuple[int, int], step_seconds: float, eval_seconds: float,
        save_seconds: float, eval_every: int, save_every: int) -> tuple[int, int]:
    """(max_steps, warmup_steps) that end the run within the budget, `elapsed` seconds of it spent at `step`.
    Each step costs its own time plus its share of the periodic evaluations and checkpoints; the last step's
    evaluation and checkpoint are paid once."""
    per_step = step_seconds + (eval_seconds / eval_every if eval_every else 0.0) + save_seconds / save_every
    left = budget - elapsed - eval_seconds - save_seconds
    steps = min(shape[0], step + max(0, int(left // per_step))) if per_step > 0 else shape[0]
    steps = max(steps, step)
    warmup = math.ceil(shape[1] * steps / shape[0]) if shape[0] else 0
    return steps, warmup


class Planner:
    """Times the window's steps, then makes the plan. `ready` is called after every optimizer step."""

    def __init__(self, budget: float, shape: tuple[int, int], start_step: int, world_size: int = 1):
        self.budget, self.shape, self.world_size = budget, shape, world_size
        self.first = start_step + WARM_STEPS
        self.t0: float | None = None
        self.seconds = window_seconds(budget)

    def ready(self, step: int, elapsed: float, event_due: bool, sync: Callable[[], None],
              agree: Callable[[bool], bool]) -> bool:
        """Whether to plan at this step. `event_due`: an evaluation or checkpoint is due at this step;
        `sync` waits for the device; `agree(flag)` is true on every rank when it is on any (torchrun)."""
        if self.t0 is None and step >= self.first:
            sync()
            self.t0, self.t0_step = time.perf_counter(), step
        timed = step - self.t0_step if self.t0 is not None else 0
        if self.world_size > 1 and timed % CHECK_EVERY:  # ranks decide together, at the same steps
            return False
        spent = elapsed >= self.budget
        done = timed >= MIN_STEPS and (event_due or time.perf_counter() - self.t0 >= self.seconds)
        if not agree(spent or done):
            return False
        if self.t0 is not None and timed > 0:
            sync()
            self.step_seconds = (time.perf_counter() - self.t0) / timed
        else:  # the budget was spent before any step was timed
            self.step_seconds = 0.0
        return True

    def plan(self, step: int, elapsed: float, eval_seconds: float, save_seconds: float, eval_every: int,
             save_every: int, slowest: Callable[[list[float]], list[float]]) -> Plan:
        """The plan, from this rank's timings and the other ranks' (`slowest`: the max over ranks)."""
        step_seconds, eval_seconds, save_seconds, elapsed = slowest(
            [self.step_seconds, eval_seconds, save_seconds, elapsed])
        steps, warmup = fit(self.budget, elapsed, step, self.shape, step_seconds, eval_seconds, save_seconds,
                            eval_every, save_every)
        return Plan(self.budget, steps, warmup, self.shape, step, step_seconds, eval_seconds, save_seconds)


def resume_planner(budget: float, max_steps: int, warmup_steps: int, saved: dict[str, Any] | None,
                   step: int, world_size: int) -> tuple[Planner | None, Plan | None]:
    """What a run does about its budget: (a planner, when it must plan; the plan it runs on, if one holds).
    A checkpoint's plan holds while the budget is unchanged and max_steps and warmup_steps are the plan's own or
    the ones it shortened (the command line that started the run, run again to resume it)."""
    plan = Plan.from_dict(saved) if saved else None
    if budget <= 0:
        return None, None
    same = plan is not None and max_steps in (plan.steps, plan.shape[0]) and warmup_steps in (plan.warmup, plan.shape[1])
    if same and plan.budget == budget:
        return None, plan
    # a changed budget re-plans the schedule the last plan shortened; changed steps are the new shape
    return Planner(budget, plan.shape if same else (max_steps, warmup_steps), step, world_size), None
