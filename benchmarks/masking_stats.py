#!/usr/bin/env python
"""What each masking style (`--masking token | whole_word | span`) does on a prepared dataset, and what it costs.

    python benchmarks/masking_stats.py --data DATASET_DIR [--rows 4096] [--mask-prob 0.15] [--span-p 0.2 --max-span 10]

For the first --rows training rows, masked as the run would (mask_prob, max_predictions = the original's
int((p + 0.005) x seq_len)): the share of tokens masked (distinct positions, so the token path's draws with
replacement count once), how many of the chosen units were whole words, the mean masked run length in words,
how often the word-level choice's 4 vectorised passes differ from the exact sequential scan (passes = seq_len),
and milliseconds per batch of 128 rows on this machine's CPU. Last line: JSON.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from electra.data.dataset import PretrainData, collate
from electra.data.vocab import read_vocab
from electra.objective import SpecialTokens, mask_tokens, maskable
from electra.word_masking import (
    PASSES,
    choose_units,
    continuation_table,
    span_lengths,
    span_starts,
    word_starts,
)


def runs_in_words(positions: list[int], word_start: list[bool]) -> list[int]:
    """The lengths, in words, of the maximal runs of consecutive masked positions."""
    runs, at = [], None
    for p in sorted(positions):
        if at is not None and p == at + 1:
            runs[-1] += word_start[p]
        else:
            runs.append(1)
        at = p
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--mask-prob", type=float, default=0.15)
    ap.add_argument("--span-p", type=float, default=0.2)
    ap.add_argument("--max-span", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    data = PretrainData(a.data)
    T, s = data.seq_len, data.special
    special = SpecialTokens(s.pad, s.cls, s.sep, s.mask)
    N = int((a.mask_prob + 0.005) * T)
    table = continuation_table(read_vocab(data.vocab_path), data.vocab_size)
    batch = collate(data.train.take(range(min(a.rows, len(data.train)))), T, special)
    ids, attention = batch.input_ids, batch.attention_mask
    tokens = int(attention.sum())
    result = {"rows": ids.shape[0], "seq_len": T, "budget_slots": N, "pieces_share": float(table[ids][attention].float().mean())}
    styles = {"token": {}, "whole_word": {"continues_V": table}, "span": {"continues_V": table, "span": (a.span_p, a.max_span)}}
    for name, kw in styles.items():
        m = mask_tokens(ids, attention, special, N, a.mask_prob, 0.85, rng=torch.Generator().manual_seed(a.seed), **kw)
        chosen = [set(m.positions[b][m.weights[b].bool()].tolist()) for b in range(ids.shape[0])]
        starts = word_starts(ids, maskable(ids, attention, special), table)
        runs = [r for b, c in enumerate(chosen) for r in runs_in_words(list(c), starts[b].tolist())]
        timing = []
        for _ in range(5):
            t0 = time.perf_counter()
            mask_tokens(ids[:128], attention[:128], special, N, a.mask_prob, 0.85, rng=torch.Generator().manual_seed(1), **kw)
            timing.append(time.perf_counter() - t0)
        result[name] = {"masked_share": sum(map(len, chosen)) / tokens, "mean_run_words": sum(runs) / len(runs),
                        "ms_per_128_rows": 1000 * sorted(timing)[2]}
    # the vectorised passes against the exact scan, on the same numbers
    g = torch.Generator().manual_seed(a.seed)
    u, u_len = torch.rand(ids.shape, generator=g), torch.rand(ids.shape, generator=g)
    cand = maskable(ids, attention, special)
    words = word_starts(ids, cand, table)
    k = (attention.sum(1).float() * a.mask_prob).round().clamp(1, N)
    spans = span_starts(words, cand, span_lengths(u_len, a.span_p, a.max_span))
    for name, starts, fill in (("whole_word", words, None), ("span", spans, words)):
        fast = choose_units(starts, cand, k, N, u, PASSES, fill)
        exact = choose_units(starts, cand, k, N, u, T, fill)
        differ = (fast[0] != exact[0]).any(1) | (fast[1] != exact[1]).any(1)
        result[name]["rows_differing_from_exact_scan"] = float(differ.float().mean())
        result[name]["exact_masked_share"] = float(exact[1].sum() / tokens)
    for name in styles:
        print(f"{name:>10}: {json.dumps(result[name])}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
