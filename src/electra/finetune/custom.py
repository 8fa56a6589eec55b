"""Your own data: sentence (or sentence-pair) classification and regression from files you bring.

    electra finetune --task classify --data DIR --model RUN --out OUT [--text-columns a,b] [--label-name y]
    electra finetune --task regress  --data DIR --model RUN --out OUT

DIR holds `train.EXT` and `dev.EXT` (or `validation.EXT`), and optionally `test.EXT`, with EXT one of
csv (comma-separated, standard quoting), tsv (tab-separated, no quoting, as GLUE's files) or jsonl (one JSON
object per line). CSV and TSV files start with a header naming their columns.

- Text: one column (single sentences) or two (pairs, encoded as GLUE's [CLS] A [SEP] B [SEP]). By default
  the first of `text` (+ `text_pair`), `sentence1` + `sentence2`, `premise` + `hypothesis`, `question` +
  `sentence`, `sentence` that the training file has; `--text-columns a,b` names them.
- Label: the column `--label-name` (default `label`). Classification takes the label strings the training
  file has, sorted (numerically when they are all integers), or the order `--labels neg,pos` gives; dev or
  test labels outside them are errors with --labels, and otherwise warned about (they are counted as wrong:
  the head has no output for them). Regression maps the training targets' range onto [0, 1] as the original
  does STS-B's 0-5 (RegressionHead), and finetune.json records the range.
- Test: scored (test_* metrics) when it has the label column; its predictions are written to
  OUT/test_predictions/test.tsv (`index\tprediction`, index = the `id`, `idx` or `index` column, else the row
  number from 0) either way.
Metrics: classification accuracy (main) and macro-F1; regression Spearman (main) and Pearson.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from electra.data.shards import atomic_write_bytes
from electra.errors import UserError
from electra.finetune.files import read_utf8
from electra.finetune.glue import Example, encode_examples
from electra.finetune.metrics import METRICS

FORMATS = ("csv", "tsv", "jsonl")
TEXT_DEFAULTS = (("text", "text_pair"), ("sentence1", "sentence2"), ("premise", "hypothesis"),
                 ("question", "sentence"), ("text",), ("sentence",))
ID_COLUMNS = ("id", "idx", "index")
PREDICTIONS_FILE = "test.tsv"


@dataclass(frozen=True)
class CustomTask:
    name: str
    regression: bool
    metrics: tuple[str, ...]  # names in metrics.METRICS; the first is the main metric
    epochs: float = 3.0
    max_seq_len: int = 128


CUSTOM_TASKS: dict[str, CustomTask] = {t.name: t for t in [
    CustomTask("classify", regression=False, metrics=("accuracy", "macro_f1")),
    CustomTask("regress", regression=True, metrics=("spearman", "pearson")),
]}


def find_split(data_dir: Path, split: str, required: bool = True) -> Path | None:
    """data_dir/<split>.<csv|tsv|jsonl> (dev also as validation.*); exactly one may exist."""
    names = [split] + (["validation"] if split == "dev" else [])
    found = [data_dir / f"{n}.{ext}" for n in names for ext in FORMATS if (data_dir / f"{n}.{ext}").is_file()]
    if len(found) > 1:
        raise UserError(f"{data_dir} has {' and '.join(p.name for p in found)}; keep one {split} file")
    if not found and required:
        if not data_dir.is_dir():
            raise UserError(f"--data {data_dir} is not a folder; give the folder holding train.csv / dev.csv "
                            f"(or .tsv / .jsonl)")
        raise UserError(f"{data_dir} has no {split}.csv, {split}.tsv or {split}.jsonl"
                        f"{' (or validation.*)' if split == 'dev' else ''}; name your {split} file so")
    return found[0] if found else None


Row = tuple[int, dict[str, Any]]  # (line number, column -> value)


def read_rows(path: Path) -> list[Row]:
    """(line, {column: value}) of every record: CSV via the csv module, TSV split on tabs, JSONL one object a line."""
    text = read_utf8(path)
    if path.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise UserError(f"{path} line {i}: not a JSON object ({e.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path} line {i}: a JSON {type(obj).__name__}, expected an object")
            rows.append((i, obj))
        return rows
    if path.suffix == ".csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            records = [(reader.line_num, r) for r in reader if any(f.strip() for f in r)]
        except csv.Error as e:
            raise UserError(f"{path} line {reader.line_num}: {e}") from None
    else:
        records = [(i, line.rstrip("\r").split("\t")) for i, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not records:
        return []
    header = [h.strip() for h in records[0][1]]
    out = []
    for line, fields in records[1:]:
        if len(fields) != len(header):
            raise UserError(f"{path} line {line}: {len(fields)} columns, the header has {len(header)} ({header})")
        out.append((line, dict(zip(header, fields))))
    return out


def text_columns(path: Path, rows: list[Row], given: str) -> tuple[str, ...]:
    """The text column(s): --text-columns, else the first default set the file's first record has."""
    have = set(rows[0][1]) if rows else set()
    if given:
        cols = tuple(c.strip() for c in given.split(","))
        if not 1 <= len(cols) <= 2 or not all(cols):
            raise UserError(f"--text-columns {given!r}: give one column name, or two separated by a comma")
        missing = [c for c in cols if c not in have]
        if missing:
            raise UserError(f"{path}: no column {missing[0]!r} (it has {sorted(have)}); fix --text-columns")
        return cols
    for cols in TEXT_DEFAULTS:
        if set(cols) <= have:
            return cols
    raise UserError(f"{path}: no text column among {sorted(have)}; name it (or the two of a pair) with "
                    f"--text-columns, e.g. --text-columns {next(iter(sorted(have)), 'text')}")


