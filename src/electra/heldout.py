"""Held-out evaluation during pre-training: the generator's and the discriminator's metrics on the validation
split, with dropout off, the same for any world size or micro-batch (each row is masked and sampled by its own
seed), summed over ranks.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from electra import dist
from electra.config import PretrainConfig
from electra.data.dataset import PretrainData, collate
from electra.device import to_device
from electra.meter import summarize
from electra.objective import Electra, Noise, Stats

HELD_OUT = 2**31  # the step slot of held-out noise seeds: never an optimizer step's


def held_out_noise(seed: int, rows: range, max_predictions: int, device: torch.device,
                   positions: int | None = None) -> Noise:
    """Each held-out row's own masking and sampling draws, from (run seed, row index): a row is corrupted
    alike whichever batch, rank or world size evaluates it, and in every evaluation of the run. `positions`:
    how many position numbers (default N, one per slot; whole-word masking takes one per token, seq_len, and
    span masking two, 2 x seq_len: `position_numbers`)."""
    n, p = max_predictions, positions or max_predictions
    u = np.stack([np.random.default_rng([seed, HELD_OUT, r]).random(p + 2 * n) for r in rows])  # float64
    u32 = np.minimum(u[:, :p + n].astype(np.float32), np.float32(1 - 2**-24))  # rounding must not reach 1.0
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)
    return Noise(as_tensor(u32[:, :p]), as_tensor(u32[:, p:]), as_tensor(u[:, p + n:, None]))


def position_numbers(cfg: PretrainConfig) -> int | None:
    """How many position numbers a held-out row's masking reads: N for token masking (None), one per token for
    whole words, two per token for spans (word_masking.py)."""
    return {"token": None, "whole_word": cfg.train.seq_len, "span": 2 * cfg.train.seq_len}[cfg.objective.masking]


def disc_loss_count(s: Stats, cfg: PretrainConfig) -> torch.Tensor:
    """The tokens the discriminator's loss is a mean over: all non-pad tokens, the masked slots (rtd_tokens=masked),
    or those of its LM loss (replace_mlm / all_tokens_mlm)."""
    o = cfg.objective
    if o.objective in ("replace_mlm", "all_tokens_mlm"):
        return s.lm_count
    return s.masked if o.rtd_tokens == "masked" else s.tokens


@torch.no_grad()
def evaluate(model: Electra, data: PretrainData, cfg: PretrainConfig, micro: int, d: dist.Dist,
             autocast: contextlib.AbstractContextManager) -> dict[str, float]:
    """Held-out metrics on the first eval_batches x global_batch_size rows of the validation split, with
    dropout off and each row's own masking and sampling draws (`held_out_noise`): the same rows, corrupted the
    same way, whatever the world size or micro-batch, in every evaluation of a run. Losses are token means
    over all rows. The rows are cut into micro-batches dealt round-robin to the ranks; all ranks run the same
    number of forwards (FSDP gathers weights in each), a rank without a batch left re-running the first one
    without counting it, so that all reach the collectives below together."""
    model.eval()
    t = cfg.train
    rows = min(len(data.valid), t.eval_batches * t.global_batch_size)
    starts = range(0, rows, micro)
    rounds = -(-len(starts) // d.world_size)
    sums, scores, labels = None, [], []
    loss_sums = torch.zeros(2, device=d.device)  # generator CE summed over masked slots, RTD BCE over tokens
    for r in range(rounds):
        index = d.rank + r * d.world_size
        counted = index < len(starts)
        start = starts[index if counted else 0]
        span = range(start, min(start + micro, rows))
        batch = to_device(collate([data.valid[j] for j in span], t.seq_len, data.special), d.device)
        with autocast:
            out = model(*batch, noise=held_out_noise(t.seed, span, cfg.max_predictions, d.device,
                                                     position_numbers(cfg)))
        if not counted:
            continue
        s = out.stats
        loss_sums += torch.stack([out.losses.mlm * s.masked, out.losses.rtd * disc_loss_count(s, cfg)]).float()
        sums = s if sums is None else Stats(*(a + b for a, b in zip(sums, s)))
        if out.disc_logits is not None:
            keep = batch.attention_mask
            scores.append(out.disc_logits[keep].float())
            labels.append(out.labels[keep].float())
    model.train()
    if rounds == 0:  # no held-out rows (the same on every rank)
        return {}
    if sums is None:  # this rank had no batch of its own: it adds zeros
        sums = Stats(*torch.zeros(len(Stats._fields), device=d.device))
    packed = dist.all_reduce_sum(torch.cat([torch.stack(list(sums)).float(), loss_sums]))
    n = len(Stats._fields)
    sums, (mlm_sum, rtd_sum) = Stats(*packed[:n]), packed[n:n + 2].tolist()
    metrics = {f"eval/{k}": v for k, v in summarize(sums).items()}
    mlm, rtd = mlm_sum / max(float(sums.masked), 1e-6), rtd_sum / max(float(disc_loss_count(sums, cfg)), 1e-6)
    o = cfg.objective  # rtd is 0 for the MLM objective
    metrics.update({"eval/loss": o.gen_weight * mlm + o.disc_loss_weight * rtd, "eval/mlm_loss": mlm, "eval/rtd_loss": rtd})
    if model.discriminator_head is not None:  # a replaced-token detector (ELECTRA's, or all_tokens_mlm's copy gate)
        empty = torch.zeros(0, device=d.device)
        all_scores = dist.all_gather_cat(torch.cat(scores) if scores else empty)
        all_labels = dist.all_gather_cat(torch.cat(labels) if labels else empty)
        metrics["eval/disc_auc"] = auc(all_scores.cpu(), all_labels.cpu())
    return metrics


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties
    counted half (the Mann-Whitney statistic with average ranks)."""
    scores, labels = scores.double().flatten(), labels.bool().flatten()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = scores.argsort()
    s = scores[order]
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
    # average the ranks of tied scores
    uniq, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
    if len(uniq) < len(s):
        sums = torch.zeros(len(uniq), dtype=torch.float64).scatter_add(0, inverse, ranks[order])
        ranks[order] = (sums / counts)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
