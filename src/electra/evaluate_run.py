"""`electra evaluate RUN_OR_CHECKPOINT --data DATASET`: a checkpoint's held-out numbers on any prepared dataset.

    electra evaluate runs/small --data data/domain128                      # the run's latest checkpoint
    electra evaluate runs/small/checkpoints/step_00500000 --data data/domain128 --batches 50 --json

The same evaluation as during training (heldout.py: dropout off, each held-out row masked and sampled by its own
seeded draws), so its numbers equal the run's own `eval/...` record for the same checkpoint and dataset, and
checkpoints along a curve, or runs on one dataset, compare on identical corruptions.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from electra import dist
from electra.checkpoint import load_pretrained
from electra.data.dataset import PretrainData
from electra.data.tokenizer import read_vocab, vocab_sha256
from electra.errors import ArgumentParser, UserError
from electra.heldout import evaluate
from electra.model import set_residual
from electra.objective import Electra, SpecialTokens
from electra.precision import autocast, autocast_dtype
from electra.word_masking import continuation_table


def evaluate_checkpoint(path: Path, data_dir: Path, batches: int = 0, device: str = "auto") -> dict[str, float]:
    """Held-out metrics of the checkpoint at `path` (a run folder: its latest) on `data_dir`'s held-out split."""
    pre = load_pretrained(path)
    data = PretrainData(data_dir)
    if vocab_sha256(data.vocab_path) != vocab_sha256(pre.vocab_path):
        raise UserError(f"{data_dir} was prepared with another vocabulary than {path}; prepare it with "
                        f"--vocab {pre.vocab_path}")
    if data.seq_len > pre.cfg.model.max_position_embeddings:
        raise UserError(f"{data_dir} holds {data.seq_len}-token examples, more than the model's "
                        f"{pre.cfg.model.max_position_embeddings} positions; prepare it with a shorter --seq-len")
    if len(data.valid) == 0:
        raise UserError(f"{data_dir} has no held-out examples; prepare it with --valid-fraction above 0")
    t = dataclasses.replace(pre.cfg.train, seq_len=data.seq_len, eval_batches=batches or pre.cfg.train.eval_batches)
    cfg = dataclasses.replace(pre.cfg, train=t)
    d = dist.init(device)
    special = SpecialTokens(data.special.pad, data.special.cls, data.special.sep, data.special.mask)
    model = Electra(cfg, special).to(d.device)
    set_residual(model, t.residual)
    model.load_weights({k: v.to(d.device) for k, v in pre.weights.items()})
    if cfg.objective.masking != "token":
        model.set_word_pieces(continuation_table(read_vocab(data.vocab_path), cfg.model.vocab_size))
    micro = t.micro_batch_size or t.global_batch_size
    return {"step": pre.step} | evaluate(model, data, cfg, micro, d, autocast(autocast_dtype(t.precision, d.device),
                                                                               d.device))


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="electra evaluate", description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path, help="a run folder (its latest checkpoint) or one checkpoint folder")
    p.add_argument("--data", type=Path, required=True, help="a prepared dataset (the run's vocabulary)")
    p.add_argument("--batches", type=int, default=0, help="global batches of held-out rows (0: the run's eval_batches)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.batches < 0:
        raise UserError(f"--batches {a.batches} must be 0 (the run's) or more")
    with torch.no_grad():
        m = evaluate_checkpoint(a.model, a.data, a.batches, a.device)
    print(json.dumps(m) if a.json else f"step {m['step']:,} on {a.data}: "
          + " | ".join(f"{k.split('/', 1)[1]} {v:.4f}" for k, v in m.items() if k != "step"))
    return 0
