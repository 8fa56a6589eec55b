"""Alerts on the two-player dynamics of replaced-token detection, from the metrics the loop already logs.

ELECTRA's failure modes do not stop a run: they leave it training for days on a task that teaches nothing.
The ones users of other implementations report, and the one this project met itself:

- the discriminator predicts "original" for every token (recall exactly 0 on held-out text, evaluation after
  evaluation): it has settled on the majority class. The tiny preset at batch 32 / lr 1e-3 sat there for
  18 M tokens; a larger batch or a lower learning rate got it out;
- the opposite: "replaced" for every token (recall 1, precision = the replaced rate). `--rtd-tokens masked` on the
  tiny preset sat there (its generator's samples matched 2.4% of the masked tokens, so "replaced" is right on 97%
  of the slots it trains on);
- the RTD loss near 0: replaced tokens are trivially told apart, which points at a bug that leaks the labels
  (DataParallel splitting the inputs gave "loss 0.000" in one PyTorch reproduction);
- the generator reproducing almost every masked token (sampled accuracy near 1): too strong a generator leaves
  nothing to detect (the paper's generators are 1/4 to 1/2 of the discriminator's width);
- the generator not learning at all after warmup.

`Monitor` raises an alert once a condition has held at `patience` consecutive checks after warmup (a healthy
run dips: the tiny preset's recall fell to 0.002 for a while, never to 0), says when it clears, and never
repeats itself in between.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Rule(NamedTuple):
    name: str
    holds: Callable[[dict[str, float]], bool]  # on metrics without their "eval/" / "train/" prefix
    message: Callable[[dict[str, float]], str]
    electra_only: bool  # needs a discriminator (not for --objective mlm)
    about_generator: bool  # needs a trained generator (not for --generator uniform / unigram)
    after: float  # in units of warmup steps: checked from this step on (generator learning takes a while)
    min_step: int = 0  # and never before this step, however short the warmup


RULES = (
    Rule("discriminator_silent", lambda m: m["disc_recall"] == 0.0 and m["replaced_rate"] > 0.0,  # 0/0 is no news
         lambda m: ("the discriminator predicts 'original' for every token (recall 0, precision 0): it has settled "
                    "on the majority class. Use a larger batch (the tiny preset needs 128) or a lower --lr, or "
                    "raise --disc-weight"), True, False, 1.0),
    Rule("discriminator_indiscriminate",  # precision no better than guessing "replaced" everywhere
         lambda m: m["disc_recall"] >= 0.999 and m["replaced_rate"] > 0.0
         and m["disc_precision"] <= 1.05 * m["replaced_rate"] + 1e-3,
         lambda m: (f"the discriminator predicts 'replaced' for every token (recall {m['disc_recall']:.3f}, precision "
                    f"{m['disc_precision']:.3f} = the replaced rate): it tells nothing apart. With --rtd-tokens masked "
                    "a generator that rarely reproduces the original makes 'replaced' right on nearly every trained "
                    "slot: train on every token (--rtd-tokens all, the default); otherwise lower --lr or check the "
                    "labels"), True, False, 1.0),
    Rule("discriminator_trivial", lambda m: m["rtd_loss"] < 0.005,
         lambda m: (f"RTD loss {m['rtd_loss']:.4f}: replaced tokens are trivially detectable, which usually means "
                    "the inputs leak the labels (check custom data or model changes)"), True, False, 1.0),
    Rule("generator_too_strong", lambda m: m["sampled_acc"] >= 0.85,
         lambda m: (f"the generator's samples match {m['sampled_acc']:.0%} of masked tokens (replaced rate "
                    f"{m['replaced_rate']:.3f}): too few replacements to learn from. Shrink it "
                    "(--generator-hidden-fraction 0.25) or raise --mask-prob"), True, True, 1.0),
    Rule("generator_stuck", lambda m: m["gen_acc"] < 0.01,
         lambda m: (f"the generator predicts {m['gen_acc']:.1%} of masked tokens after warmup: it is not learning. "
                    "Check --lr and the data (a vocabulary that does not match the dataset?)"), False, True, 2.0, 100),
)


class Monitor:
    """Feeds one metrics dict per check (held-out metrics when the run evaluates, else the training ones)."""

    def __init__(self, warmup_steps: int, electra: bool, patience: int = 2, trained_generator: bool = True):
        self.warmup, self.electra, self.patience = max(1, warmup_steps), electra, patience
        self.trained_generator = trained_generator
        self.streak = {r.name: 0 for r in RULES}
        self.active: set[str] = set()

    def update(self, step: int, metrics: dict[str, float]) -> list[str]:
        """The lines to print for this check: new alerts and alerts that have cleared."""
        m = {k.split("/", 1)[-1]: v for k, v in metrics.items()}
        lines = []
        for rule in RULES:
            if ((rule.electra_only and not self.electra) or (rule.about_generator and not self.trained_generator)
                    or step < max(rule.after * self.warmup, rule.min_step)):
                continue
            try:
                holds = rule.holds(m)
            except KeyError:  # a metric this run does not log
                continue
            self.streak[rule.name] = self.streak[rule.name] + 1 if holds else 0
            if self.streak[rule.name] >= self.patience and rule.name not in self.active:
                self.active.add(rule.name)
                lines.append(f"health warning at step {step} ({rule.name}): {rule.message(m)}")
            elif not holds and rule.name in self.active:
                self.active.discard(rule.name)
                lines.append(f"health: {rule.name} cleared at step {step}")
        return lines
