"""Typed configs, one per concern, with the paper's presets and command-line overrides.

    ModelConfig      one Transformer encoder (the discriminator; the generator's is derived from it): model_config.py
    ObjectiveConfig  replaced-token detection: masking, generator size, sharing, sampling, loss weights
    TrainConfig      optimisation, schedule, batch, precision, logging and checkpoints
    PretrainConfig   the three above, nested one level: `--model.hidden_size=256` or just `--hidden-size 256`

Precedence: dataclass defaults < `--preset NAME` < `--config FILE` < command-line overrides. Field names are
unique across sections so that a bare `--max-steps 100` is unambiguous. Presets follow the paper's Table 6 / the
original `configure_pretraining.py` (electra-spec 1.8); `tiny` is ours, for tests and CPU runs.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from electra.errors import UserError
from electra.model_config import ModelConfig, at_least_0, positive
from electra.overrides import parse_duration, parse_value, split_argv
from electra.presets import PRESETS

SHARING_MODES = ("embeddings", "none", "all", "gdes")
GENERATORS = ("mlm", "uniform", "unigram")
MASKINGS = ("token", "whole_word", "span")
OBJECTIVES = ("electra", "mlm", "replace_mlm", "all_tokens_mlm", "electric")


@dataclass
class ObjectiveConfig:
    objective: str = "electra"  # electra (replaced-token detection) | mlm (the paper's BERT baseline) | replace_mlm | all_tokens_mlm (Table 5's ablations: the discriminator is a masked LM on the generator's corrupted text) | electric (the original code's energy-based cloze model, with a two-tower generator)
    mask_prob: float = 0.15  # fraction of non-pad tokens the generator must predict (0.25 for large)
    mask_token_prob: float = 0.85  # of the selected slots, this share become [MASK]; the rest keep the token
    max_predictions: int = 0  # masked slots per row; 0 = int((mask_prob + 0.005) * seq_len) as the original
    masking: str = "token"  # token (each slot drawn independently among the tokens, as the original) | whole_word (every piece of a chosen word together: BERT's whole-word masking) | span (runs of whole words of geometric length: SpanBERT's); word_masking.py
    span_p: float = 0.2  # span masking: span lengths in words ~ Geo(span_p), clipped at max_span (SpanBERT: 0.2, 10)
    max_span: int = 10  # span masking: the longest span, in words
    generator_hidden_fraction: float = 0.25  # generator width / discriminator width (1/3 for base)
    generator_layers_fraction: float = 1.0  # generator depth / discriminator depth
    sharing: str = "embeddings"  # embeddings (word/position/segment + their LayerNorm) | none | all | gdes (DeBERTa-v3's gradient-disentangled sharing)
    temperature: float = 1.0  # sampling temperature of the generator's softmax
    disallow_correct: bool = False  # forbid sampling the original token (every masked slot becomes fake)
    sampling: str = "multinomial"  # multinomial (exact inverse-CDF of the softmax, 1 draw per slot) | gumbel (the original's Gumbel-max, 1 draw per vocab entry); same distribution
    gen_weight: float = 1.0  # weight of the generator's MLM loss
    disc_weight: float = 50.0  # weight of the discriminator's RTD loss (paper appendix A: chosen from 1..100)
    generator: str = "mlm"  # mlm (a trained masked LM, the paper) | uniform (fakes uniform over the vocabulary: the original's uniform_generator) | unigram (fakes drawn by the training split's token frequencies: the paper's Figure 3 baseline)
    rtd_tokens: str = "all"  # all (the discriminator's loss on every token, the paper) | masked (on the masked slots only: the paper's "ELECTRA 15%" ablation, Table 5)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UserError(f"objective.objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.masking not in MASKINGS:
            raise UserError(f"objective.masking must be one of {', '.join(MASKINGS)}, got {self.masking!r}")
        if not 0.0 < self.span_p <= 1.0 or self.max_span < 1:
            raise UserError(f"objective.span_p must be in (0, 1] and max_span >= 1, got {self.span_p} and {self.max_span}")
        if self.masking != "span" and (self.span_p, self.max_span) != (0.2, 10):
            raise UserError("objective.span_p and max_span shape span masking; add --masking span (or drop them)")
        if self.sharing not in SHARING_MODES:
            raise UserError(f"objective.sharing must be one of {', '.join(SHARING_MODES)}, got {self.sharing!r}")
        if not 0.0 < self.mask_prob < 1.0:
            raise UserError(f"objective.mask_prob must be in (0, 1), got {self.mask_prob}")
        if not 0.0 <= self.mask_token_prob <= 1.0:
            raise UserError(f"objective.mask_token_prob must be in [0, 1], got {self.mask_token_prob}")
        if not 0.0 < self.generator_hidden_fraction <= 1.0 or not 0.0 < self.generator_layers_fraction <= 1.0:
            raise UserError("objective.generator_hidden_fraction and generator_layers_fraction must be in (0, 1]")
        if self.sampling not in ("multinomial", "gumbel"):
            raise UserError(f"objective.sampling must be multinomial or gumbel, got {self.sampling!r}")
        positive(self, "objective", "temperature")
        at_least_0(self, "objective", "gen_weight", "disc_weight")
        if self.max_predictions < 0:
            raise UserError(f"objective.max_predictions must be >= 0, got {self.max_predictions}")
        if self.generator not in GENERATORS:
            raise UserError(f"objective.generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.rtd_tokens not in ("all", "masked"):
            raise UserError(f"objective.rtd_tokens must be all or masked, got {self.rtd_tokens!r}")
        if self.generator != "mlm" and self.objective != "electra":
            raise UserError(f"objective.generator={self.generator} (fixed fakes instead of a trained generator) is "
                            f"for objective=electra; objective={self.objective} needs its masked-LM generator "
                            f"(use --generator mlm, or --objective electra)")
        if self.rtd_tokens != "all" and self.objective != "electra":
            raise UserError(f"objective.rtd_tokens={self.rtd_tokens} restricts the RTD loss, which "
                            f"objective={self.objective} does not have (use --objective electra)")
        if self.objective in ("replace_mlm", "all_tokens_mlm") and self.disc_weight != 50.0:
            raise UserError(f"objective.disc_weight weights the binary RTD loss; objective={self.objective} trains "
                            f"its discriminator by a masked-LM loss of weight 1 (drop --disc-weight)")
        if self.objective == "electric" and self.sharing not in ("embeddings", "none"):
            raise UserError(f"objective.sharing={self.sharing} does not fit Electric's two-tower generator (two "
                            f"encoders of the generator's size); use --sharing embeddings or none")
        if self.generator != "mlm" and self.sharing in ("all", "gdes"):
            raise UserError(f"objective.sharing={self.sharing} needs a trained generator to share with; "
                            f"objective.generator={self.generator} has none (use --sharing embeddings)")

    @property
    def joint(self) -> bool:
        """Whether a generator feeds a second model (the discriminator): every objective but the MLM baseline."""
        return self.objective != "mlm"

    @property
    def disc_loss_weight(self) -> float:
        """The weight of the discriminator's loss: disc_weight for the binary RTD loss, 1 for the masked-LM
        losses of the Replace-MLM and All-Tokens-MLM ablations (the paper gives them no other)."""
        return self.disc_weight if self.objective in ("electra", "electric") else 1.0

    @property
    def trained_generator(self) -> bool:
        """Whether a masked-LM network produces the fakes (False: a fixed distribution, no parameters)."""
        return self.generator == "mlm"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "step-graph")


@dataclass
class TrainConfig:
    seq_len: int = 128  # tokens per example (must match the prepared dataset)
    global_batch_size: int = 128  # sequences per optimizer step, all ranks together
    micro_batch_size: int = 0  # sequences per forward on one device; 0 = global_batch_size / world size
    max_steps: int = 1_000_000  # optimizer steps of the schedule (the LR reaches 0 here)
    warmup_steps: int = 10_000  # linear warmup, multiplied onto the decay (the two overlap, as the original)
    lr: float = 5e-4  # peak learning rate
    lr_decay_power: float = 1.0  # (1 - t/T)^power; 1 = linear decay to 0
    lr_schedule: str = "linear"  # linear (the original: warmup times (1 - t/T)^power) | wsd (warmup, flat, then decay over the last decay_fraction of the steps) | cosine (warmup, then a half cosine to 0)
    decay_fraction: float = 0.1  # wsd: the share of the steps its decay takes
    weight_decay: float = 0.01  # decoupled; not applied to biases and LayerNorm
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-6  # added to sqrt(v), as BERT's AdamWeightDecayOptimizer
    optimizer: str = "electra"  # electra (Adam without bias correction, as the original) | adamw (torch's)
    clip_norm: float = 1.0  # global gradient-norm clip over both networks; 0 disables
    precision: str = "auto"  # auto (bf16 autocast on CUDA and on CPUs with bf16 instructions, else fp32) | fp32 | bf16 | fp16 (autocast with dynamic loss scaling: GPUs without bf16, V100 / T4; precision.py)
    residual: str = "fp32"  # with bf16: the hidden states between blocks in fp32 (autocast's) | bf16 (norms still compute in fp32; less memory traffic)
    activation_checkpointing: bool = False  # keep only each block's input and recompute the block in the backward pass: activation memory of one block, about a third more compute (bigger micro-batches or sequences on a small GPU)
    compile: bool = False  # torch.compile the training step's model
    compile_mode: str = "default"  # with compile: default | reduce-overhead (CUDA graphs) | max-autotune | max-autotune-no-cudagraphs | step-graph (one CUDA graph per whole step: one GPU, one micro-step)
    unpad: str = "auto"  # run the encoders on real tokens only (no work on padding): auto (= on CUDA) | on | off
    parallel: str = "ddp"  # under torchrun: ddp (replicated weights) | fsdp (fully_shard: sharded weights and state)
    seed: int = 1234  # one seed for init, data order, masking, sampling and dropout
    log_every: int = 50  # steps between log lines (the only steps that sync the device)
    eval_every: int = 500  # steps between held-out evaluations; 0 = only at the end
    eval_batches: int = 20  # held-out rows per evaluation, in global batches (eval_batches x global_batch_size rows)
    save_every: int = 1000  # steps between checkpoints
    keep_last: int = 3  # checkpoints kept on disk
    keep_every: int = 0  # and, besides them, every checkpoint at a multiple of this step, never pruned: fine-tune along the pre-training curve (0 = none)
    max_time: float = 0.0  # seconds of training after which this command stops cleanly (0 = no limit); also 45m, 6h
    time_budget: float = 0.0  # seconds of training (over resumes) to fit the schedule into: shortens max_steps and warmup to fit, keeping their ratio (0 = off; 6h, 90m also work; budget.py)

    def __post_init__(self) -> None:
        for name in ("seq_len", "global_batch_size", "max_steps", "log_every", "eval_batches",
                     "save_every", "keep_last"):
            if getattr(self, name) < 1:
                raise UserError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.micro_batch_size < 0 or self.warmup_steps < 0 or self.eval_every < 0 or self.keep_every < 0:
            raise UserError("train.micro_batch_size, warmup_steps, eval_every and keep_every must be >= 0")
        if self.keep_every % self.save_every:
            raise UserError(f"train.keep_every ({self.keep_every}) must be a multiple of train.save_every "
                            f"({self.save_every}): only the steps that are saved can be kept")
        positive(self, "train", "lr")
        at_least_0(self, "train", "lr_decay_power", "weight_decay", "adam_eps", "clip_norm", "max_time",
                    "time_budget")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"train.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.seed < 2**64:  # numpy's SeedSequence (data order, micro-step seeds) and torch.manual_seed
            raise UserError(f"train.seed must be in [0, 2^64), got {self.seed}")
        if self.lr_schedule not in ("linear", "wsd", "cosine"):
            raise UserError(f"train.lr_schedule must be linear, wsd or cosine, got {self.lr_schedule!r}")
        if not 0.0 < self.decay_fraction <= 1.0:
            raise UserError(f"train.decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.optimizer not in ("electra", "adamw"):
            raise UserError(f"train.optimizer must be 'electra' or 'adamw', got {self.optimizer!r}")
        if self.parallel not in ("ddp", "fsdp"):
            raise UserError(f"train.parallel must be ddp or fsdp, got {self.parallel!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise UserError(f"train.precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.residual not in ("fp32", "bf16"):
            raise UserError(f"train.residual must be fp32 or bf16, got {self.residual!r}")
        if self.residual == "bf16" and self.precision == "fp16":
            raise UserError("train.residual bf16 keeps the residual stream in bf16; it does not go with --precision fp16")
        if self.compile_mode not in COMPILE_MODES:
            raise UserError(f"train.compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.unpad not in ("auto", "on", "off"):
            raise UserError(f"train.unpad must be auto, on or off, got {self.unpad!r}")


DURATIONS = ("max_time", "time_budget")  # seconds, or 45m, 6h, 1.5d on the command line

SECTIONS: dict[str, type] = {"model": ModelConfig, "objective": ObjectiveConfig, "train": TrainConfig}


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Cross-section checks: the ones a single section cannot see."""
        m, o, t = self.model, self.objective, self.train
        if t.seq_len > m.max_position_embeddings:  # modern: rotary positions, the field only bounds the length
            fix = ("raise it (the modern backbone has no position table, so it adds no weights)" if m.modern
                   else "shorten the sequences or enlarge the position table")
            raise UserError(f"train.seq_len ({t.seq_len}) is longer than model.max_position_embeddings "
                            f"({m.max_position_embeddings}), the longest sequence the model takes; {fix}")
        if o.sharing == "all" and o.joint and (
                o.generator_hidden_fraction != 1.0 or o.generator_layers_fraction != 1.0):
            raise UserError("objective.sharing=all shares the whole encoder, so the generator must be the "
                            "discriminator's size: set generator_hidden_fraction=1 and generator_layers_fraction=1")
        if self.max_predictions > t.seq_len:
            raise UserError(f"objective.max_predictions ({self.max_predictions}) exceeds train.seq_len ({t.seq_len})")

    @property
    def max_predictions(self) -> int:
        """Masked slots per row: the original's int((mask_prob + 0.005) * max_seq_length)."""
        o = self.objective
        return o.max_predictions or max(1, int((o.mask_prob + 0.005) * self.train.seq_len))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PretrainConfig:
        sections = {f.name: f.type for f in fields(cls)}
        unknown = set(d) - set(sections)
        if unknown:
            raise UserError(f"unknown config section(s) {sorted(unknown)}; known: {sorted(sections)}")
        built = {}
        for name, kind in SECTIONS.items():
            values = d.get(name, {})
            known = {f.name for f in fields(kind)}
            bad = set(values) - known
            if bad:
                raise UserError(f"unknown config field(s) {sorted(f'{name}.{b}' for b in bad)}")
            built[name] = kind(**values)
        return cls(**built)


