"""The training metrics of one log interval, summed on the device and read on log lines only.

Every micro-step adds its detached counts (`Stats`) and losses to running sums on the device, so a step never
waits for the host. A log line all-reduces the sums over ranks once and turns them into ratios. A checkpoint
taken between two log lines saves the interval's sums, so that a resumed run's next line covers the whole
interval, as the uninterrupted run's would.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from electra import dist
from electra.objective import Stats, StepOutput


def summarize(stats: Stats) -> dict[str, float]:
    """Ratios from summed counts: generator accuracy (argmax and sampled), replaced-token rate and the
    discriminator's accuracy, precision and recall on replaced tokens; for replace_mlm / all_tokens_mlm also the
    accuracy of the discriminator's LM (`disc_lm_acc`)."""
    s = {k: float(v) for k, v in stats._asdict().items()}
    div = lambda a, b: a / b if b else 0.0
    return {
        "gen_acc": div(s["gen_correct"], s["masked"]),
        "sampled_acc": div(s["sampled_correct"], s["masked"]),
        "replaced_rate": div(s["replaced"], s["tokens"]),
        "disc_acc": div(s["disc_correct"], s["tokens"]),
        "disc_precision": div(s["true_pos"], s["pred_pos"]),
        "disc_recall": div(s["true_pos"], s["replaced"]),
    } | ({"disc_lm_acc": div(s["lm_correct"], s["lm_count"])} if s["lm_count"] else {})


class IntervalMeter:
    """Running sums from the last log line (or the run's start) to the next: `add` per micro-step, `close` on a
    log line, `state` for a checkpoint."""

    def __init__(self, step: int, device: torch.device, terms_per_step: int, tokens_per_step: int,
                 carried: dict[str, Any] | None = None, holds_carried: bool = True):
        """terms_per_step: micro-batch losses summed per step over all ranks; tokens_per_step: the global batch's
        token slots, padding included. carried: a checkpoint's `log_interval`; the rank that holds_carried (the
        main one) starts from its sums, the all-reduce adds the other ranks'."""
        self.device, self.terms_per_step, self.tokens_per_step = device, terms_per_step, tokens_per_step
        self.reset(step)
        if carried and carried["since"] < step:  # resumed between two log lines
            self.since, self.terms_before = carried["since"], carried["terms"]
            if holds_carried:
                self.stats = Stats(*(torch.tensor(v, dtype=getattr(torch, dt), device=device)
                                     for v, dt in zip(carried["stats"], carried["dtypes"])))
                self.losses = torch.tensor(carried["losses"], dtype=torch.float64, device=device)

    def reset(self, step: int, now: float | None = None) -> None:
        self.since = self.clock_step = step  # the interval's first step; the step its clock started at
        self.started = time.time() if now is None else now
        self.stats: Stats | None = None
        # total, mlm, rtd; in float64, where a few thousand float32 terms add exactly: the sums do not depend on
        # the order they are added in (ranks, micro-steps, a resume between two log lines), nor do the logged losses
        self.losses = torch.zeros(3, dtype=torch.float64, device=self.device)
        self.real_tokens = 0  # this rank's non-padding tokens, counted on the host batch (no device sync)
        self.terms_before = 0  # loss terms a resumed interval had summed before its checkpoint

    def add(self, out: StepOutput, real_tokens: int) -> None:
        # always new tensors: outputs replayed from CUDA graphs are overwritten by the next micro-step
        stats = Stats(*(s.detach() for s in out.stats))
        if self.stats is None:
            self.stats = Stats(*(s.clone() for s in stats))
        else:
            self.stats = Stats(*(a + b for a, b in zip(self.stats, stats)))
        self.losses += torch.stack([out.losses.total, out.losses.mlm, out.losses.rtd]).detach().double()
        self.real_tokens += real_tokens

    def terms(self, step: int) -> int:
        return self.terms_before + (step - self.clock_step) * self.terms_per_step

    def state(self, step: int) -> dict[str, Any] | None:
        """The interval in progress, summed over ranks, for a checkpoint (collective); None right after a log line."""
        if self.stats is None:
            return None
        sums = dist.all_reduce_sum(torch.cat([torch.stack(list(self.stats)).double(), self.losses.double()]))
        k = len(Stats._fields)
        return {"since": self.since, "stats": sums[:k].tolist(),
                "dtypes": [str(s.dtype).removeprefix("torch.") for s in self.stats],
                "losses": sums[k:].tolist(),
                "terms": self.terms(step)}

    def close(self, step: int) -> tuple[dict[str, float], float]:
        """The interval's `train/*` metrics over all ranks (collective) and the seconds per step since its clock
        started; then a new interval begins at `step`."""
        assert self.stats is not None, "a log line after no step"
        sums = dist.all_reduce_sum(torch.cat([torch.stack(list(self.stats)).double(), self.losses,
                                              torch.tensor([float(self.real_tokens)], dtype=torch.float64,
                                                           device=self.device)]))
        n = self.terms(step)
        now = time.time()
        seconds = max(now - self.started, 1e-9)
        steps = step - self.clock_step
        k = len(Stats._fields)
        metrics = {f"train/{name}": v for name, v in summarize(Stats(*sums[:k])).items()}
        metrics.update({"train/loss": float(sums[k]) / n, "train/mlm_loss": float(sums[k + 1]) / n,
                        "train/rtd_loss": float(sums[k + 2]) / n,
                        "train/tokens_per_s": steps * self.tokens_per_step / seconds,  # slots, padding included
                        "train/real_tokens_per_s": float(sums[k + 3]) / seconds})
        self.reset(step, now)
        return metrics, seconds / max(steps, 1)
