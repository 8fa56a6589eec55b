"""Embeddings for the words an extended vocabulary puts in a published model's free slots (extend_vocab.py).

A slot's row was never trained (`[unused17]` never occurs), so the new word would start from noise. It starts
instead where the model already puts it: at the mean of the rows of the pieces the old vocabulary split it into
(fast vocabulary transfer, Gee et al. 2022), in every word-embedding table of the model (shared or not) and in the
generator's output bias. Continued pre-training then refines them.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from electra.data.extend_vocab import added_words
from electra.data.tokenizer import build_tokenizer, read_vocab
from electra.model import Embeddings, GeneratorHead


@torch.no_grad()
def start_new_words(model: nn.Module, old_vocab: str | Path, new_vocab: str | Path, lowercase: bool,
                    strip_accents: bool | None) -> dict[int, list[int]]:
    """Set each new word's rows to the mean of its old pieces' rows; returns {new id: the old pieces' ids}."""
    old = read_vocab(old_vocab)
    added = added_words(old, read_vocab(new_vocab)) or {}
    tok = build_tokenizer(old, lowercase=lowercase, strip_accents=strip_accents)
    pieces = {i: [t.id for t in tok.model.tokenize(word)] for i, word in added.items()}
    tables = [m.word.weight for m in model.modules() if isinstance(m, Embeddings)]
    tables += [m.bias for m in model.modules() if isinstance(m, GeneratorHead)]
    for table in tables:
        for i, ids in pieces.items():
            table[i] = table[ids].mean(dim=0)
    return pieces
