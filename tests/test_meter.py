"""The log interval's running sums (electra.meter): ratios and mean losses against sums done by hand, and an
interval carried through a checkpoint that logs what the uninterrupted interval logs.

    python -m pytest tests/test_meter.py -q
"""
from __future__ import annotations

import json

import pytest
import torch

from electra.meter import IntervalMeter, summarize
from electra.objective import Losses, Stats, StepOutput

CPU = torch.device("cpu")


def step_output(seed: int) -> StepOutput:
    """A micro-step's output with random counts (float and integer tensors, as the objective's may be)."""
    g = torch.Generator().manual_seed(seed)
    counts = [torch.randint(1, 50, (), generator=g).float() for _ in Stats._fields]
    counts[3] = counts[3].long()  # a non-float count must keep its dtype through a checkpoint
    losses = Losses(*torch.rand(3, generator=g))
    return StepOutput(losses, Stats(*counts), None, None)


def test_a_log_line_gives_the_ratios_and_mean_losses_of_its_steps():
    outs = [step_output(i) for i in range(6)]  # 3 steps of 2 micro-batches
    meter = IntervalMeter(10, CPU, terms_per_step=2, tokens_per_step=4 * 128)
    for i, out in enumerate(outs):
        meter.add(out, real_tokens=100 + i)
    metrics, seconds_per_step = meter.close(13)

    total = {f: sum(float(getattr(o.stats, f)) for o in outs) for f in Stats._fields}
    assert metrics["train/gen_acc"] == pytest.approx(total["gen_correct"] / total["masked"])
    assert metrics["train/replaced_rate"] == pytest.approx(total["replaced"] / total["tokens"])
    assert metrics["train/disc_precision"] == pytest.approx(total["true_pos"] / total["pred_pos"])
    assert metrics["train/disc_recall"] == pytest.approx(total["true_pos"] / total["replaced"])
    for i, name in enumerate(("loss", "mlm_loss", "rtd_loss")):
        assert metrics[f"train/{name}"] == pytest.approx(sum(float(o.losses[i]) for o in outs) / 6)
    seconds = 3 * seconds_per_step
    assert metrics["train/tokens_per_s"] == pytest.approx(3 * 4 * 128 / seconds, rel=1e-6)
    assert metrics["train/real_tokens_per_s"] == pytest.approx(sum(100 + i for i in range(6)) / seconds, rel=1e-6)
    assert meter.stats is None and meter.since == 13 and meter.state(13) is None  # a new interval begins


def test_an_interval_carried_through_a_checkpoint_logs_the_whole_interval():
    outs = [step_output(i) for i in range(5)]
    whole = IntervalMeter(0, CPU, terms_per_step=1, tokens_per_step=1)
    for out in outs:
        whole.add(out, 1)
    expected, _ = whole.close(5)

    first = IntervalMeter(0, CPU, terms_per_step=1, tokens_per_step=1)
    for out in outs[:3]:
        first.add(out, 1)
    carried = json.loads(json.dumps(first.state(3)))  # as state.json holds it
    assert carried["since"] == 0 and carried["terms"] == 3 and carried["dtypes"][3] == "int64"
    resumed = IntervalMeter(3, CPU, terms_per_step=1, tokens_per_step=1, carried=carried)
    assert resumed.since == 0 and resumed.stats.tokens.dtype == torch.int64
    for out in outs[3:]:
        resumed.add(out, 1)
    got, _ = resumed.close(5)
    for key in expected:
        if "per_s" not in key:  # the clock restarts with the process
            assert got[key] == pytest.approx(expected[key], rel=1e-6), key


def test_a_rank_that_does_not_hold_the_carried_sums_adds_only_its_own():
    carried = {"since": 0, "stats": [1.0] * len(Stats._fields), "dtypes": ["float32"] * len(Stats._fields),
               "losses": [3.0, 1.0, 2.0], "terms": 2}
    other = IntervalMeter(2, CPU, terms_per_step=1, tokens_per_step=1, carried=carried, holds_carried=False)
    assert other.stats is None and float(other.losses.sum()) == 0 and other.terms(4) == 4
    empty = IntervalMeter(0, CPU, terms_per_step=1, tokens_per_step=1, carried=carried)  # nothing before step 0
    assert empty.since == 0 and empty.stats is None and empty.terms(1) == 1


def test_summarize_divides_by_zero_counts_as_zero():
    zero = Stats(*[torch.zeros(())] * len(Stats._fields))
    assert set(summarize(zero).values()) == {0.0} and "disc_lm_acc" not in summarize(zero)
