"""The modern backbone (`--backbone modern`) as Hugging Face `ModernBertModel` folders.

ModernBERT's layer is the modern backbone's: pre-LN without biases, rotary positions, GeGLU, a final norm, the
first layer reading the embeddings' norm. Our encoder maps onto `ModernBertModel` one-to-one when

- the embedding width equals the hidden width (ModernBERT has no embedding projection), and
- its attention layers are global every N layers from layer 0 and sliding-window in between (ModernBERT's
  layout, `--local-attention W --global-every N`), or all global (the default),

so the discriminator exports as a `ModernBertModel` folder that transformers' ModernBERT task classes fine-tune
(their heads start new), and such a folder (or any ModernBERT of that shape with a WordPiece vocab.txt) imports
back for fine-tuning, detection and continued pre-training. Names, `L.i` = `layers.{i}`:

    embeddings.word / embeddings.norm          embeddings.tok_embeddings / embeddings.norm
    blocks.i.norm1 (i > 0) / blocks.i.norm2    L.i.attn_norm / L.i.mlp_norm
    blocks.i.attn.qkv / attn.proj              L.i.attn.Wqkv / L.i.attn.Wo      (q;k;v stacked in both)
    blocks.i.mlp.fc / mlp.proj                 L.i.mlp.Wi / L.i.mlp.Wo          (value;gate stacked in both)
    final_norm                                 final_norm

No transformers import here: safetensors + json only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from electra.config import ModelConfig
from electra.errors import UserError

_BLOCK = [("attn.qkv", "attn.Wqkv"), ("attn.proj", "attn.Wo"), ("norm2", "mlp_norm"), ("mlp.fc", "mlp.Wi"),
          ("mlp.proj", "mlp.Wo")]


def check_exportable(cfg: ModelConfig, what: str) -> None:
    """UserError unless `cfg` is a modern encoder that ModernBertModel can hold."""
    if not cfg.modern:
        raise ValueError("not a modern-backbone encoder")
    if cfg.embedding_size != cfg.hidden_size:
        raise UserError(f"{what}: ModernBERT has no embedding projection, but this model's embeddings are "
                        f"{cfg.embedding_size} wide and its layers {cfg.hidden_size}; pre-train with --embedding-size "
                        f"{cfg.hidden_size} to export it (it still fine-tunes here as it is)")


def _names(num_layers: int) -> list[tuple[str, str]]:
    """(ours, theirs) for every tensor of a modern encoder of `num_layers` blocks."""
    pairs = [("embeddings.word.weight", "embeddings.tok_embeddings.weight"),
             ("embeddings.norm.weight", "embeddings.norm.weight"), ("final_norm.weight", "final_norm.weight")]
    for i in range(num_layers):
        if i > 0:  # block 0 reads the embeddings' norm
            pairs.append((f"blocks.{i}.norm1.weight", f"layers.{i}.attn_norm.weight"))
        pairs += [(f"blocks.{i}.{ours}.weight", f"layers.{i}.{theirs}.weight") for ours, theirs in _BLOCK]
    return pairs


def modern_to_hf(sd: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Our modern `Encoder` state dict -> `ModernBertModel` names under `prefix` ("model." inside task classes)."""
    num_layers = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    return {prefix + theirs: sd[ours] for ours, theirs in _names(num_layers)}


def modern_hf_config(cfg: ModelConfig, architecture: str, ids: Any) -> dict[str, Any]:
    """A transformers ModernBertConfig as a config.json dict; `ids`: the vocabulary's SpecialIds."""
    d = {
        "model_type": "modernbert", "architectures": [architecture],
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position_embeddings, "hidden_activation": "gelu",
        "norm_eps": cfg.layer_norm_eps, "norm_bias": False, "attention_bias": False, "mlp_bias": False,
        "initializer_range": cfg.initializer_range, "initializer_cutoff_factor": 2.0,
        "attention_dropout": cfg.attention_dropout, "embedding_dropout": cfg.hidden_dropout,
        "mlp_dropout": 0.0,
        "layer_types": ["sliding_attention" if cfg.is_local(i) else "full_attention" for i in range(cfg.num_layers)],
        "local_attention": cfg.local_attention or 128,  # transformers' default when no layer slides
        "global_attn_every_n_layers": cfg.global_every if cfg.local_attention else 1,
        "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": cfg.rope_theta},
                            "sliding_attention": {"rope_type": "default", "rope_theta": cfg.local_rope_theta}},
        "global_rope_theta": cfg.rope_theta, "local_rope_theta": cfg.local_rope_theta,
        "pad_token_id": ids.pad, "cls_token_id": ids.cls, "sep_token_id": ids.sep,
        "bos_token_id": ids.cls, "eos_token_id": ids.sep,
        "classifier_pooling": "cls", "classifier_activation": "gelu", "classifier_bias": False,
        "decoder_bias": True, "tie_word_embeddings": True,
    }
    return dict(sorted(d.items()))


