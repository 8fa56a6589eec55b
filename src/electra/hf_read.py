"""Read one Hugging Face folder for import (hf_import.py): its config, its weights (safetensors, or a pickle only
when allowed), its vocabulary and text normalisation, checked against what our encoder can hold; and find the
discriminator / generator folders of an export.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from electra.checkpoint import folder_kind
from electra.config import ModelConfig
from electra.errors import UserError
from electra.hf import (
    DISC_HEAD,
    GEN_HEAD,
    IMPORTABLE,
    check_shapes,
    config_problem,
    encoder_from_hf,
    encoder_to_hf,
    has_importable_config,
    hf_encoder_keys,
    looks_foreign_hf,
    model_config_from_hf,
    model_type,
    rename,
)
from electra.hf_modern import modern_encoder_keys, modern_from_hf, modern_to_hf


class HFModel(NamedTuple):
    folder: Path
    config: dict[str, Any]  # config.json as read
    model_cfg: ModelConfig
    encoder: dict[str, torch.Tensor]  # the ElectraModel body in our Encoder names
    heads: dict[str, torch.Tensor]  # every other tensor, HF names (discriminator_predictions.*, classifier.*, ...)
    vocab_path: Path
    lowercase: bool
    strip_accents: bool | None = None  # None: as lowercase (BERT's rule)

    @property
    def is_electric(self) -> bool:
        """An Electric discriminator (`electra export` marks it): its head gives energies, not RTD logits."""
        return self.config.get("electra_objective") == "electric"

    @property
    def is_generator(self) -> bool:
        archs = self.config.get("architectures") or []
        return "generator_predictions.dense.weight" in self.heads or any(
            a in ("ElectraForMaskedLM", "ElectraForCausalLM") for a in archs)

    def disc_head(self) -> dict[str, torch.Tensor]:
        """discriminator_head.* (our names), or {} when the folder has none (ElectraModel, a fine-tuned model)."""
        if "discriminator_predictions.dense.weight" not in self.heads:
            return {}
        return rename(self.heads, DISC_HEAD, dst_prefix="discriminator_head.", reverse=True)

    def gen_head(self) -> dict[str, torch.Tensor]:
        """generator_head.* (our names), or {}. An lm_head matrix that is not the word-embedding table is dropped
        with a warning: our generator's output layer is always tied."""
        if "generator_predictions.dense.weight" not in self.heads:
            return {}
        if "generator_lm_head.bias" not in self.heads:
            raise UserError(f"{self.folder / 'model.safetensors'} has generator_predictions but no generator_lm_head.bias")
        lm = self.heads.get("generator_lm_head.weight")
        if lm is not None and not torch.equal(lm, self.encoder["embeddings.word.weight"]):
            warnings.warn(f"{self.folder}: generator_lm_head.weight is not the word-embedding table; electra ties "
                          f"them, so the word embeddings are used as the output layer", stacklevel=3)
        return rename(self.heads, GEN_HEAD, dst_prefix="generator_head.", reverse=True)


# ---------------------------------------------------------------------------------------------------
# reading one folder


