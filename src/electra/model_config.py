"""ModelConfig: the shape of one Transformer encoder, the discriminator's (config.py derives the generator's and
holds the other sections), and the range checks every config section shares.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from electra.errors import UserError

BACKBONES = ("electra", "modern")


@dataclass
class ModelConfig:
    backbone: str = "electra"  # electra (post-LN BERT with learned positions: the paper's, HF ElectraModel) | modern (pre-LN, rotary positions, GeGLU MLP, no biases, no segment embeddings: ModernBERT's layer, exported as HF ModernBertModel)
    rope_theta: float = 10000.0  # modern: the rotary embeddings' base (ModernBERT: 10,000 up to 1,024 tokens, 160,000 for 8,192)
    local_attention: int = 0  # modern: the tokens a sliding-window layer sees, centred on each (ModernBERT: 128, i.e. +-64); 0 = every layer attends globally
    global_every: int = 3  # with local_attention: layers 0, N, 2N, ... attend globally, the others within the window (ModernBERT: 3)
    local_rope_theta: float = 10000.0  # with local_attention: the rotary base of the sliding-window layers
    vocab_size: int = 30522  # WordPiece vocabulary size (the uncased BERT vocab)
    hidden_size: int = 256  # encoder width D
    embedding_size: int = 128  # embedding-table width E; projected to D inside each model when E != D
    num_layers: int = 12  # Transformer blocks
    num_heads: int = 4  # attention heads; the original uses max(1, hidden // 64)
    intermediate_size: int = 1024  # MLP width F; the original uses 4 * hidden
    max_position_embeddings: int = 512  # rows of the position table: the longest sequence the model takes
    type_vocab_size: int = 2  # segment ids 0 (A) and 1 (B)
    hidden_dropout: float = 0.1  # dropout after embeddings, attention output and MLP output
    attention_dropout: float = 0.1  # dropout on attention probabilities
    layer_norm_eps: float = 1e-12  # tf.contrib layer_norm / HF layer_norm_eps
    initializer_range: float = 0.02  # std of the truncated normal init

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise UserError(f"model.backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.backbone != "modern" and (self.rope_theta != 10000.0 or self.local_attention):
            raise UserError("model.rope_theta and local_attention shape --backbone modern; add it (or drop them)")
        if self.local_attention < 0 or self.local_attention % 2 or self.global_every < 1:
            raise UserError(f"model.local_attention must be an even number of tokens (0 = none) and global_every >= 1, "
                            f"got {self.local_attention} and {self.global_every}")
        if not self.local_attention and (self.global_every, self.local_rope_theta) != (3, 10000.0):
            raise UserError("model.global_every and local_rope_theta shape sliding-window layers; add --local-attention "
                            "(or drop them)")
        for name in ("vocab_size", "hidden_size", "embedding_size", "num_layers", "num_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            if getattr(self, name) < 1:
                raise UserError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise UserError(f"model.hidden_size ({self.hidden_size}) must be divisible by "
                            f"model.num_heads ({self.num_heads})")
        if self.backbone == "modern" and (self.hidden_size // self.num_heads) % 2:
            raise UserError(f"model.backbone=modern rotates head dimensions in pairs: hidden_size / num_heads "
                            f"({self.hidden_size} / {self.num_heads}) must be even")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.type_vocab_size < 2:
            raise UserError(f"model.type_vocab_size must be >= 2, got {self.type_vocab_size}: every example has "
                            f"segment ids 0 (A) and 1 (B)")
        positive(self, "model", "layer_norm_eps", "initializer_range", "rope_theta", "local_rope_theta")

    @property
    def modern(self) -> bool:
        """The ModernBERT-style layer: pre-LN, rotary positions, GeGLU, no biases, no segment embeddings."""
        return self.backbone == "modern"

    def is_local(self, layer: int) -> bool:
        """Whether block `layer` attends within the sliding window (modern backbone with local_attention)."""
        return self.local_attention > 0 and layer % self.global_every != 0


def positive(section: Any, name: str, *fields: str) -> None:
    for f in fields:
        if not getattr(section, f) > 0:  # NaN fails too
            raise UserError(f"{name}.{f} must be > 0, got {getattr(section, f)}")


def at_least_0(section: Any, name: str, *fields: str) -> None:
    for f in fields:
        if not 0 <= getattr(section, f) < float("inf"):
            raise UserError(f"{name}.{f} must be a number >= 0, got {getattr(section, f)}")
