"""Shared helpers for the fine-tuning tests (no tests here): a tiny fake `electra pretrain` run folder
and GLUE / SQuAD / CoNLL files written in their published formats."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from electra.config import ModelConfig, PretrainConfig
from electra.model import Encoder, init_weights

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

WORDS = ["the", "a", "an", "of", "and", "to", "is", "was", "in", "it", "that", "he", "she", "they", "good", "bad", "movie", "film", "great", "awful", "not", "very", "cat", "dog", "sat", "on", "mat", "man", "woman", "plays", "guitar", "plane", "taking", "off", "yes", "no", "who", "what", "where", "when", "which", "paris", "france", "capital", "city", "river", "born", "year", "team", "won", "game", "john", "mary", "london", "germany", "eu", "rejects", "german", "call", "boycott", "british", "lamb", "peter", "blackburn", "brussels", ".", ",", "?", "!", "'", "-"]


def write_vocab(path: Path) -> Path:
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS)) + letters + ["##" + c for c in letters]
    path.write_text("\n".join(dict.fromkeys(toks)) + "\n")
    return path


def make_run(root: Path, hidden: int = 32, layers: int = 2, seed: int = 0, **model_fields: object) -> Path:
    """A fake run folder that checkpoint.load_discriminator reads: config, tokenizer.json, vocab, one checkpoint;
    `model_fields`: more ModelConfig fields (backbone="modern")."""
    run = root / "run"
    (run / "checkpoints" / "step_00000010").mkdir(parents=True)
    vocab = write_vocab(run / "vocab.txt")
    n_vocab = len(vocab.read_text().split("\n")) - 1
    model = {"vocab_size": n_vocab, "hidden_size": hidden, "embedding_size": hidden, "num_layers": layers,
             "num_heads": 2, "intermediate_size": 2 * hidden, "max_position_embeddings": 128, **model_fields}
    cfg = PretrainConfig.from_dict({"model": model, "train": {"seq_len": 64}})
    (run / "config.json").write_text(cfg.to_json())
    (run / "tokenizer.json").write_text(json.dumps({"lowercase": True}))
    torch.manual_seed(seed)
    enc = Encoder(ModelConfig(**model))
    init_weights(enc)
    save_file({f"discriminator.{k}": v.contiguous() for k, v in enc.state_dict().items()},
              str(run / "checkpoints" / "step_00000010" / "model.safetensors"))
    (run / "checkpoints" / "step_00000010" / "state.json").write_text(json.dumps({"step": 10}))
    (run / "checkpoints" / "LATEST").write_text("step_00000010")
    return run


def write_tsv(path: Path, rows: list[list[str]], header: list[str] | None = None, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path
