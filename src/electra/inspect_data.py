"""`electra inspect DATASET`: what the model will see, before hours of training are spent on it.

    electra inspect data/wiki128                                  # the split's shape and 3 rows, decoded
    electra inspect data/wiki128 --rows 5 --mask --masking whole_word   # which tokens a step would mask
    electra inspect data/wiki128 --json                           # the same, as one JSON object

The shape of a split, from every row's length (and a sample of up to SAMPLE rows for what needs the tokens): the
lengths' spread, the share of rows at full length, the padding a padded batch carries (what unpadding saves), the
share with a B segment and the [UNK] share. Each shown row is decoded into its A and B segments (word pieces
joined back into words). With --mask, the row also as a training step masks it, by the objective's own
`mask_tokens` with the dataset's special tokens (and `##` table, for whole-word and span masking): pieces that
become [MASK] in [brackets], pieces chosen but kept as they are in {braces}.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import torch

from electra.config import MASKINGS, build_config
from electra.data.dataset import Examples, PretrainData, collate
from electra.data.tokenizer import read_vocab
from electra.errors import ArgumentParser, UserError
from electra.objective import SpecialTokens, mask_tokens
from electra.word_masking import continuation_table

SAMPLE = 10_000  # rows read for the statistics that need their tokens


def words(tokens: list[str]) -> str:
    """Word pieces joined back into words: `play ##ing` -> `playing` (markers kept around the pieces)."""
    out: list[str] = []
    for t in tokens:
        core = t.strip("[]{}") if t[:1] in "[{" and t[-1:] in "]}" and len(t) > 2 else t
        if core.startswith("##") and out:
            out[-1] += t.replace("##", "", 1)
        else:
            out.append(t)
    return " ".join(out)


def segments(row: np.ndarray, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """The A and B segments of a [CLS] A [SEP] (B [SEP]) row (B empty for a single-segment row)."""
    seps = np.flatnonzero(row == sep)
    first = seps[0] if len(seps) else len(row)
    return row[1:first], row[first + 1:seps[1] if len(seps) > 1 else len(row)]


def split_stats(split: Examples, seq_len: int, sep: int, unk: int, rng: np.random.Generator) -> dict[str, Any]:
    """The shape of a split: lengths from every row, the B-segment and [UNK] shares from a sample."""
    lengths = split.lengths()
    if not len(lengths):
        return {"rows": 0}
    sample = np.sort(rng.choice(len(split), size=min(SAMPLE, len(split)), replace=False))
    rows = split.take(sample)
    tokens = np.concatenate(rows)
    return {
        "rows": len(lengths), "tokens": int(lengths.sum()),
        "length": {"mean": round(float(lengths.mean()), 1),
                   **{f"p{q}": int(np.percentile(lengths, q)) for q in (5, 50, 95)}},
        "full_length": round(float((lengths == seq_len).mean()), 4),
        "padding": round(1 - float(lengths.mean()) / seq_len, 4),  # of a padded batch's slots
        "with_b_segment": round(float(np.mean([(r == sep).sum() > 1 for r in rows])), 4),
        "unk": round(float((tokens == unk).mean()), 5),
        "sampled_rows": len(sample),
    }


def masked_rows(rows: list[np.ndarray], data: PretrainData, vocab: dict[str, int],
                args: argparse.Namespace) -> list[list[str]]:
    """Each row's word pieces as one training step masks them (markers as in the module docstring)."""
    overrides = {"seq_len": str(data.seq_len), "vocab_size": str(data.vocab_size), "masking": args.masking}
    if args.mask_prob is not None:
        overrides["mask_prob"] = str(args.mask_prob)
    cfg = build_config(None, overrides)
    o, sp = cfg.objective, data.special
    batch = collate(rows, data.seq_len, sp)
    continues = continuation_table(vocab, data.vocab_size) if o.masking != "token" else None
    rng = torch.Generator().manual_seed(args.seed)
    masked = mask_tokens(batch.input_ids, batch.attention_mask, SpecialTokens(sp.pad, sp.cls, sp.sep, sp.mask),
                         cfg.max_predictions, o.mask_prob, o.mask_token_prob, rng, None, continues,
                         (o.span_p, o.max_span) if o.masking == "span" else None)
    names = {i: t for t, i in vocab.items()}
    out = []
    for b, row in enumerate(rows):
        chosen = set(masked.positions[b][masked.weights[b] > 0].tolist())
        pieces = []
        for t, token_id in enumerate(row.tolist()):
            name = names.get(token_id, f"<{token_id}>")
            if t in chosen:
                name = f"[{name}]" if masked.input_ids[b, t] == sp.mask else f"{{{name}}}"
            pieces.append(name)
        out.append(pieces)
    return out


