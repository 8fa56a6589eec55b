"""Hugging Face `transformers` interoperability: name mapping, config conversion and `electra export`.

    electra export RUN_DIR OUT_DIR          -> OUT_DIR/discriminator (ElectraForPreTraining)
                                               OUT_DIR/generator     (ElectraForMaskedLM)
    electra export FINETUNE_OUT OUT_DIR     -> OUT_DIR (ElectraForTokenClassification / ...QuestionAnswering /
                                               ElectraModel), see hf_export.py
    electra pretrain --init HF_DIR, electra finetune/detect --model HF_DIR   (hf_import.py)

Our names and Hugging Face's (docs/hf.md has the full table; `L.i` = `encoder.layer.{i}`):

    embeddings.{word,position,segment}     embeddings.{word,position,token_type}_embeddings
    embeddings.norm                        embeddings.LayerNorm
    project                                embeddings_project                 (only when E != D)
    blocks.i.attn.qkv  (3D, D) = q;k;v     L.i.attention.self.{query,key,value}
    blocks.i.attn.proj / norm1             L.i.attention.output.dense / .LayerNorm
    blocks.i.mlp.fc / mlp.proj / norm2     L.i.intermediate.dense / L.i.output.dense / .LayerNorm
    discriminator_head.dense / .out        discriminator_predictions.dense / .dense_prediction
    generator_head.dense / .norm / .bias   generator_predictions.dense / .LayerNorm, generator_lm_head.bias

Files are written and read with safetensors + json only: `transformers` is never imported here (it is the
optional extra `pip install .[hf]`, needed only to *use* the exported folders).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from electra.config import ModelConfig
from electra.errors import ArgumentParser, UserError

# ---------------------------------------------------------------------------------------------------
# tensor names

_BLOCK = [  # (ours under blocks.{i}., theirs under encoder.layer.{i}.), qkv handled apart
    ("attn.proj", "attention.output.dense"),
    ("norm1", "attention.output.LayerNorm"),
    ("mlp.fc", "intermediate.dense"),
    ("mlp.proj", "output.dense"),
    ("norm2", "output.LayerNorm"),
]
_EMBEDDINGS = [
    ("embeddings.word.weight", "embeddings.word_embeddings.weight"),
    ("embeddings.position.weight", "embeddings.position_embeddings.weight"),
    ("embeddings.segment.weight", "embeddings.token_type_embeddings.weight"),
    ("embeddings.norm.weight", "embeddings.LayerNorm.weight"),
    ("embeddings.norm.bias", "embeddings.LayerNorm.bias"),
]
DISC_HEAD = [("dense.weight", "discriminator_predictions.dense.weight"),
             ("dense.bias", "discriminator_predictions.dense.bias"),
             ("out.weight", "discriminator_predictions.dense_prediction.weight"),
             ("out.bias", "discriminator_predictions.dense_prediction.bias")]
GEN_HEAD = [("dense.weight", "generator_predictions.dense.weight"),
            ("dense.bias", "generator_predictions.dense.bias"),
            ("norm.weight", "generator_predictions.LayerNorm.weight"),
            ("norm.bias", "generator_predictions.LayerNorm.bias"),
            ("bias", "generator_lm_head.bias")]


def encoder_to_hf(sd: dict[str, torch.Tensor], prefix: str = "electra.") -> dict[str, torch.Tensor]:
    """Our `Encoder` state dict (relative names) -> Hugging Face `ElectraModel` names under `prefix`.
    The fused qkv matrix is split row-wise into query, key, value (each (D, D), contiguous copies)."""
    out = {}
    for ours, theirs in _EMBEDDINGS:
        out[prefix + theirs] = sd[ours]
    if "project.weight" in sd:
        out[prefix + "embeddings_project.weight"] = sd["project.weight"]
        out[prefix + "embeddings_project.bias"] = sd["project.bias"]
    layers = sorted({int(k.split(".")[1]) for k in sd if k.startswith("blocks.")})
    for i in layers:
        src, dst = f"blocks.{i}.", f"{prefix}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = sd[f"{src}attn.qkv.{kind}"].chunk(3, dim=0)
            for name, t in (("query", q), ("key", k), ("value", v)):
                out[f"{dst}attention.self.{name}.{kind}"] = t.clone().contiguous()
            for ours, theirs in _BLOCK:
                out[f"{dst}{theirs}.{kind}"] = sd[f"{src}{ours}.{kind}"]
    return out


def encoder_from_hf(sd: dict[str, torch.Tensor], num_layers: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Hugging Face `ElectraModel` names (under `prefix`) -> our `Encoder` names; q, k, v are concatenated.
    Raises KeyError naming the first missing tensor."""
    out = {}
    for ours, theirs in _EMBEDDINGS:
        out[ours] = sd[prefix + theirs]
    if prefix + "embeddings_project.weight" in sd:
        out["project.weight"] = sd[prefix + "embeddings_project.weight"]
        out["project.bias"] = sd[prefix + "embeddings_project.bias"]
    for i in range(num_layers):
        src, dst = f"{prefix}encoder.layer.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.qkv.{kind}"] = torch.cat(
                [sd[f"{src}attention.self.{name}.{kind}"] for name in ("query", "key", "value")], dim=0)
            for ours, theirs in _BLOCK:
                out[f"{dst}{ours}.{kind}"] = sd[f"{src}{theirs}.{kind}"]
    return out