SHAPE_FIELDS = {"model": ("backbone", "vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                          "max_position_embeddings", "type_vocab_size"),
                "objective": ("objective", "generator", "sharing", "generator_hidden_fraction",
                              "generator_layers_fraction")}


def check_same_shapes(have: PretrainConfig, asked: dict[str, dict[str, Any]], source: Path,
                      told: dict[str, str] | None = None) -> None:
    """A resumed run (or one started from --init) keeps the architecture its weights have: a command-line field
    that would change a tensor's shape, or which tensors exist, is refused by name. `told`: only fields given on
    the command line count (with --init, the rest of `asked` is the preset's, which the folder overrides)."""
    given = None if told is None else named_fields(told)
    for section, names in SHAPE_FIELDS.items():
        for name in names:
            a = getattr(getattr(have, section), name)
            b = asked.get(section, {}).get(name, a)
            if a != b and (given is None or name in given):
                raise UserError(f"{source} has {section}.{name}={a}, but this command asks for {b}; the weights fix "
                                f"the architecture: drop --{name.replace('_', '-')} (from the command line or the "
                                f"--config file), or start a new run in another --out")


def generator_config(disc: ModelConfig, hidden_fraction: float, layers_fraction: float) -> ModelConfig:
    """The generator: same depth (by default), a fraction of the width; heads and MLP follow the
    original's size rule (heads = max(1, hidden // 64), MLP = 4 * hidden). The embedding width is the
    discriminator's, because the word embeddings (and the generator's tied output layer) are shared."""
    hidden = max(1, round(disc.hidden_size * hidden_fraction))
    if hidden_fraction == 1.0:  # a full-size generator is the discriminator's shape exactly
        return dataclasses.replace(disc, num_layers=max(1, round(disc.num_layers * layers_fraction)))
    return dataclasses.replace(
        disc,
        hidden_size=hidden,
        num_layers=max(1, round(disc.num_layers * layers_fraction)),
        num_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
    )


def field_index() -> dict[str, tuple[str, str]]:
    """Map every accepted override spelling ('model.hidden_size', 'hidden_size', 'hidden-size') to
    (section, field)."""
    index: dict[str, tuple[str, str]] = {}
    for section, kind in SECTIONS.items():
        for f in fields(kind):
            for key in (f"{section}.{f.name}", f.name):
                index[key] = (section, f.name)
                index[key.replace("_", "-")] = (section, f.name)
    return index


def named_fields(overrides: dict[str, str]) -> set[str]:
    """The fields that overrides set, by name (names are unique across sections), whatever their spelling."""
    index = field_index()
    return {index[key][1] for key in overrides if key in index}


def build_config(preset: str | None, overrides: dict[str, str], base: dict[str, Any] | None = None) -> PretrainConfig:
    """Defaults (or `base`, e.g. a checkpoint's config) < preset < overrides; every key is checked."""
    return PretrainConfig.from_dict(config_values(preset, overrides, base))


def config_values(preset: str | None, overrides: dict[str, str], base: dict[str, Any] | None = None) -> dict:
    """What `build_config` builds from, {section: {field: value}}, before the checks across sections: `--init`
    completes it from a Hugging Face folder first (a shared-encoder export makes the preset's generator size 1)."""
    d: dict[str, dict[str, Any]] = {"model": {}, "objective": {}, "train": {}}
    for section, values in (base or {}).items():
        d.setdefault(section, {}).update(values)
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        for section, values in PRESETS[preset].items():
            d[section].update(values)
    index = field_index()
    defaults = PretrainConfig.__dataclass_fields__
    for key, text in overrides.items():
        if key not in index:
            raise UserError(f"unknown config field {key!r} (see `electra pretrain --print-config` for all fields)")
        section, name = index[key]
        default = getattr(defaults[section].default_factory(), name)
        d[section][name] = (parse_duration(text, f"{section}.{name}") if name in DURATIONS
                            else parse_value(text, type(default), f"{section}.{name}"))
    given = named_fields(overrides)
    # the original's size rule (spec 1.1) for what a new width leaves unsaid; a saved config (base) keeps its sizes
    if "hidden_size" in given and base is None:
        hidden = d["model"]["hidden_size"]
        if "num_heads" not in given:
            d["model"]["num_heads"] = max(1, hidden // 64)
        if "intermediate_size" not in given:
            d["model"]["intermediate_size"] = 4 * hidden
    return d


def file_overrides(path: Path) -> dict[str, str]:
    """A JSON config file as overrides: `--print-config` output or a run's config.json, whole or in part
    ({"train": {"lr": 2e-4}}), or flat field names ({"lr": 2e-4, "model.hidden_size": 512}). Values are checked
    as the command line's are; anything else is a one-line error naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"config file {path} is not readable JSON ({str(e)[:100]}); pass a file written by "
                        f"`electra pretrain --print-config` or a run's config.json") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object of sections (model, objective, train) or fields")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{name}": v for name, v in value.items()})
        elif key in SECTIONS:
            raise UserError(f"config file {path}: section {key!r} must be a JSON object of its fields, got {value!r}")
        else:
            flat[key] = value
    index = field_index()
    out: dict[str, str] = {}
    for key, value in flat.items():
        if key not in index:
            raise UserError(f"config file {path}: unknown field {key!r} (see `electra pretrain --print-config`)")
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"config file {path}: {key} must be a number, a string or a boolean, got {value!r}")
        out[key] = json.dumps(value) if isinstance(value, bool) else str(value)
        section, name = index[key]
        # checked here too, so that a bad value's error names the file
        parse_value(out[key], type(getattr(SECTIONS[section](), name)), f"{key} in config file {path}")
    return out


def split_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`split_argv` for the pre-training config: any spelling of `field_index`."""
    index = field_index()
    hints = {section: typing.get_type_hints(kind) for section, kind in SECTIONS.items()}

    def field_type(key: str) -> Any:
        if key not in index:
            return None
        section, name = index[key]
        return hints[section][name]

    return split_argv(argv, field_type)
