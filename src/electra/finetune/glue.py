"""GLUE: the task table, TSV readers, pair encoding, scoring and leaderboard prediction files.

Every task is one `GlueTask` row in `GLUE_TASKS` (spec 3.1): its folder, file names, the columns that hold
the text and the label (by header name, or by position for CoLA's header-less train/dev), the label set
(None = regression), the metrics, the epochs (spec 3.3) and its leaderboard file name(s). Reading is a
plain split on tabs (GLUE files contain unbalanced quotes, so csv's quoting must not be used); a BOM on
the first line (MRPC) is dropped.

Input format (spec 3.2): [CLS] A [SEP] (B [SEP]), segment ids 0 / 1, longest-first truncation to
max_seq_len - 3 (pairs) or - 2 (single sentences). MRPC and STS-B train on both sentence orders.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from electra.data.shards import atomic_write_bytes
from electra.errors import UserError
from electra.finetune.files import find_task_dir, read_utf8
from electra.finetune.metrics import METRICS

Column = str | int  # a header name, or a 0-based position for files without a header


@dataclass(frozen=True)
class Split:
    file: str  # file name inside the task folder
    header: bool = True  # first line names the columns
    labelled: bool = True  # has the label column (test files do not)
    elsewhere: tuple[str, ...] = ()  # other places the file is kept in (relative to the task folder)

    def locate(self, task_dir: Path) -> Path | None:
        """The file, at the first of its places that holds it; None when none does."""
        places = [Path(os.path.normpath(task_dir / f)) for f in (self.file, *self.elsewhere)]
        return next((p for p in places if p.is_file()), None)


@dataclass(frozen=True)
class GlueTask:
    name: str  # our task name (--task)
    folder: str  # folder under the GLUE root
    train: Split
    dev: dict[str, Split]  # evaluation name -> file (MNLI: matched / mismatched)
    test: dict[str, Split]  # leaderboard file stem -> file ("MNLI-m" -> test_matched.tsv)
    text: tuple[Column, ...]  # one column (single sentence) or two (pair), labelled files
    label: Column | None  # label column in labelled files
    labels: tuple[str, ...] | None  # label strings in class-id order; None = regression (STS-B)
    metrics: tuple[str, ...]  # names in metrics.METRICS; the first is the task's main metric
    epochs: float = 3.0  # spec 3.3
    test_text: tuple[Column, ...] = ()  # text columns of the test file when they differ from `text`
    test_index: Column = "index"  # id column of the test file (the leaderboard's `index`)
    double_unordered: bool = False  # train on (A, B) and (B, A) (MRPC, STS-B)
    # QQP's published train.tsv has rows that lost their columns; the reference readers (BERT's and transformers'
    # QQP processors) skip them. Only in the training file: a dev or test row missing would change the score.
    skip_short_train_rows: bool = False
    max_seq_len: int = 128

    def task_dir(self, data_dir: Path) -> Path:
        """The folder under --data holding this task's files (files.find_task_dir)."""
        return find_task_dir(data_dir, self.name, (self.folder,), self.train.file)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_outputs(self) -> int:
        return 1 if self.labels is None else len(self.labels)


SCORE_RANGE = (0.0, 5.0)  # STS-B's similarity scale: the regression labels and the leaderboard predictions

_NLI3 = ("contradiction", "entailment", "neutral")  # the original's (and GLUE's) MNLI label order
_NLI2 = ("entailment", "not_entailment")