def inspect(args: argparse.Namespace) -> dict[str, Any]:
    data = PretrainData(args.dataset)
    split = getattr(data, args.split)
    rng = np.random.default_rng(args.seed)
    stats = split_stats(split, data.seq_len, data.special.sep, data.special.unk, rng)
    report: dict[str, Any] = {"dataset": str(data.root), "split": args.split, "seq_len": data.seq_len,
                              "vocab_size": data.vocab_size, "stats": stats, "rows": []}
    if not len(split) or not args.rows:
        return report
    picks = np.sort(rng.choice(len(split), size=min(args.rows, len(split)), replace=False))
    rows = split.take(picks)
    vocab = read_vocab(data.vocab_path)
    names = {i: t for t, i in vocab.items()}
    masked = masked_rows(rows, data, vocab, args) if args.mask else [None] * len(rows)
    for i, row, pieces in zip(picks.tolist(), rows, masked):
        a, b = segments(row, data.special.sep)
        entry = {"index": i, "length": len(row), "a": words([names[t] for t in a.tolist()]),
                 "b": words([names[t] for t in b.tolist()])}
        if pieces is not None:
            entry["masked"] = words(pieces)
        report["rows"].append(entry)
    return report


def show(report: dict[str, Any], args: argparse.Namespace) -> str:
    s = report["stats"]
    lines = [f"{report['dataset']} ({report['split']}): seq_len {report['seq_len']}, vocab {report['vocab_size']:,}"]
    if not s["rows"]:
        return "\n".join([*lines, "no rows in this split"])
    n = s["length"]
    lines += [(f"{s['rows']:,} rows, {s['tokens']:,} tokens; length mean {n['mean']} (p5 {n['p5']}, median {n['p50']}, "
              f"p95 {n['p95']}); {100 * s['full_length']:.1f}% at full length; a padded batch is "
              f"{100 * s['padding']:.1f}% padding"),
              (f"in {s['sampled_rows']:,} sampled rows: {100 * s['with_b_segment']:.1f}% with a B segment, "
              f"[UNK] {100 * s['unk']:.3f}% of tokens")]
    if args.mask:
        lines.append(f"masking {args.masking}: [MASK]ed pieces in [brackets], chosen but kept in {{braces}}")
    for r in report["rows"]:
        lines += ["", f"row {r['index']:,} ({r['length']} tokens)", f"  A: {r['a']}"]
        if r["b"]:
            lines.append(f"  B: {r['b']}")
        if "masked" in r:
            lines.append(f"  masked: {r['masked']}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="electra inspect", description="Show what a prepared dataset holds: its rows' lengths "
                       "and segments, a few rows decoded, and (--mask) what a training step masks in them.")
    p.add_argument("dataset", help="a folder written by `electra prepare`")
    p.add_argument("--split", choices=("train", "valid"), default="train")
    p.add_argument("--rows", type=int, default=3, help="rows to show, drawn at random (0: statistics only)")
    p.add_argument("--seed", type=int, default=0, help="which rows, and which masking draws")
    p.add_argument("--mask", action="store_true", help="also show each row as a training step would mask it")
    p.add_argument("--masking", choices=MASKINGS, default="token", help="with --mask: the objective's masking")
    p.add_argument("--mask-prob", type=float, help="with --mask: the share of tokens masked (default: the config's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = p.parse_args(argv)
    if args.rows < 0:
        raise UserError(f"--rows {args.rows} must be 0 or more")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = inspect(args)
    sys.stdout.write((json.dumps(report) if args.json else show(report, args)) + "\n")
    return 0