def hf_encoder_keys(sd: dict[str, torch.Tensor], prefix: str = "") -> set[str]:
    """The keys of `sd` that belong to the ElectraModel body under `prefix` (buffers excluded)."""
    body = (prefix + "embeddings.", prefix + "embeddings_project.", prefix + "encoder.")
    buffers = {prefix + "embeddings.position_ids", prefix + "embeddings.token_type_ids"}
    return {k for k in sd if k.startswith(body)} - buffers


def rename(sd: dict[str, torch.Tensor], pairs: list[tuple[str, str]], src_prefix: str = "",
           dst_prefix: str = "", reverse: bool = False) -> dict[str, torch.Tensor]:
    """Rename by (ours, theirs) pairs; ours -> theirs, or theirs -> ours with reverse=True."""
    out = {}
    for ours, theirs in pairs:
        a, b = (theirs, ours) if reverse else (ours, theirs)
        out[dst_prefix + b] = sd[src_prefix + a]
    return out


# ---------------------------------------------------------------------------------------------------
# configs

# HF ElectraConfig field -> ModelConfig field, with HF's defaults for a config.json that omits a field
_CONFIG = [
    ("vocab_size", "vocab_size", 30522),
    ("embedding_size", "embedding_size", 128),
    ("hidden_size", "hidden_size", 256),
    ("num_hidden_layers", "num_layers", 12),
    ("num_attention_heads", "num_heads", 4),
    ("intermediate_size", "intermediate_size", 1024),
    ("max_position_embeddings", "max_position_embeddings", 512),
    ("type_vocab_size", "type_vocab_size", 2),
    ("hidden_dropout_prob", "hidden_dropout", 0.1),
    ("attention_probs_dropout_prob", "attention_dropout", 0.1),
    ("layer_norm_eps", "layer_norm_eps", 1e-12),
    ("initializer_range", "initializer_range", 0.02),
]


def hf_config(cfg: ModelConfig, architecture: str | None, pad_token_id: int, **extra: Any) -> dict[str, Any]:
    """A transformers ElectraConfig as a config.json dict (architecture None = no `architectures` entry)."""
    d: dict[str, Any] = {"model_type": "electra"}
    if architecture:
        d["architectures"] = [architecture]
    for theirs, ours, _ in _CONFIG:
        d[theirs] = getattr(cfg, ours)
    d.update(hidden_act="gelu", position_embedding_type="absolute", pad_token_id=pad_token_id,
             summary_type="first", summary_use_proj=True, summary_activation="gelu", summary_last_dropout=0.1)
    d.update(extra)
    return dict(sorted(d.items()))


