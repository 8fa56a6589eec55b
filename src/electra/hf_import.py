"""Start from a Hugging Face ELECTRA folder: `electra finetune/detect --model HF_DIR` (`load_hf_encoder`, reached
through `checkpoint.load_discriminator`) and `electra pretrain --init HF_DIR` (`load_hf_pretraining`).

A folder is either one `save_pretrained` folder (config.json with model_type "electra" + model.safetensors +
vocab.txt), or a folder holding `discriminator/` and/or `generator/` such folders (what `electra export` writes).
Weights are read from model.safetensors (or a sharded model.safetensors.index.json). A pytorch_model.bin is a
pickle and is refused unless the caller passes allow_pickle=True (the CLIs' --allow-pickle), and then read with
torch.load(weights_only=True).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from electra.checkpoint import Pretrained
from electra.config import ModelConfig, ObjectiveConfig, PretrainConfig, TrainConfig, generator_config
from electra.errors import UserError
from electra.hf import (
    DISC_HEAD,
    GEN_HEAD,
    IMPORTABLE,
    check_shapes,
    config_problem,
    encoder_from_hf,
    encoder_to_hf,
    has_electra_config,
    hf_encoder_keys,
    looks_foreign_hf,
    model_config_from_hf,
    model_type,
    rename,
    same_architecture,
)
from electra.hf_modern import modern_encoder_keys, modern_from_hf, modern_to_hf

PARTS = {"discriminator": "discriminator.", "discriminator_head": "discriminator_head.",
         "discriminator_lm_head": "discriminator_lm_head.", "generator": "generator.", "generator_head": "generator_head."}


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


def _locate(path: Path) -> tuple[Path | None, Path | None]:
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
    d = path / "discriminator" if has_electra_config(path / "discriminator") else None
    g = path / "generator" if has_electra_config(path / "generator") else None
    if d or g:
        return d, g
    if has_electra_config(path):
        archs = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        is_gen = any(a in ("ElectraForMaskedLM", "ElectraForCausalLM") for a in archs)
        return (None, path) if is_gen else (path, None)
    foreign = looks_foreign_hf(path)
    if foreign:
        raise UserError(f"{path} holds a {foreign!r} model (config.json model_type), not ELECTRA; only Hugging Face "
                        f"ELECTRA folders (model_type 'electra') and the modern backbone's ModernBERT exports can be imported")
    raise UserError(f"{path} is not a Hugging Face ELECTRA folder (expected config.json with model_type 'electra', "
                    f"or discriminator/ and generator/ folders)")


def _prefixed(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------------
# fine-tuning / detection


def load_hf_encoder(path: str | Path, allow_pickle: bool = False) -> tuple[torch.nn.Module, Pretrained]:
    """The discriminator of an HF folder as our Encoder, with a Pretrained whose cfg.model matches the HF config
    and whose weights use Electra.weights() names (discriminator.* and discriminator_head.* when present).
    A generator-only folder (ElectraForMaskedLM) is read as an MLM model: objective "mlm", generator.* and
    generator_head.* (as an MLM run's checkpoint). Pretrained.step is 0."""
    from electra.model import Encoder

    d, g = _locate(Path(path))
    m = read_hf_model(d or g, allow_pickle)
    gen = m.is_generator
    sibling = Path(path).parent / "discriminator"
    if gen and Path(path).name == "generator" and sibling.is_dir():  # an MLM baseline's model is its generator
        warnings.warn(f"{path} is the generator of an ELECTRA export; the model to fine-tune is its discriminator: "
                      f"{sibling}", stacklevel=2)
    P = m.model_cfg.max_position_embeddings
    objective = "mlm" if gen else "electric" if m.is_electric else "electra"
    cfg = PretrainConfig(model=m.model_cfg, objective=ObjectiveConfig(objective=objective),
                         train=TrainConfig(seq_len=min(128, P)))
    weights = _prefixed(m.encoder, "generator." if gen else "discriminator.")
    weights |= m.gen_head() if gen else m.disc_head()
    encoder = Encoder(m.model_cfg)
    encoder.load_state_dict(m.encoder)
    return encoder, Pretrained(cfg, weights, m.vocab_path, m.lowercase, 0, m.strip_accents)


# ---------------------------------------------------------------------------------------------------
# continued pre-training


class HFPretraining(NamedTuple):
    cfg: dict[str, Any]  # {"model": {...}, "objective": {...}[, "train": base's]}: PretrainConfig.from_dict-ready
    weights: dict[str, torch.Tensor]  # Electra.weights() names, loaded parts only
    vocab_path: Path  # the HF folder's vocab.txt (the discriminator's when both exist)
    lowercase: bool  # tokenizer_config.json do_lower_case
    loaded: tuple[str, ...]  # subset of ("discriminator", "discriminator_head", "generator", "generator_head")
    strip_accents: bool | None = None  # tokenizer_config.json strip_accents (None: as lowercase)


def load_hf_pretraining(path: str | Path, base_cfg_dict: dict[str, Any] | None = None,
                        allow_pickle: bool = False) -> HFPretraining:
    """Read an HF ELECTRA folder as the starting point of `electra pretrain --init HF_DIR` (fresh optimizer).

    `path`: a folder with discriminator/ (ElectraForPreTraining) and optionally generator/ (ElectraForMaskedLM),
    as `electra export` writes; or one save_pretrained folder (a discriminator, or a generator = MLM model).
    `base_cfg_dict`: the run's config dict (e.g. `build_config(preset, overrides).to_dict()`) or None (defaults).
    Its objective section (objective, sharing, masking, loss weights, ...) and train section are kept; the
    model section is replaced by the HF config's (architecture, dropout, eps, init range: the HF folder wins),
    and generator_hidden_fraction / generator_layers_fraction are derived from the two HF configs when a
    generator is present (g_hidden / d_hidden, g_layers / d_layers; a generator the discriminator's size, as the
    released Small++, gives 1.0).

    Returns HFPretraining(cfg, weights, vocab_path, lowercase, loaded):
      cfg      {"model", "objective"} (+ base's "train"); `PretrainConfig.from_dict(cfg)` builds the run's config.
      weights  tensors in Electra.weights() names for the parts in `loaded` only; with sharing="embeddings" the
               generator's embeddings are the discriminator's (HF stores them twice: if the generator's differ
               they are NOT used and a warning is issued); with sharing="all" the generator encoder is the
               discriminator (a differing generator encoder is ignored, with a warning); with sharing="none" the
               generator keeps its own embeddings; with sharing="gdes" the generator keeps its own (or, without
               generator/, takes the discriminator's) and the discriminator's residual is the difference.
      loaded   which parts came from the folder; the caller leaves the others at their random init. Without
               generator/, loaded = ("discriminator", "discriminator_head") and the fractions come from
               base_cfg_dict; a folder without discriminator_predictions (ElectraModel, a fine-tuned model) leaves
               the discriminator head fresh too.
    objective "mlm": the model is the generator/ folder (or, if there is none, the discriminator's body with a
    fresh MLM head); weights under generator.* / generator_head.*.
    Use `load_into(model, result)` to copy the weights into `Electra(PretrainConfig.from_dict(result.cfg), ...)`:
    it loads with strict=False and checks that only parts absent from `loaded` (and shared aliases) stay random.
    UserError (one line) for: a non-ELECTRA folder, weights not matching config.json, a pickle without
    allow_pickle, a generator whose shape our generator_config cannot express, an ELECTRA objective with no
    discriminator, a train.seq_len longer than the position table.
    """
    d_dir, g_dir = _locate(Path(path))
    disc = read_hf_model(d_dir, allow_pickle) if d_dir else None
    gen = read_hf_model(g_dir, allow_pickle) if g_dir else None
    base = copy.deepcopy(base_cfg_dict) if base_cfg_dict else {}
    obj = dict(base.get("objective", {}))
    objective = obj.get("objective", "electra")
    weights: dict[str, torch.Tensor] = {}
    loaded: list[str] = []
    if objective == "mlm":
        src = gen or disc
        if gen is None:
            warnings.warn(f"{path} has no generator: the MLM model starts from the discriminator's body "
                          f"with a fresh MLM head", stacklevel=2)
        model_cfg = src.model_cfg
        weights |= _prefixed(src.encoder, "generator.")
        loaded.append("generator")
        if src.gen_head():
            weights |= src.gen_head()
            loaded.append("generator_head")
        vocab, lower, strip = src.vocab_path, src.lowercase, src.strip_accents
    else:
        if disc is None:
            raise UserError(f"{path} holds only a generator (ElectraForMaskedLM); continued ELECTRA pre-training needs "
                            f"a discriminator (ElectraForPreTraining) folder; pass --objective mlm to continue MLM training")
        model_cfg = disc.model_cfg
        vocab, lower, strip = disc.vocab_path, disc.lowercase, disc.strip_accents
        weights |= _prefixed(disc.encoder, "discriminator.")
        loaded.append("discriminator")
        if disc.disc_head() and disc.is_electric != (objective == "electric"):
            warnings.warn(f"{d_dir}: an {'Electric energy' if disc.is_electric else 'RTD'} head does not fit "
                          f"objective {objective}; the head starts fresh", stacklevel=2)
        elif disc.disc_head():
            weights |= disc.disc_head()
            loaded.append("discriminator_head")
        if disc.is_generator and disc.gen_head():  # a masked-LM ablation's discriminator: its LM head
            weights |= {"discriminator_lm_head." + k.split(".", 1)[1]: v for k, v in disc.gen_head().items()}
            loaded.append("discriminator_lm_head")
        if gen is not None:
            sharing = obj.get("sharing", "embeddings")
            obj.update(_fractions(model_cfg, gen.model_cfg, g_dir))
            if sharing == "embeddings":
                emb_d = {k: v for k, v in disc.encoder.items() if k.startswith("embeddings.")}
                if any(not torch.equal(v, gen.encoder[k]) for k, v in emb_d.items()):
                    warnings.warn(f"{g_dir}: the generator's embeddings differ from the discriminator's; with "
                                  f"sharing=embeddings the discriminator's are used", stacklevel=2)
                weights |= {"generator." + k: v for k, v in gen.encoder.items() if not k.startswith("embeddings.")}
            elif sharing in ("none", "gdes"):
                weights |= _prefixed(gen.encoder, "generator.")
            elif (obj["generator_hidden_fraction"], obj["generator_layers_fraction"]) != (1.0, 1.0):
                raise UserError(f"{g_dir} holds a generator of {obj['generator_hidden_fraction']:g} x the "
                                f"discriminator's width and {obj['generator_layers_fraction']:g} x its depth; "
                                f"sharing=all needs one of the discriminator's size: start from the discriminator "
                                f"alone (--init {d_dir} --generator-hidden-fraction 1 --generator-layers-fraction 1)")
            elif any(not torch.equal(v, gen.encoder[k]) for k, v in disc.encoder.items()):
                warnings.warn(f"{g_dir}: with sharing=all the generator is the discriminator; the generator's own "
                              f"encoder weights differ and are ignored", stacklevel=2)
            loaded.append("generator")
            if gen.gen_head():
                weights |= gen.gen_head()
                loaded.append("generator_head")
        if obj.get("sharing") == "gdes":  # without a generator folder, its tables start as the discriminator's
            weights = _disentangle(weights, (gen if gen is not None else disc).encoder)
    obj["objective"] = objective
    cfg: dict[str, Any] = {"model": dataclasses.asdict(model_cfg), "objective": obj}
    if "train" in base:
        cfg["train"] = base["train"]
    train = base.get("train", {"seq_len": min(128, model_cfg.max_position_embeddings)})
    PretrainConfig.from_dict({**cfg, "train": train})  # UserError for an inconsistent combination
    return HFPretraining(cfg, weights, vocab, lower, tuple(loaded), strip)


def _disentangle(weights: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """sharing=gdes: a Hugging Face discriminator stores the embeddings it reads, the generator's tables plus its
    residual. The generator gets `base`'s embedding tables, the discriminator their difference as its residual."""
    out = {k: v for k, v in weights.items() if not k.startswith("discriminator.embeddings.")}
    for name, table in weights.items():
        if name.startswith("discriminator.embeddings."):
            sub = name[len("discriminator."):]  # embeddings.word.weight
            out["generator." + sub] = base[sub]
            out["discriminator.embeddings.delta." + sub[len("embeddings."):]] = table - base[sub]
    return out


def _fractions(d: ModelConfig, g: ModelConfig, where: Path) -> dict[str, float]:
    """generator_hidden_fraction / generator_layers_fraction that make generator_config(d) == g, or UserError."""
    for k in ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size"):
        if getattr(g, k) != getattr(d, k):
            raise UserError(f"{where}: the generator's {k} ({getattr(g, k)}) differs from the discriminator's "
                            f"({getattr(d, k)}); the two must share one embedding block")
    hf, lf = g.hidden_size / d.hidden_size, g.num_layers / d.num_layers
    ok = hf <= 1.0 and lf <= 1.0
    if ok:
        derived = generator_config(d, hf, lf)
        ok = same_architecture(derived, g)
    if not ok:
        raise UserError(f"{where}: a generator of {g.num_layers} x {g.hidden_size} ({g.num_heads} heads, FFN "
                        f"{g.intermediate_size}) cannot be expressed as a fraction of the {d.num_layers} x "
                        f"{d.hidden_size} discriminator (electra uses heads = hidden // 64, FFN = 4 x hidden)")
    return {"generator_hidden_fraction": hf, "generator_layers_fraction": lf}


def load_into(model: torch.nn.Module, init: HFPretraining) -> tuple[str, ...]:
    """Copy `init.weights` into an `Electra` built from `init.cfg`; parts not in `init.loaded` keep their init.
    Parts the run's model does not have or cannot take are skipped (a fixed generator, Electric's two towers,
    replace_mlm's RTD head). Returns the parts loaded."""
    takes = {name for name, _ in model.named_children()}  # e.g. no discriminator_head for replace_mlm
    if model.cfg.objective.objective == "electric":  # its two towers are not a HF generator
        takes -= {"generator", "generator_head"}
    loaded = tuple(n for n in init.loaded if n in takes)
    weights = {k: v for k, v in init.weights.items() if k.split(".", 1)[0] in takes}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:
        raise UserError(f"the Hugging Face weights do not fit the run's model ({str(e).splitlines()[0][:200]}); "
                        f"build the run's config from load_hf_pretraining's cfg") from None
    fresh = tuple(p for name, p in PARTS.items() if name not in loaded) + ("generator_prior",)
    bad = [k for k in missing if not k.startswith(tuple(model.aliases) + fresh)]
    if unexpected or bad:
        raise UserError(f"the Hugging Face weights do not fit the run's model (missing {bad[:3]}, "
                        f"unexpected {unexpected[:3]})")
    return loaded


def init_from_hf(model: torch.nn.Module, path: str | Path, vocab_path: str | Path | None = None,
                 allow_pickle: bool = False) -> HFPretraining:
    """`electra pretrain --init HF_DIR` in one call, for a model already built: load_hf_pretraining with the
    model's config as base, check that the model's architecture (and the dataset's vocab, when given) match the
    folder, then load_into. UserError otherwise. Returns the HFPretraining (its `loaded` names the parts)."""
    from electra.data.tokenizer import vocab_sha256

    init = load_hf_pretraining(path, model.cfg.to_dict(), allow_pickle)
    want = PretrainConfig.from_dict({**init.cfg, "train": dataclasses.asdict(model.cfg.train)})
    same_gen = True
    if "generator" in init.loaded and want.objective.joint:
        same_gen = same_architecture(*(generator_config(c.model, c.objective.generator_hidden_fraction,
                                                        c.objective.generator_layers_fraction) for c in (want, model.cfg)))
    if not same_architecture(want.model, model.cfg.model) or not same_gen:
        raise UserError(f"the run's model config differs from {path}'s config.json; build the run's config from "
                        f"load_hf_pretraining(...).cfg (the HF folder decides the architecture)")
    if vocab_path is not None and vocab_sha256(vocab_path) != vocab_sha256(init.vocab_path):
        raise UserError(f"the dataset's vocabulary {vocab_path} differs from {init.vocab_path}; prepare the data with "
                        f"`--vocab {init.vocab_path}` so that token ids mean the same thing")
    load_into(model, init)
    return init
