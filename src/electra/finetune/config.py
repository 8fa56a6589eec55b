"""The fine-tuning recipe as one typed config (electra-spec 3.2/3.3), with command-line overrides.

Defaults are the paper's (Table 7 / Appendix B) where the paper and the original code agree; where they
disagree the choice is written next to the field (and in docs/finetune.md). Fields whose right value
depends on the model or the task use 0 as "automatic" and are resolved by `resolve()`:

    lr            3e-4 if hidden <= 256 (small), 1e-4 if hidden <= 768 (base), else 5e-5 (large)  (spec 3.3)
    layer_decay   0.8 for small/base, 0.9 for large (hidden >= 1024)                             (spec 1.7/3.3)
    epochs        the task's (3; 10 for RTE and STS-B; 2 for SQuAD)                              (spec 3.3)
    max_seq_len   the task's (128 GLUE; 512 SQuAD; 256 tagging, as configure_finetuning.py)       (spec 3.3)

The resolved config is saved with the results, so a results.json always says which numbers were used.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from electra.errors import UserError
from electra.overrides import parse_value, split_argv


@dataclass
class FinetuneConfig:
    # --- optimisation (spec 1.7, 3.3) ---
    lr: float = 0.0  # peak learning rate; 0 = by model size (paper: 3e-4 small, 1e-4 base, 5e-5 large)
    layer_decay: float = 0.0  # layer-wise LR decay; 0 = by size (0.8 small/base, 0.9 large); 1 = off
    layer_decay_off_by_one: bool = True  # reproduce the original's off-by-one (top block gets decay^2, #51)
    weight_decay: float = 0.0  # paper 0 (Appendix B); the original code uses 0.01: pass --weight-decay 0.01
    batch_size: int = 32  # train and eval batch size (paper and code)
    epochs: float = 0.0  # 0 = the task's (3; 10 RTE/STS-B; 2 SQuAD)
    warmup_proportion: float = 0.1  # linear warmup over this share of the steps, then linear decay to 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-6  # added to sqrt(v); Adam without bias correction (optimizer=electra)
    optimizer: str = "electra"  # electra (no bias correction, as the original) | adamw (torch's AdamW)
    clip_norm: float = 1.0  # global gradient-norm clip; 0 disables
    head_dropout: float = 0.1  # dropout on the [CLS] vector before the classifier (spec 3.2); QA / tagging have none
    cls_head: str = "electra"  # sentence tasks: electra (dropout + Linear on [CLS], the original) | hf (dropout, Linear(D, D), GELU, dropout, Linear: transformers' ElectraForSequenceClassification head, so `electra export` writes the whole model)
    loss_reduction: str = "sum"  # sum: per-example losses summed over the batch, as run_finetuning.py | mean
    activation_checkpointing: bool = False  # recompute each block's activations in the backward pass: less memory (large models, 512 tokens), about a third more compute
    precision: str = "auto"  # auto: bf16 autocast on GPUs that have it, fp32 elsewhere | fp32 (the original's) | bf16 | fp16 (loss-scaled: V100, T4)
    # --- data (spec 3.2/3.3) ---
    max_seq_len: int = 0  # 0 = the task's (128 GLUE, 512 SQuAD, 256 tagging); capped at the position table
    double_unordered: bool = True  # MRPC / STS-B: train on both sentence orders (configure_finetuning.py)
    max_train_examples: int = 0  # 0 = all; otherwise the first N training examples (quick CPU runs)
    max_eval_examples: int = 0  # 0 = all; otherwise the first N dev examples
    label_column: int = -1  # tagging: which whitespace-separated column holds the tag (-1 = last)
    # --- your own data (--task classify | regress; custom.py) ---
    text_columns: str = ""  # the text column, or two for pairs, comma-separated; "" = text(,text_pair) / sentence1,sentence2 / ...
    label_name: str = "label"  # the label column (CSV / TSV header name, JSONL key)
    labels: str = ""  # classify: the class names in output order, comma-separated; "" = the training file's, sorted
    tag_encoding: str = "bioes"  # tagging: train on BIOES tags of the gold spans (the original) | asis
    # --- SQuAD (spec 3.2/3.3) ---
    doc_stride: int = 128  # tokens between the starts of two context windows
    max_query_len: int = 64  # question tokens kept
    n_best: int = 20  # candidate starts / ends per window at inference
    max_answer_len: int = 30  # longest answer, in word pieces
    qa_head: str = "simple"  # simple (Linear D->2, HF's qa_outputs) | electra (the original's XLNet-style head)
    null_threshold: float = math.nan  # SQuAD 2.0 "no answer" threshold; NaN = by head (simple 0, electra -2.75)
    # --- runs ---
    seed: int = 1  # seed of the first fine-tuning; run k uses seed + k
    eval_batch_size: int = 64  # inference only (no effect on results)
    threads: int = 0  # torch CPU threads; 0 = torch's default
    log_every: int = 50  # optimizer steps between progress lines
    checkpoint_minutes: float = 10.0  # a seed saves its training state this often; a stopped run goes on from there (0 = never)

    def __post_init__(self) -> None:
        checks = [
            (self.lr >= 0, "lr must be >= 0 (0 = by model size)"),
            (0.0 <= self.layer_decay <= 1.0, "layer_decay must be in [0, 1] (0 = by model size)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be >= 1"),
            (self.epochs >= 0, "epochs must be >= 0 (0 = the task's default)"),
            (0.0 <= self.warmup_proportion <= 1.0, "warmup_proportion must be in [0, 1]"),
            (self.optimizer in ("electra", "adamw"), "optimizer must be electra or adamw"),
            (self.clip_norm >= 0, "clip_norm must be >= 0"),
            (0.0 <= self.head_dropout < 1.0, "head_dropout must be in [0, 1)"),
            (self.cls_head in ("electra", "hf"), "cls_head must be electra or hf"),
            (self.max_seq_len == 0 or self.max_seq_len >= 8, "max_seq_len must be 0 (task default) or >= 8"),
            (self.max_train_examples >= 0 and self.max_eval_examples >= 0, "max_*_examples must be >= 0"),
            (self.doc_stride >= 1 and self.max_query_len >= 1, "doc_stride and max_query_len must be >= 1"),
            (self.n_best >= 1 and self.max_answer_len >= 1, "n_best and max_answer_len must be >= 1"),
            (self.qa_head in ("simple", "electra"), "qa_head must be simple or electra"),
            (self.loss_reduction in ("sum", "mean"), "loss_reduction must be sum or mean"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16"),
            (self.tag_encoding in ("bioes", "asis"), "tag_encoding must be bioes or asis"),
            (self.threads >= 0 and self.log_every >= 1, "threads must be >= 0 and log_every >= 1"),
            (self.checkpoint_minutes >= 0, "checkpoint_minutes must be >= 0 (0 = never)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"finetune config: {message}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolve(self, hidden_size: int, task_epochs: float, task_max_seq_len: int,
                max_positions: int) -> FinetuneConfig:
        """Fill the automatic (0) fields from the model's size and the task (see the module docstring)."""
        if hidden_size <= 256:
            lr, decay = 3e-4, 0.8  # small: paper Table 7 (the code's default is 1e-4)
        elif hidden_size <= 768:
            lr, decay = 1e-4, 0.8  # base
        else:
            lr, decay = 5e-5, 0.9  # large
        if self.max_seq_len > max_positions:  # the task's default is capped quietly; an explicit value is not
            raise UserError(f"--max-seq-len {self.max_seq_len} is longer than the model's {max_positions} positions; "
                            f"give at most {max_positions}")
        seq = self.max_seq_len or task_max_seq_len
        return dataclasses.replace(
            self, lr=self.lr or lr, layer_decay=self.layer_decay or decay, epochs=self.epochs or task_epochs,
            max_seq_len=min(seq, max_positions), null_threshold=null_threshold(self.null_threshold, self.qa_head))


# qa_metrics.py: the electra head thresholds its "impossible" logit at -2.75 (spec 3.2); the simple head
# compares the null and best span scores (0, as BERT / HF). The one table of these defaults.
DEFAULT_NULL_THRESHOLD = {"simple": 0.0, "electra": -2.75}


def null_threshold(threshold: float, qa_head: str) -> float:
    """The SQuAD 2.0 "no answer" threshold: `threshold` when set, else the head's default (NaN = unset)."""
    return threshold if math.isfinite(threshold) else DEFAULT_NULL_THRESHOLD[qa_head]


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(FinetuneConfig)


def build_config(overrides: dict[str, str]) -> FinetuneConfig:
    """Defaults < overrides; keys are field names with '-' or '_'; an unknown key is an error."""
    hints = _hints()
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        name = key.replace("-", "_")
        if name not in hints:
            raise UserError(f"unknown option --{key} (see `electra finetune --print-config` for all fields)")
        values[name] = parse_value(text, hints[name], f"--{name.replace('_', '-')}")
    return FinetuneConfig(**values)


def split_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`config.split_argv` for the fine-tuning config: field names with '-' or '_'."""
    hints = _hints()
    return split_argv(argv, lambda key: hints.get(key.replace("-", "_")))
