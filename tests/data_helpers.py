"""Helpers shared by the tests (conftest.py builds its tiny dataset with them): the shared data folder,
small corpora, a tiny word-level vocab, running `electra` in a subprocess."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WIKI = SHARED / "pretrain" / "enwiki-2015-wikiextractor"
BERT_VOCAB = SHARED / "vocab" / "vocab.txt"
SRC = Path(__file__).resolve().parents[1] / "src"

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "red", "green", "blue", "cat", "dog", "house", "river", "music"]
# English-like words, for corpora that a vocab is trained on (conftest's tiny dataset).
ENGLISH_WORDS = (  # noqa: SIM905
                 "the of and a to in is was for on that with as by at from his her it an were are which this be "
                 "city river music team film war school king game house church village station north south "
                 "played born built named known found called became during after before between under").split()


def write_vocab(path: Path, extra: tuple[str, ...] = (), specials: tuple[str, ...] | None = None) -> Path:
    """A word-level WordPiece vocab: the five specials, punctuation, WORDS and `extra`."""
    specials = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if specials is None else specials
    tokens = [*specials, ".", ",", "!", "?", *WORDS, *extra]
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def sentence(rng: random.Random, lo: int = 3, hi: int = 15, words: Sequence[str] = WORDS) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi))) + "."


def write_docs(path: Path, n_docs: int, seed: int = 0, lines: tuple[int, int] = (2, 10),
               words: Sequence[str] = WORDS, sentence_len: tuple[int, int] = (3, 15),
               capitalize: bool = False) -> list[list[str]]:
    """Plain text: one sentence per line, blank line between documents; returns the documents."""
    rng = random.Random(seed)
    docs = [[sentence(rng, *sentence_len, words=words) for _ in range(rng.randint(*lines))]
            for _ in range(n_docs)]
    if capitalize:
        docs = [[s.capitalize() for s in d] for d in docs]
    path.write_text("".join("\n".join(d) + "\n\n" for d in docs), encoding="utf-8")
    return docs


def electra_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ plus `env`, with this checkout's src first on PYTHONPATH, so a subprocess's
    `python -m electra` runs the code under test even where the package is not installed."""
    path = str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": path, **(env or {})}


def electra_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "electra", *args]


def run_electra(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m electra ARGS` in a subprocess (used where a real process boundary matters)."""
    proc = subprocess.run(electra_argv(*args), capture_output=True, text=True, env=electra_env(env),
                          check=False, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"electra {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> content), for byte-identity checks."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