def _text(path: Path, line: int, row: dict[str, Any], col: str) -> str:
    value = row.get(col)
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {type(value).__name__}, not text"
        raise UserError(f"{path} line {line}: column {col!r} is {what}")
    return value.strip()


def _label_string(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # JSON true/false as written
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _target(path: Path, line: int, value: Any) -> float:
    try:
        y = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path} line {line}: target {value!r} is not a number") from None
    if not math.isfinite(y):
        raise UserError(f"{path} line {line}: target {value!r} is not a finite number; fix or remove the line")
    return y


@dataclass
class Split:
    path: Path
    texts: list[tuple[str, ...]]
    raw_labels: list[tuple[int, Any]] | None  # (line, value) per row; None: the file has no label column
    ids: list[str]


def read_split(path: Path, cols: tuple[str, ...], label: str, limit: int = 0, rows: list[Row] | None = None) -> Split:
    """One file's texts, raw labels and ids (`rows`: the file's records when already read)."""
    rows = (read_rows(path) if rows is None else rows)[: limit or None]
    if not rows:
        raise UserError(f"{path} has no examples")
    has_label = label in rows[0][1]
    id_col = next((c for c in ID_COLUMNS if c in rows[0][1]), None)
    texts, labels, ids = [], [], []
    for k, (line, row) in enumerate(rows):
        texts.append(tuple(_text(path, line, row, c) for c in cols))
        if has_label:
            if row.get(label) is None or row[label] == "":
                raise UserError(f"{path} line {line}: no {label!r} value")
            labels.append((line, row[label]))
        ids.append(_label_string(row.get(id_col, k)) if id_col else str(k))
    return Split(path, texts, labels if has_label else None, ids)


def label_set(task: CustomTask, train: Split, given: str) -> list[str] | None:
    """Class names in output order (None for regression)."""
    if task.regression:
        return None
    if given:
        labels = [x.strip() for x in given.split(",")]
        if len(set(labels)) != len(labels) or not all(labels):
            raise UserError(f"--labels {given!r}: give distinct, non-empty names separated by commas")
    else:
        seen = {_label_string(v) for _, v in train.raw_labels or []}
        numeric = all(s.lstrip("-").isdigit() for s in seen)
        labels = sorted(seen, key=int if numeric else None)
    if len(labels) < 2:
        raise UserError(f"{train.path}: every example has the label {labels[0]!r}; a classifier needs two classes "
                        f"or more (or list them with --labels)")
    return labels


@dataclass
class CustomData:
    task: CustomTask
    columns: tuple[str, ...]
    labels: list[str] | None
    target_range: tuple[float, float] | None
    train: list[Example]
    evals: dict[str, list[Example]]  # metric prefix ("" dev, "test_") -> scored examples
    test: list[Example] | None  # the test file's rows (for the prediction file), labelled or not


def to_examples(task: CustomTask, split: Split, labels: list[str] | None, strict: bool,
                warn: Callable[[str], None] | None) -> list[Example]:
    """Examples with class ids (-1 for a label training never saw: counted wrong) or float targets."""
    if split.raw_labels is None:
        return [Example(t, None, i) for t, i in zip(split.texts, split.ids)]
    ids = {name: k for k, name in enumerate(labels or [])}
    values: list[Any] = []
    unseen: dict[str, int] = {}
    for line, raw in split.raw_labels:
        if task.regression:
            values.append(_target(split.path, line, raw))
            continue
        name = _label_string(raw)
        if name not in ids:
            if strict:
                raise UserError(f"{split.path} line {line}: label {name!r} is not one of --labels {labels}")
            unseen.setdefault(name, line)
        values.append(ids.get(name, -1))
    if unseen and warn is not None:
        warn(f"warning: {split.path} has labels that no training example has, counted as wrong: "
             f"{', '.join(sorted(unseen))}")
    return [Example(t, v, i) for t, v, i in zip(split.texts, values, split.ids)]


