"""Shared fixtures: a tiny corpus, vocabulary and prepared dataset built in-process (hermetic), the real
shared data folder when present, and small configs.

    python -m pytest tests -q
"""
from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import ENGLISH_WORDS, SHARED, write_docs

__all__ = ["SHARED", "tiny_overrides"]  # what tests import from here (SHARED lives in data_helpers)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared 32-token dataset over a 200-entry vocabulary trained on the test corpus."""
    from electra.cli import main

    root = tmp_path_factory.mktemp("tiny_data")
    corpus = root / "corpus.txt"
    write_docs(corpus, 300, lines=(3, 12), words=ENGLISH_WORDS, sentence_len=(4, 20), capitalize=True)
    assert main(["vocab", str(corpus), "--vocab-size", "200", "--out", str(root / "vocab")]) == 0
    assert main(["prepare", str(corpus), "--vocab", str(root / "vocab" / "vocab.txt"), "--seq-len", "32",
                 "--out", str(root / "ds"), "--workers", "1", "--valid-fraction", "0.05", "--quiet"]) == 0
    return root / "ds"


def tiny_overrides(**extra: object) -> list[str]:
    """CLI overrides for a 2-layer, 32-wide model on the tiny dataset; fp32, CPU, frequent logs."""
    values = dict(hidden_size=32, embedding_size=16, num_layers=2, num_heads=2, intermediate_size=64,
                  generator_hidden_fraction=0.5, global_batch_size=8, max_steps=6, warmup_steps=2, lr=1e-3,
                  log_every=1, eval_every=3, eval_batches=2, save_every=2, keep_last=2, precision="fp32")
    values.update(extra)
    args = []
    for k, v in values.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args