GLUE_TASKS: dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("cola", "CoLA", Split("train.tsv", header=False), {"dev": Split("dev.tsv", header=False)},
             {"CoLA": Split("test.tsv", labelled=False)}, text=(3,), label=1, labels=("0", "1"),
             metrics=("mcc", "accuracy"), test_text=("sentence",)),
    GlueTask("sst2", "SST-2", Split("train.tsv"), {"dev": Split("dev.tsv")},
             {"SST-2": Split("test.tsv", labelled=False)}, text=("sentence",), label="label", labels=("0", "1"),
             metrics=("accuracy",)),
    GlueTask("mrpc", "MRPC", Split("train.tsv"), {"dev": Split("dev.tsv")},
             {"MRPC": Split("test.tsv", labelled=False)}, text=("#1 String", "#2 String"), label="Quality",
             labels=("0", "1"), metrics=("accuracy", "f1"), double_unordered=True),
    GlueTask("stsb", "STS-B", Split("train.tsv"), {"dev": Split("dev.tsv")},
             {"STS-B": Split("test.tsv", labelled=False)}, text=("sentence1", "sentence2"), label="score",
             labels=None, metrics=("spearman", "pearson"), epochs=10.0, double_unordered=True),
    GlueTask("qqp", "QQP", Split("train.tsv"), {"dev": Split("dev.tsv")},
             {"QQP": Split("test.tsv", labelled=False)}, text=("question1", "question2"), label="is_duplicate",
             labels=("0", "1"), metrics=("accuracy", "f1"), test_index="id", skip_short_train_rows=True),
    GlueTask("mnli", "MNLI", Split("train.tsv"),
             {"matched": Split("dev_matched.tsv"), "mismatched": Split("dev_mismatched.tsv")},
             {"MNLI-m": Split("test_matched.tsv", labelled=False), "MNLI-mm": Split("test_mismatched.tsv", labelled=False),
              # GLUE's diagnostic set (the leaderboard's AX), predicted by the MNLI model: where GLUE's download
              # script puts it (GLUE_DIR/diagnostic/diagnostic.tsv), or as AX/test.tsv
              "AX": Split("../diagnostic/diagnostic.tsv", labelled=False, elsewhere=("../AX/test.tsv",))},
             text=("sentence1", "sentence2"), label="gold_label", labels=_NLI3, metrics=("accuracy",)),
    GlueTask("qnli", "QNLI", Split("train.tsv"), {"dev": Split("dev.tsv")},
             {"QNLI": Split("test.tsv", labelled=False)}, text=("question", "sentence"), label="label",
             labels=_NLI2, metrics=("accuracy",)),
    GlueTask("rte", "RTE", Split("train.tsv"), {"dev": Split("dev.tsv")},
             {"RTE": Split("test.tsv", labelled=False)}, text=("sentence1", "sentence2"), label="label",
             labels=_NLI2, metrics=("accuracy",), epochs=10.0),
]}


class Example(NamedTuple):
    texts: tuple[str, ...]  # one or two segments
    label: Any  # class id (int), float target, or None for test rows
    guid: str  # the test file's index / a row number


def read_tsv(path: Path) -> list[tuple[int, list[str]]]:
    """[(line number, fields)] of the non-blank lines of a TSV, split on tabs with no quoting."""
    text = read_utf8(path)  # drops MRPC's BOM
    return [(i + 1, line.rstrip("\r").split("\t")) for i, line in enumerate(text.split("\n")) if line.strip()]


def _column_index(col: Column, header: list[str] | None, path: Path) -> int:
    if isinstance(col, int):
        return col
    assert header is not None
    if col not in header:
        raise UserError(f"{path}: expected a column named {col!r}, the header has {header}")
    return header.index(col)


def read_split(task: GlueTask, task_dir: Path, split: Split, limit: int = 0,
               warn: Callable[[str], None] | None = print) -> list[Example]:
    """Examples of one GLUE file; labels become class ids (or floats); a wrong column or an unknown
    label is a one-line UserError naming the file and line."""
    path = split.locate(task_dir) or task_dir / split.file
    rows = read_tsv(path)
    header = None
    if split.header:
        if not rows:
            raise UserError(f"{path} is empty; expected a header line")
        header = [h.strip() for h in rows[0][1]]
        rows = rows[1:]
    text_cols = task.text if split.labelled or not task.test_text else task.test_text
    cols = [_column_index(c, header, path) for c in text_cols]
    label_col = _column_index(task.label, header, path) if split.labelled and task.label is not None else None
    index_col = None if split.labelled else _column_index(task.test_index, header, path)
    need = max(cols + [c for c in (label_col, index_col) if c is not None]) + 1
    label_ids = {lab: i for i, lab in enumerate(task.labels)} if task.labels else None
    out: list[Example] = []
    short: list[int] = []  # line numbers of the rows skipped for too few columns
    for line_no, fields in rows:
        if limit and len(out) >= limit:
            break
        if len(fields) < need and task.skip_short_train_rows and split is task.train:
            short.append(line_no)
            continue
        if len(fields) < need:
            raise UserError(f"{path} line {line_no}: {len(fields)} tab-separated columns, expected at least "
                            f"{need} for task {task.name}")
        texts = tuple(fields[c].strip() for c in cols)
        label: Any = None
        if label_col is not None:
            raw = fields[label_col].strip()
            if label_ids is None:
                try:
                    label = float(raw)
                except ValueError:
                    raise UserError(f"{path} line {line_no}: label {raw!r} is not a number") from None
                lo, hi = SCORE_RANGE
                if not (math.isfinite(label) and lo <= label <= hi):  # float() takes 'nan' and 'inf'
                    raise UserError(f"{path} line {line_no}: score {raw!r} is not a number from {lo:g} to "
                                    f"{hi:g}; fix or remove the line")
            else:
                if raw not in label_ids:
                    raise UserError(f"{path} line {line_no}: label {raw!r} is not one of {list(task.labels)}")
                label = label_ids[raw]
        guid = fields[index_col].strip() if index_col is not None else str(line_no)
        out.append(Example(texts, label, guid))
    if short and warn is not None:
        warn(f"warning: [{task.name}] {path}: skipped {len(short)} line(s) with fewer than {need} tab-separated "
             f"columns (first: line {short[0]}), as the reference {task.name.upper()} readers do")
    return out


