"""Health alerts on the two-player dynamics: they fire on the failure this project's own runs met, stay quiet
through a healthy run's dip, respect warmup and patience, clear, and reach the training log."""
from __future__ import annotations

from conftest import tiny_overrides

from electra import health
from electra.cli import main
from electra.health import Monitor


def evals(rows: list[tuple[int, float, float, float, float]]) -> list[tuple[int, dict[str, float]]]:
    """(step, recall, gen_acc, sampled_acc, rtd_loss) -> held-out metrics as the loop logs them."""
    return [(step, {"eval/disc_recall": recall, "eval/disc_precision": 0.6 if recall else 0.0, "eval/gen_acc": gen,
                    "eval/sampled_acc": sampled, "eval/replaced_rate": 0.13 * (1 - sampled), "eval/rtd_loss": rtd})
            for step, recall, gen, sampled, rtd in rows]


# held-out evaluations of two real tiny-preset runs on three Wikipedia shards (docs/results.md), warmup 1000
COLLAPSED = evals([(500, 0.0, 0.148, 0.09, 0.374), (1000, 0.0, 0.168, 0.09, 0.367), (1500, 0.0, 0.176, 0.09, 0.364),
                   (2000, 0.0, 0.177, 0.09, 0.362)])  # batch 32 / lr 1e-3: never left "all original"
HEALTHY = evals([(250, 0.0765, 0.069, 0.04, 0.365), (500, 0.0053, 0.095, 0.05, 0.389), (750, 0.0016, 0.113, 0.06, 0.382),
                 (1000, 0.0054, 0.123, 0.07, 0.379), (1250, 0.0073, 0.133, 0.08, 0.374), (1500, 0.018, 0.138, 0.08, 0.369)])


def run(monitor: Monitor, seq: list[tuple[int, dict[str, float]]]) -> list[str]:
    return [line for step, m in seq for line in monitor.update(step, m)]


def test_the_collapse_this_project_met_is_flagged_once_and_a_healthy_dip_is_not() -> None:
    lines = run(Monitor(1000, electra=True), COLLAPSED)
    assert len(lines) == 1 and lines[0].startswith("health warning at step 1500 (discriminator_silent)")
    assert "larger batch" in lines[0]  # 500 is inside warmup, 1000 is the first check: patience 2 -> 1500
    assert run(Monitor(1000, electra=True), HEALTHY) == []


def test_alerts_clear_and_can_return() -> None:
    mon = Monitor(10, electra=True)
    silent, fine = COLLAPSED[0][1], HEALTHY[0][1]
    seq = [(s, m) for s, m in zip(range(10, 70, 10), [silent, silent, fine, silent, silent, silent])]
    lines = run(mon, seq)
    assert [line.split(":")[0] for line in lines] == ["health warning at step 20 (discriminator_silent)",
                                                      "health", "health warning at step 50 (discriminator_silent)"]
    assert "cleared at step 30" in lines[1]


def test_each_rule_and_the_mlm_objective() -> None:
    base = dict(HEALTHY[-1][1])
    cases = {"discriminator_trivial": {"eval/rtd_loss": 0.001}, "generator_too_strong": {"eval/sampled_acc": 0.9},
             "generator_stuck": {"eval/gen_acc": 0.004},
             # ELECTRA 15% on a weak generator (docs/results.md): "replaced" everywhere, precision = the replaced rate
             "discriminator_indiscriminate": {"eval/disc_recall": 1.0, "eval/disc_precision": base["eval/replaced_rate"]}}
    for name, change in cases.items():
        m = base | change
        lines = run(Monitor(10, electra=True), [(100, m), (200, m)])
        assert len(lines) == 1 and f"({name})" in lines[0], (name, lines)
    copying = base | {"eval/sampled_acc": 1.0, "eval/replaced_rate": 0.0, "eval/disc_recall": 0.0}
    lines = run(Monitor(10, electra=True), [(100, copying), (200, copying)])  # recall 0 of nothing replaced
    assert len(lines) == 1 and "(generator_too_strong)" in lines[0], lines
    mlm = base | {"eval/disc_recall": 0.0, "eval/rtd_loss": 0.0, "eval/gen_acc": 0.004}
    lines = run(Monitor(10, electra=False), [(100, mlm), (200, mlm)])  # no discriminator: only the generator rule
    assert len(lines) == 1 and "(generator_stuck)" in lines[0]
    # a generator gets 2 x warmup to learn, and 100 steps at least (a warmup of 1 step is no time to judge it)
    assert run(Monitor(1, electra=False), [(4, mlm), (6, mlm)]) == []
    assert len(run(Monitor(1, electra=False), [(100, mlm), (110, mlm)])) == 1
    early = run(Monitor(10, electra=True), [(15, mlm), (19, mlm)])
    assert [line.split(": ")[0] for line in early] == ["health warning at step 19 (discriminator_silent)",
                                                       "health warning at step 19 (discriminator_trivial)"]


def test_alerts_reach_the_training_log(tiny_dataset, tmp_path, monkeypatch) -> None:
    always = health.Rule("test_rule", lambda m: True, lambda m: f"replaced rate {m['replaced_rate']:.3f}", True, False, 0.0)
    monkeypatch.setattr(health, "RULES", (always,))
    for evaluate, out in ((2, tmp_path / "with_eval"), (0, tmp_path / "train_metrics")):
        assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(out), "--no-tensorboard",
                     *tiny_overrides(max_steps=4, log_every=1, eval_every=evaluate)]) == 0
        log = (out / "train.log").read_text()
        assert log.count("health warning") == 1 and "(test_rule): replaced rate 0." in log


def test_alerts_without_a_held_out_split(tiny_dataset, tmp_path, monkeypatch) -> None:
    """A dataset prepared with --valid-fraction 0 has nothing to evaluate: the training metrics are judged
    instead, rather than no alert ever firing (each evaluation is skipped)."""
    root = tiny_dataset.parent
    data = tmp_path / "no_valid"
    assert main(["prepare", str(root / "corpus.txt"), "--vocab", str(root / "vocab" / "vocab.txt"), "--seq-len",
                 "32", "--out", str(data), "--workers", "1", "--valid-fraction", "0", "--quiet"]) == 0
    always = health.Rule("test_rule", lambda m: True, lambda m: f"replaced rate {m['replaced_rate']:.3f}", True, False, 0.0)
    monkeypatch.setattr(health, "RULES", (always,))
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--no-tensorboard",
                 *tiny_overrides(max_steps=4, log_every=1, eval_every=2)]) == 0
    log = (out / "train.log").read_text()
    assert "no held-out examples" in log
    assert log.count("health warning") == 1 and "(test_rule): replaced rate 0." in log