def load_custom(task: CustomTask, data_dir: Path, cfg: Any, warn: Callable[[str], None] | None = print) -> CustomData:
    """Read and check train, dev and (optional) test; everything a run needs before the model is loaded."""
    train_path = find_split(data_dir, "train")
    assert train_path is not None
    rows = read_rows(train_path)
    if not rows:
        raise UserError(f"{train_path} has no examples")
    cols = text_columns(train_path, rows, cfg.text_columns)
    train_split = read_split(train_path, cols, cfg.label_name, cfg.max_train_examples, rows)
    if train_split.raw_labels is None:
        raise UserError(f"{train_path}: no {cfg.label_name!r} column; name the label column with --label-name")
    labels = label_set(task, train_split, cfg.labels)
    strict = bool(cfg.labels)
    train = to_examples(task, train_split, labels, True, warn)
    target_range = None
    if task.regression:
        ys = [ex.label for ex in train]
        target_range = (min(ys), max(ys))
        if target_range[0] == target_range[1]:
            raise UserError(f"{train_path}: every target is {ys[0]:g}; regression needs targets that vary")
    dev_split = read_split(find_split(data_dir, "dev"), cols, cfg.label_name, cfg.max_eval_examples)  # type: ignore[arg-type]
    if dev_split.raw_labels is None:
        raise UserError(f"{dev_split.path}: no {cfg.label_name!r} column; the dev file must be labelled")
    evals = {"": to_examples(task, dev_split, labels, strict, warn)}
    test = None
    test_path = find_split(data_dir, "test", required=False)
    if test_path is not None:
        test_split = read_split(test_path, cols, cfg.label_name, cfg.max_eval_examples)
        test = to_examples(task, test_split, labels, strict, warn)
        if test_split.raw_labels is not None:
            evals["test_"] = test
    return CustomData(task, cols, labels, target_range, train, evals, test)


def check_custom(task: CustomTask, data_dir: Path, cfg: Any) -> None:
    load_custom(task, data_dir, cfg, warn=None)  # the job reads them again, and warns


def write_predictions(guids: list[str], values: list[str], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PREDICTIONS_FILE
    lines = ["index\tprediction"] + [f"{g}\t{v}" for g, v in zip(guids, values)]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def custom_job(task: CustomTask, data_dir: Path, cfg: Any, tokenizer: Any, cls_id: int, sep_id: int) -> Any:
    """A train.Job for a user's classification or regression data (cfg is the resolved FinetuneConfig)."""
    from electra.finetune.heads import ClassificationHead, RegressionHead
    from electra.finetune.train import Job

    data = load_custom(task, data_dir, cfg)
    enc = lambda exs: encode_examples(exs, tokenizer, cls_id, sep_id, cfg.max_seq_len)
    eval_feats = {k: enc(v) for k, v in data.evals.items()}
    test_feats = enc(data.test) if data.test is not None else None
    labels = data.labels

    def to_labels(outputs: list[Any]) -> list[Any]:
        if task.regression:
            return [float(o) for o in outputs]
        return [max(range(len(o)), key=o.__getitem__) for o in outputs]

    def evaluate(predict: Any) -> dict[str, float]:
        result: dict[str, float] = {}
        for prefix, feats in eval_feats.items():
            predicted = to_labels(predict(feats))
            if labels is not None and len(predicted) > 1 and len(set(predicted)) == 1:
                print(f"warning: [{task.name}] every {prefix or 'dev '}prediction is {labels[predicted[0]]!r}: the "
                      f"classifier learned one class only (see docs/finetune.md)", flush=True)
            gold = [ex.label for ex in data.evals[prefix]]
            result.update({prefix + m: 100.0 * METRICS[m](gold, predicted) for m in task.metrics})
        return result

    def write_test(predict: Any, out_dir: Path) -> list[str]:
        assert data.test is not None and test_feats is not None
        predicted = to_labels(predict(test_feats))
        values = [f"{p:.6g}" for p in predicted] if labels is None else [labels[p] for p in predicted]
        return [write_predictions([ex.guid for ex in data.test], values, out_dir).name]

    def make_head(hidden: int) -> Any:
        if task.regression:
            assert data.target_range is not None
            return RegressionHead(hidden, cfg.head_dropout, data.target_range)
        return ClassificationHead(hidden, len(labels or []), cfg.head_dropout)

    meta: dict[str, Any] = {"segments": len(data.columns), "text_columns": list(data.columns)}
    if data.target_range is not None:
        meta["target_range"] = list(data.target_range)
    return Job(task=task.name, head_kind="regression" if task.regression else "classification", labels=labels,
               train=enc(data.train), make_head=make_head, evaluate=evaluate, main_metric=task.metrics[0],
               write_test=write_test if data.test is not None else None, meta=meta)


__all__ = ["CUSTOM_TASKS", "CustomTask", "check_custom", "custom_job", "load_custom"]