def double_unordered(examples: list[Example]) -> list[Example]:
    """Each pair in both orders (configure_finetuning.py `double_unordered`, train only)."""
    out = []
    for ex in examples:
        out.append(ex)
        out.append(Example((ex.texts[1], ex.texts[0]), ex.label, ex.guid + "-swapped"))
    return out


def truncate_pair(a: list[int], b: list[int], max_len: int) -> tuple[list[int], list[int]]:
    """BERT's _truncate_seq_pair: drop from the end of the longer side until the pair fits."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_len:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def encode_examples(examples: Sequence[Example], tokenizer: Any, cls_id: int, sep_id: int,
                    max_seq_len: int) -> list[dict[str, Any]]:
    """Features: input_ids, segment_ids and `label` (class id, or the raw score for regression: the head scales by 1/5)."""
    n_seg = len(examples[0].texts) if examples else 1
    encoded = [tokenizer.encode_batch([ex.texts[s] for ex in examples], add_special_tokens=False)
               for s in range(n_seg)]
    feats = []
    for i, ex in enumerate(examples):
        a = encoded[0][i].ids
        if n_seg == 1:
            a = a[: max_seq_len - 2]
            ids, seg = [cls_id] + a + [sep_id], [0] * (len(a) + 2)
        else:
            a, b = truncate_pair(a, encoded[1][i].ids, max_seq_len - 3)
            ids = [cls_id] + a + [sep_id] + b + [sep_id]
            seg = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        feats.append({"input_ids": ids, "segment_ids": seg, "label": ex.label})
    return feats


def score(task: GlueTask, gold: Sequence[Any], pred: Sequence[Any]) -> dict[str, float]:
    """The task's metrics, x100 as in the paper."""
    return {m: 100.0 * METRICS[m](list(gold), list(pred)) for m in task.metrics}


def index_tsv(guids: Sequence[str], values: Sequence[str]) -> str:
    """A prediction file in the GLUE leaderboard's format: header `index\tprediction`, one row per example."""
    return "\n".join(["index\tprediction"] + [f"{g}\t{v}" for g, v in zip(guids, values)]) + "\n"


def write_index_tsv(path: Path, guids: Sequence[str], values: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, index_tsv(guids, values).encode("utf-8"))
    return path


def write_test_predictions(task: GlueTask, name: str, guids: Sequence[str], preds: Sequence[Any],
                           out_dir: Path) -> Path:
    """`NAME.tsv` for the leaderboard: label strings for MNLI / QNLI / RTE, 0/1 for the binary tasks, a 0-5
    score for STS-B."""
    if task.labels is None:
        values = [f"{min(SCORE_RANGE[1], max(SCORE_RANGE[0], float(p))):.3f}" for p in preds]
    else:
        values = [task.labels[int(p)] for p in preds]
    return write_index_tsv(out_dir / f"{name}.tsv", guids, values)


def output_labels(outputs: list[Any], regression: bool) -> list[Any]:
    """Head outputs -> predictions: the score (regression), else the class id of the largest logit (the first
    of equal maxima)."""
    if regression:
        return [float(o) for o in outputs]
    return [max(range(len(o)), key=o.__getitem__) for o in outputs]


@dataclass
class GlueData:
    task: GlueTask
    train: list[Example]
    dev: dict[str, list[Example]]
    test: dict[str, list[Example]] = field(default_factory=dict)


def read_dev(task: GlueTask, task_dir: Path, max_eval: int = 0) -> dict[str, list[Example]]:
    """The dev split(s) of a task; one without examples is an error (it would score 0.00 after training)."""
    dev = {}
    for k, split in task.dev.items():
        dev[k] = read_split(task, task_dir, split, max_eval)
        if not dev[k]:
            raise UserError(f"{task_dir / split.file} has no examples; give the task's labelled dev file")
    return dev


