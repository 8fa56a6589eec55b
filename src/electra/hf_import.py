"""Start from a Hugging Face ELECTRA folder: `electra finetune/detect --model HF_DIR` (`load_hf_encoder`, reached
through `checkpoint.load_discriminator`) and `electra pretrain --init HF_DIR` (`load_hf_pretraining`); the folders
are read and checked by hf_read.py.

A folder is either one `save_pretrained` folder (config.json with model_type "electra" + model.safetensors +
vocab.txt), or a folder holding `discriminator/` and/or `generator/` such folders (what `electra export` writes).
Weights are read from model.safetensors (or a sharded model.safetensors.index.json). A pytorch_model.bin is a
pickle and is refused unless the caller passes allow_pickle=True (the CLIs' --allow-pickle), and then read with
torch.load(weights_only=True).
"""
from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch

from electra.checkpoint import Pretrained
from electra.config import ModelConfig, ObjectiveConfig, PretrainConfig, TrainConfig, generator_config
from electra.errors import UserError
from electra.hf import same_architecture
from electra.hf_read import locate, read_hf_model

PARTS = {"discriminator": "discriminator.", "discriminator_head": "discriminator_head.",
         "discriminator_lm_head": "discriminator_lm_head.", "generator": "generator.", "generator_head": "generator_head."}


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

    d, g = locate(Path(path))
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
    d_dir, g_dir = locate(Path(path))
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