def modern_from_hf(sd: dict[str, torch.Tensor], num_layers: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """`ModernBertModel` names under `prefix` -> our modern `Encoder` names. KeyError names a missing tensor."""
    return {ours: sd[prefix + theirs] for ours, theirs in _names(num_layers)}


def modern_encoder_keys(sd: dict[str, torch.Tensor], prefix: str = "") -> set[str]:
    """The keys of `sd` that belong to the ModernBertModel body under `prefix`."""
    return {k for k in sd if k.startswith((prefix + "embeddings.", prefix + "layers.", prefix + "final_norm."))}


def modern_config_from_hf(d: dict[str, Any], where: Path) -> ModelConfig:
    """A modern-backbone ModelConfig from a ModernBERT config.json dict; UserError for what our encoder lacks."""
    n = d.get("num_hidden_layers", 22)

    def layout(every: int) -> list[str]:  # layers 0, N, 2N, ... global, the others sliding: ModernBERT's
        return ["sliding_attention" if i % every else "full_attention" for i in range(n)]

    types = d.get("layer_types") or layout(d.get("global_attn_every_n_layers", 3))  # older configs: the period only
    full = [i for i, t in enumerate(types) if t == "full_attention"]
    every = full[1] if len(full) > 1 else n
    if types != layout(every):
        raise UserError(f"{where}: layer_types {types} is not global attention every N layers from layer 0 (the "
                        f"others sliding), the only layout electra builds")
    local = d.get("local_attention", 128) if len(full) < n else 0
    for key in ("attention_bias", "mlp_bias", "norm_bias"):
        if d.get(key, False):
            raise UserError(f"{where}: {key} is true; electra's modern backbone has no biases, so this model cannot be "
                            f"imported")
    if d.get("hidden_activation", "gelu") != "gelu":
        raise UserError(f"{where}: hidden_activation {d['hidden_activation']!r} is not supported (the modern "
                        f"backbone's GeGLU uses the exact erf GELU, 'gelu')")
    ropes = d.get("rope_parameters") or {}
    for kind in ("full_attention", "sliding_attention"):
        if (ropes.get(kind) or {}).get("rope_type", "default") != "default":
            raise UserError(f"{where}: rope_type {ropes[kind]['rope_type']!r} is not supported (only plain rotary "
                            f"positions)")
    theta = (ropes.get("full_attention") or {}).get("rope_theta", d.get("global_rope_theta", 160000.0))
    local_theta = (ropes.get("sliding_attention") or {}).get("rope_theta", d.get("local_rope_theta", 10000.0))
    try:
        return ModelConfig(
            backbone="modern", rope_theta=float(theta), local_attention=local, vocab_size=d.get("vocab_size", 50368),
            **({"global_every": every, "local_rope_theta": float(local_theta)} if local else {}),
            hidden_size=d.get("hidden_size", 768), embedding_size=d.get("hidden_size", 768), num_layers=n,
            num_heads=d.get("num_attention_heads", 12), intermediate_size=d.get("intermediate_size", 1152),
            max_position_embeddings=d.get("max_position_embeddings", 8192),
            hidden_dropout=d.get("embedding_dropout", 0.0), attention_dropout=d.get("attention_dropout", 0.0),
            layer_norm_eps=d.get("norm_eps", 1e-5), initializer_range=d.get("initializer_range", 0.02))
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: unusable ModernBERT configuration ({e})") from None