def read_hf_weights(folder: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    st, index, pickle = folder / "model.safetensors", folder / "model.safetensors.index.json", folder / "pytorch_model.bin"
    try:
        if st.is_file():
            return load_file(str(st))
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return {k: v for s in shards for k, v in load_file(str(folder / s)).items()}
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise UserError(f"weights in {folder} are corrupt or truncated ({str(e).splitlines()[0]}); "
                        f"download or export them again") from None
    if pickle.is_file():
        if not allow_pickle:
            raise UserError(f"{pickle} is a pickle, which can run code when loaded; pass --allow-pickle to load it "
                            f"with torch.load(weights_only=True), or convert it to model.safetensors")
        try:
            sd = torch.load(pickle, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise UserError(f"{pickle} could not be loaded with weights_only=True ({str(e).splitlines()[0][:200]})") from None
        if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
            raise UserError(f"{pickle} is not a plain state dict of tensors")
        return sd
    raise UserError(f"{folder} has no model.safetensors (or pytorch_model.bin); it is not a complete transformers folder")


def _tokenizer_setting(folder: Path, config_key: str, normalizer_key: str) -> bool | None:
    """A text-normalisation flag of the folder's tokenizer: tokenizer_config.json's `config_key`, else the
    fast tokenizer.json normalizer's `normalizer_key`; None if neither says."""
    for name, getter in (("tokenizer_config.json", lambda d: d.get(config_key)),
                         ("tokenizer.json", lambda d: (d.get("normalizer") or {}).get(normalizer_key))):
        try:
            value = getter(json.loads((folder / name).read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            continue
        if value is not None:
            return bool(value)
    return None


def read_hf_model(folder: Path, allow_pickle: bool = False) -> HFModel:
    """Read and check one save_pretrained folder: config, tensor names and shapes, vocabulary."""
    from electra.data.tokenizer import SpecialIds, read_vocab

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / 'config.json'} is missing or unreadable ({e}); not a transformers folder") from None
    cfg = model_config_from_hf(config, folder / "config.json")
    sd = {k: v.float() if v.is_floating_point() else v for k, v in read_hf_weights(folder, allow_pickle).items()}
    from electra.model import Encoder

    if cfg.modern:  # a ModernBertModel folder, or a ModernBERT task model (its body under model.)
        prefix = "model." if any(k.startswith("model.") for k in sd) else ""
        to_hf, from_hf, body = modern_to_hf, modern_from_hf, modern_encoder_keys(sd, prefix)
    else:
        prefix = "electra." if any(k.startswith("electra.") for k in sd) else ""
        to_hf, from_hf, body = encoder_to_hf, encoder_from_hf, hf_encoder_keys(sd, prefix)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in to_hf(Encoder(cfg).state_dict(), prefix).items()}
    where = folder / "model.safetensors"
    check_shapes(expected, sd, body, str(where))
    heads = {k: v for k, v in sd.items() if k not in body and not k.endswith(("position_ids", "token_type_ids"))}
    _check_heads(heads, cfg, where)
    vocab = folder / "vocab.txt"
    if not vocab.is_file() and (folder / "tokenizer.json").is_file():  # transformers 5 saves only that
        raise UserError(f"{folder} has a tokenizer.json but no vocab.txt; write it with `electra vocab "
                        f"--from-tokenizer {folder / 'tokenizer.json'} --out {folder}`")
    if not vocab.is_file():
        raise UserError(f"{folder} has no vocab.txt; electra needs the model's WordPiece vocab.txt next to config.json")
    SpecialIds.from_vocab(vocab)  # UserError if a special token is missing
    n = len(read_vocab(vocab))
    if n > cfg.vocab_size:
        raise UserError(f"{vocab} has {n} tokens but config.json says vocab_size={cfg.vocab_size}; use the model's own vocab")
    encoder = from_hf(sd, cfg.num_layers, prefix)  # fp32, whatever the file's dtype (fp16/bf16 releases)
    lowercase = _tokenizer_setting(folder, "do_lower_case", "lowercase")
    lowercase = True if lowercase is None else lowercase  # BertTokenizer's default
    return HFModel(folder, config, cfg, encoder, heads, vocab, lowercase,
                   _tokenizer_setting(folder, "strip_accents", "strip_accents"))


def _check_heads(heads: dict[str, torch.Tensor], cfg: ModelConfig, where: Path) -> None:
    D, E, V = cfg.hidden_size, cfg.embedding_size, cfg.vocab_size
    shapes = {"discriminator_predictions.dense.weight": (D, D), "discriminator_predictions.dense_prediction.weight": (1, D),
              "generator_predictions.dense.weight": (E, D), "generator_predictions.LayerNorm.weight": (E,),
              "generator_lm_head.bias": (V,), "generator_lm_head.weight": (V, E)}
    for k, shape in shapes.items():
        if k in heads and tuple(heads[k].shape) != shape:
            raise UserError(f"{where}: {k} has shape {tuple(heads[k].shape)} but config.json implies {shape}; "
                            f"the weights and the config come from different models")


def locate(path: Path) -> tuple[Path | None, Path | None]:
    """(discriminator folder, generator folder) inside `path`; either may be None, not both."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model folder {path} does not exist")
    for folder in (path / "discriminator", path / "generator", path):
        problem = config_problem(folder)
        if problem:
            raise UserError(f"{problem}; restore it from where the model came from (or export the model again)")
    for folder in (path / "discriminator", path / "generator"):
        kind = model_type(folder)
        if (folder / "config.json").is_file() and kind not in IMPORTABLE:
            raise UserError(f"{folder} holds a {kind!r} model (config.json model_type), not ELECTRA; an exported "
                            f"pair needs ELECTRA models in both discriminator/ and generator/")
    d = path / "discriminator" if has_importable_config(path / "discriminator") else None
    g = path / "generator" if has_importable_config(path / "generator") else None
    if d or g:
        return d, g
    if has_importable_config(path):
        archs = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        is_gen = any(a in ("ElectraForMaskedLM", "ElectraForCausalLM") for a in archs)
        return (None, path) if is_gen else (path, None)
    foreign = looks_foreign_hf(path)
    if foreign:
        raise UserError(f"{path} holds a {foreign!r} model (config.json model_type), not ELECTRA; only Hugging Face "
                        f"ELECTRA folders (model_type 'electra') and the modern backbone's ModernBERT exports can be imported")
    if folder_kind(path) in ("run", "checkpoint"):
        raise UserError(f"{path} is an `electra pretrain` run or checkpoint, not a Hugging Face folder: to go on "
                        f"training it, give its run folder as --out (the run resumes); to start a new run from its weights, "
                        f"`electra export {path} DIR` and pass DIR")
    raise UserError(f"{path} is not a Hugging Face ELECTRA folder (expected config.json with model_type 'electra', "
                    f"or discriminator/ and generator/ folders)")