def check_glue(task: GlueTask, data_dir: Path, max_train: int = 0, max_eval: int = 0) -> None:
    """The checks that need no model: the task folder and every file the job will read (training, dev, test),
    so that a run of several tasks stops before training any when one task's data is missing, empty or bad."""
    load_glue(task, data_dir, max_train, max_eval, warn=None)  # the job reads them again, and warns


def load_glue(task: GlueTask, data_dir: Path, max_train: int = 0, max_eval: int = 0,
              warn: Callable[[str], None] | None = print) -> GlueData:
    """Read train, dev(s) and, when present, test file(s) of a task. Test files are optional."""
    task_dir = task.task_dir(data_dir)
    train = read_split(task, task_dir, task.train, max_train, warn)
    if not train:
        raise UserError(f"{task_dir / task.train.file} has no examples")
    dev = read_dev(task, task_dir, max_eval)
    test = {k: read_split(task, task_dir, s) for k, s in task.test.items() if s.locate(task_dir)}
    return GlueData(task, train, dev, test)


def one_class_warning(task: str, labels: Sequence[str] | None, split: str, predicted: list[Any]) -> str | None:
    """A classifier that gives every dev example one label has learned the class prior and nothing else (the
    "SST-2 stuck at 50%" reports of ELECTRA reproductions): say so, rather than leave a bare score to puzzle over.
    `labels` None: regression, never warned about."""
    if labels is None or len(predicted) < 2 or len(set(predicted)) > 1:
        return None
    return (f"warning: [{task}] every {split} prediction ({len(predicted)}) is {labels[predicted[0]]!r}: the "
            f"classifier learned one class only. Usual causes: a learning rate too high (or too low), too few "
            f"epochs, or a checkpoint pre-trained too briefly (compare --random-init)")


def glue_job(task: GlueTask, data_dir: Path, cfg: Any, tokenizer: Any, cls_id: int, sep_id: int) -> Any:
    """A train.Job for one GLUE task (cfg is the resolved FinetuneConfig)."""
    from electra.finetune.heads import build_head
    from electra.finetune.train import Job

    data = load_glue(task, data_dir, cfg.max_train_examples, cfg.max_eval_examples)
    train = data.train
    if task.double_unordered and cfg.double_unordered:
        train = double_unordered(train)
    enc = lambda exs: encode_examples(exs, tokenizer, cls_id, sep_id, cfg.max_seq_len)
    dev_feats = {k: enc(v) for k, v in data.dev.items()}
    test_feats = {k: enc(v) for k, v in data.test.items()}

    def evaluate(predict: Any) -> dict[str, float]:
        result: dict[str, float] = {}
        for k, feats in dev_feats.items():
            predicted = output_labels(predict(feats), task.is_regression)
            warning = one_class_warning(task.name, task.labels, k, predicted)
            if warning:
                print(warning, flush=True)
            scores = score(task, [ex.label for ex in data.dev[k]], predicted)
            # MNLI: matched under the plain names (what the GLUE score uses), mismatched prefixed
            prefix = "" if k in ("dev", "matched") else f"{k}_"
            result.update({prefix + m: v for m, v in scores.items()})
        return result

    def write_test(predict: Any, out_dir: Path) -> list[str]:
        return [write_test_predictions(task, name, [ex.guid for ex in data.test[name]],
                                       output_labels(predict(feats), task.is_regression), out_dir).name
                for name, feats in test_feats.items()]

    # the columns `electra predict` reads from a table (CoLA's labelled files have no header: its test file's name)
    named = [c for c in task.text if isinstance(c, str)] or [c for c in task.test_text if isinstance(c, str)]
    meta: dict[str, Any] = {"segments": len(task.text), "text_columns": named}
    if task.is_regression:
        meta["target_range"] = list(SCORE_RANGE)
    kind = "regression" if task.is_regression else "classification"
    make_head = lambda hidden: build_head(kind, hidden, task.num_outputs, cfg.head_dropout, SCORE_RANGE,
                                          dense=cfg.cls_head == "hf")
    return Job(task=task.name, head_kind=kind,
               labels=list(task.labels) if task.labels else None, train=enc(train), make_head=make_head,
               evaluate=evaluate, main_metric=task.metrics[0], write_test=write_test if test_feats else None,
               meta=meta)