def model_config_from_hf(d: dict[str, Any], where: Path) -> ModelConfig:
    """A ModelConfig from an HF config.json dict; UserError for what our encoder cannot run."""
    if d.get("model_type") == "modernbert":
        from electra.hf_modern import modern_config_from_hf

        return modern_config_from_hf(d, where)
    if d.get("model_type") != "electra":
        raise UserError(f"{where} has model_type {d.get('model_type')!r}, not 'electra'; only Hugging Face ELECTRA "
                        f"models can be imported (convert other architectures elsewhere)")
    if d.get("hidden_act", "gelu") != "gelu":
        raise UserError(f"{where}: hidden_act {d['hidden_act']!r} is not supported (our encoder uses the exact "
                        f"erf GELU, HF's 'gelu'); pick a model trained with gelu")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise UserError(f"{where}: position_embedding_type {d['position_embedding_type']!r} is not supported "
                        f"(only 'absolute' position embeddings, as the original ELECTRA)")
    if d.get("is_decoder") or d.get("add_cross_attention"):
        raise UserError(f"{where} is a decoder / cross-attention configuration; only encoder models can be imported")
    for theirs, _, default in _CONFIG:
        value = d.get(theirs, default)
        kinds = (int,) if isinstance(default, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise UserError(f"{where}: {theirs} is {value!r}, not {'an integer' if kinds == (int,) else 'a number'}; "
                            f"fix config.json")
    try:
        return ModelConfig(**{ours: d.get(theirs, default) for theirs, ours, default in _CONFIG})
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: unusable ELECTRA configuration ({e})") from None


def same_architecture(a: ModelConfig, b: ModelConfig) -> bool:
    """Equal in every field that shapes a tensor (dropout, eps and init may differ)."""
    keys = ("vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def check_shapes(expected: dict[str, tuple[int, ...]], sd: dict[str, torch.Tensor], names: set[str], where: str) -> None:
    """UserError unless `names` (the keys of `sd` under test) are exactly `expected`'s, with its shapes."""
    missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
    if missing or unexpected:
        raise UserError(f"{where} do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                        f"the weights and config.json come from different models")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise UserError(f"{where}: tensor {k} has shape {tuple(sd[k].shape)} but the config implies {shape}; "
                            f"the weights and config.json come from different models")


def check_encoder(sd: dict[str, torch.Tensor], cfg: ModelConfig, where: str) -> None:
    """UserError unless `sd` (our Encoder names) has exactly the tensors, and shapes, of Encoder(cfg)."""
    from electra.model import Encoder

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Encoder(cfg).state_dict().items()}
    check_shapes(expected, sd, set(sd), where)


# ---------------------------------------------------------------------------------------------------
# folders


def config_problem(folder: Path) -> str | None:
    """Why folder/config.json cannot be read as a JSON object; None when it can, or when there is none."""
    f = folder / "config.json"
    if not f.is_file():
        return None
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{f} is not readable JSON ({str(e)[:80]})"
    return None if isinstance(d, dict) else f"{f} is not a JSON object"


def model_type(folder: Path) -> str | None:
    """folder/config.json's model_type; None without a readable JSON object there (config_problem says why)."""
    try:
        d = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d.get("model_type") if isinstance(d, dict) else None


IMPORTABLE = ("electra", "modernbert")  # modernbert: the modern backbone's exports (hf_modern.py)


def has_importable_config(folder: Path) -> bool:
    """folder/config.json is a model this project imports: ELECTRA, or a ModernBERT (the modern backbone)."""
    return model_type(folder) in IMPORTABLE


def is_hf_folder(path: str | Path, any_model_type: bool = False) -> bool:
    """True for a Hugging Face ELECTRA folder (config.json with model_type "electra"), or a folder holding
    `discriminator/` (and/or `generator/`) such folders, as `electra export` writes. A run folder of ours
    (config.json + checkpoints/) is never one. any_model_type=True also accepts a transformers folder of another
    architecture (e.g. BERT), so that the loader can refuse it with a clear message."""
    p = Path(path)
    if not p.is_dir() or (p / "checkpoints").is_dir():
        return False
    if any(config_problem(q) for q in (p, p / "discriminator", p / "generator")):
        return True  # a damaged model folder: the loader names the broken file
    if has_importable_config(p) or has_importable_config(p / "discriminator") or has_importable_config(p / "generator"):
        return True
    return any_model_type and looks_foreign_hf(p) is not None


def looks_foreign_hf(path: Path) -> str | None:
    """The model_type of a transformers folder of another architecture (for a clear error), else None."""
    for folder in (path, path / "discriminator"):
        t = model_type(folder)
        if t and t not in IMPORTABLE:
            return str(t)
    return None


# ---------------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str]) -> int:
    p = ArgumentParser(
        prog="electra export",
        description="Write Hugging Face transformers folders (config.json, model.safetensors, vocab.txt, tokenizer "
                    "files) from a pre-training run (discriminator/ + generator/) or a fine-tuned model.")
    p.add_argument("src", type=Path, help="run folder, checkpoint folder, or `electra finetune` output (or its model/)")
    p.add_argument("out", type=Path, help="output folder (created)")
    p.add_argument("--overwrite", action="store_true", help="replace files in a non-empty output folder")
    args = p.parse_args(argv)
    from electra.hf_export import export

    result = export(args.src, args.out, overwrite=args.overwrite)
    for note in result.notes:
        print(f"note: {note}")
    for folder, arch in result.folders:
        print(f"wrote {folder} ({arch})")
    return 0


# The implementations live in other modules to keep each readable; import them from here (lazily, so that
# `electra.hf` stays importable from both without a cycle).
_LAZY = {
    "export": "electra.hf_export", "export_pretrained": "electra.hf_export", "export_finetuned": "electra.hf_export",
    "ExportResult": "electra.hf_export", "write_hf_folder": "electra.hf_export",
    "load_hf_encoder": "electra.hf_import", "load_hf_pretraining": "electra.hf_import", "load_into": "electra.hf_import",
    "init_from_hf": "electra.hf_import", "HFPretraining": "electra.hf_import", "read_hf_model": "electra.hf_read",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'electra.hf' has no attribute {name!r}")
