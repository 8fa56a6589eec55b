"""Shared fixtures: a tiny corpus, vocabulary and prepared dataset built in-process (hermetic), the real
shared data folder when present, and small configs.

    python -m pytest tests -q
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

WORDS = ("the of and a to in is was for on that with as by at from his her it an were are which this be "
         "city river music team film war school king game house church village station north south "
         "played born built named known found called became during after before between under").split()


def write_corpus(path: Path, n_docs: int = 60, seed: int = 0) -> Path:
    """Plain-text documents of random sentences (one per line), blank line between documents."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n_docs):
            for _ in range(rng.randint(3, 12)):
                f.write(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))).capitalize() + ".\n")
            f.write("\n")
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared 32-token dataset over a 200-entry vocabulary trained on the test corpus."""
    from electra.cli import main

    root = tmp_path_factory.mktemp("tiny_data")
    corpus = write_corpus(root / "corpus.txt", n_docs=300)
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
