"""Your own data: sentence (or sentence-pair) classification and regression from files you bring.

    electra finetune --task classify --data DIR --model RUN --out OUT [--text-columns a,b] [--label-name y]
    electra finetune --task regress  --data DIR --model RUN --out OUT

DIR holds `train.EXT` and `dev.EXT` (or `validation.EXT`), and optionally `test.EXT`, with EXT one of
csv (comma-separated, standard quoting), tsv (tab-separated, no quoting, as GLUE's files), jsonl (one JSON
object per line) or parquet (needs pyarrow; also as a Hugging Face Hub dataset's shards, `train-00000-of-00002.parquet`
...). CSV and TSV files start with a header naming their columns; a Parquet row's "line" is its number from 1.

- Text: one column (single sentences) or two (pairs, encoded as GLUE's [CLS] A [SEP] B [SEP]). By default
  the first of `text` (+ `text_pair`), `sentence1` + `sentence2`, `premise` + `hypothesis`, `question` +
  `sentence`, `sentence` that the training file has; `--text-columns a,b` names them.
- Label: the column `--label-name` (default `label`). Classification takes the label strings the training
  file has, sorted (numerically when they all are numbers), or the order `--labels neg,pos` gives; dev or
  test labels outside them are errors with --labels, and otherwise warned about (they are counted as wrong:
  the head has no output for them). Regression maps the training targets' range onto [0, 1] as the original
  does STS-B's 0-5 (RegressionHead), and finetune.json records the range.
- Column names match ignoring case when no column has the exact name (`Text`, `Label`, `Id`); a label of
  1.0 is the class 1 (pandas writes integer labels so); a list or object as a JSON label is an error.
- Test: scored (test_* metrics) when its label column has values; its predictions are written to
  OUT/test_predictions/test.tsv (`index\tprediction`, index = the `id`, `idx` or `index` column, else the row
  number from 0) either way.
Metrics: classification accuracy (main) and macro-F1; regression Spearman (main) and Pearson.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from electra.errors import UserError
from electra.finetune.files import read_utf8
from electra.finetune.glue import Example, encode_examples, one_class_warning, output_labels, write_index_tsv
from electra.finetune.metrics import METRICS

FORMATS = ("csv", "tsv", "jsonl", "parquet")
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
    # a Hub dataset's shards (train-00000-of-00002.parquet, ...): read together, as the pattern names them
    found += [data_dir / f"{n}-*.parquet" for n in names if any(data_dir.glob(f"{n}-[0-9]*-of-[0-9]*.parquet"))]
    if len(found) > 1:
        raise UserError(f"{data_dir} has {' and '.join(p.name for p in found)}; keep one {split} file")
    if not found and required:
        if not data_dir.is_dir():
            raise UserError(f"--data {data_dir} is not a folder; give the folder holding train.csv / dev.csv "
                            f"(or .tsv / .jsonl)")
        raise UserError(f"{data_dir} has no {split}.csv, {split}.tsv, {split}.jsonl or {split}.parquet"
                        f"{' (or validation.*)' if split == 'dev' else ''}; name your {split} file so")
    return found[0] if found else None


Row = tuple[int, dict[str, Any]]  # (line number, column -> value)
NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")  # a label that sorts as a number (ASCII digits only)
WHOLE = re.compile(r"[+-]?[0-9]+\.0*")  # "1.0" (pandas writes integer labels so when a column had a gap): "1"


def _csv_records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a whole document in a cell (the default stops at 128 KiB)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return [(reader.line_num, r) for r in reader if any(f.strip() for f in r)]
    except csv.Error as e:
        raise UserError(f"{path} line {reader.line_num}: {e}") from None


def read_rows(path: Path, text: str | None = None, fmt: str | None = None) -> list[Row]:
    """(line, {column: value}) of every record: CSV via the csv module, TSV split on tabs, JSONL one object a
    line, Parquet a row a record. CSV and TSV files start with a header. `fmt` (csv, tsv, jsonl or parquet)
    defaults to the file's suffix."""
    fmt = fmt or {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}.get(
        path.suffix.lower(), "tsv")
    if fmt == "parquet":
        return parquet_rows(path)
    text = read_utf8(path) if text is None else text
    if fmt == "jsonl":
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
    if fmt == "csv":
        records = _csv_records(path, text)
    else:
        records = [(i, line.rstrip("\r").split("\t")) for i, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not records:
        return []
    header = [h.strip() for h in records[0][1]]
    out = []
    for line, fields in records[1:]:
        if len(fields) != len(header):
            raise UserError(f"{path} line {line}: {len(fields)} columns, the header has {len(header)} ({header})"
                            f"{_semicolons(header)}")
        out.append((line, dict(zip(header, fields))))
    return out


def parquet_rows(path: Path) -> list[Row]:
    """(row number from 1, {column: value}) of a Parquet file, or of every shard a `name-*.parquet` pattern
    matches, in name order."""
    from electra.data.compressed import parquet_records
    parts = sorted(path.parent.glob(path.name)) if "*" in path.name else [path]
    return list(enumerate((r for part in parts for r in parquet_records(part)), 1))


def _semicolons(header: list[str]) -> str:
    """A hint for a CSV written with semicolons (Excel in many locales): it reads as one column."""
    return "; is the file separated by semicolons? save it with commas, or as .tsv" if len(header) == 1 and \
        ";" in header[0] else ""


def column(have: Iterable[str], name: str) -> str | None:
    """The column called `name`: that exact name, else the one name that differs only in case ("Text")."""
    have = list(have)
    if name in have:
        return name
    folded = [h for h in have if h.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def keys(rows: list[Row]) -> list[str]:
    """The columns of a file: CSV / TSV rows all have the header's; JSONL objects may differ (the first 1,000)."""
    return list(dict.fromkeys(k for _, row in rows[:1000] for k in row))


def text_columns(path: Path, rows: list[Row], given: str, label: str = "label") -> tuple[str, ...]:
    """The text column(s): --text-columns, else the first default set the file has (names matched ignoring case)."""
    have = keys(rows)
    if given:
        names = tuple(c.strip() for c in given.split(","))
        if not 1 <= len(names) <= 2 or not all(names):
            raise UserError(f"--text-columns {given!r}: give one column name, or two separated by a comma")
        cols = tuple(column(have, c) for c in names)
        for c, found in zip(names, cols):
            if found is None:
                raise UserError(f"{path}: no column {c!r} (it has {have}); fix --text-columns")
        return cols  # type: ignore[return-value]
    for names in TEXT_DEFAULTS:
        cols = tuple(column(have, c) for c in names)
        if all(cols):
            return cols  # type: ignore[return-value]
    other = [h for h in have if column([h], label) is None and h.casefold() not in ID_COLUMNS] or ["text"]
    if _semicolons(have):
        raise UserError(f"{path}: its header is one column, {have[0]!r}{_semicolons(have)}")
    raise UserError(f"{path}: no text column among {have}; name it (or the two of a pair) with --text-columns, "
                    f"e.g. --text-columns {other[0]}")


def _text(path: Path, line: int, row: dict[str, Any], col: str) -> str:
    value = row.get(col)
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {type(value).__name__}, not text"
        raise UserError(f"{path} line {line}: column {col!r} is {what}")
    return value.strip()


def label_string(value: Any) -> str:
    """A label's class name: JSON true / false as written, 1.0 and "1.0" as "1" (the same class as 1)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return str(int(text.split(".")[0])) if WHOLE.fullmatch(text) else text


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
    raw_labels: list[tuple[int, Any]] | None  # (line, value) per row; None: the file has no labels
    ids: list[str]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_split(path: Path, cols: tuple[str, ...], label: str, limit: int = 0, rows: list[Row] | None = None,
               warn: Callable[[str], None] | None = None, predicted: bool = False) -> Split:
    """One file's texts, raw labels and ids (`rows`: the file's records when already read). Column names are
    matched as in `column`; a file whose label column is absent, empty or -1 in every row is unlabelled.
    `predicted`: the test file, whose ids the predictions file keeps (repeated ones are warned about)."""
    rows = (read_rows(path) if rows is None else rows)[: limit or None]
    if not rows:
        raise UserError(f"{path} has no examples")
    have = keys(rows)
    cols = tuple(column(have, c) or c for c in cols)
    label_col = column(have, label)
    labelled = label_col is not None and any(not _blank(row.get(label_col)) for _, row in rows)
    # -1 in every row: the Hugging Face datasets' "no label" (GLUE's test splits on the Hub)
    labelled = labelled and not all(str(row.get(label_col)).strip() in ("-1", "-1.0") for _, row in rows)
    id_col = next((c for c in (column(have, n) for n in ID_COLUMNS) if c), None)
    texts, labels, ids, empty = [], [], [], []
    for k, (line, row) in enumerate(rows):
        texts.append(tuple(_text(path, line, row, c) for c in cols))
        if not all(texts[-1]):
            empty.append(line)
        if labelled:
            value = row.get(label_col)  # type: ignore[arg-type]
            if _blank(value):
                raise UserError(f"{path} line {line}: no {label_col!r} value (other rows have one)")
            if isinstance(value, list | dict):
                raise UserError(f"{path} line {line}: the label is a JSON {type(value).__name__}; give one label per "
                                f"example (multi-label data is not supported)")
            labels.append((line, value))
        ids.append(label_string(row[id_col]) if id_col and not _blank(row.get(id_col)) else str(k))
    if warn is not None and empty:
        warn(f"warning: {path}: {len(empty)} row(s) with an empty text (first: line {empty[0]}); they are kept")
    if warn is not None and predicted and id_col and len(set(ids)) < len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        warn(f"warning: {path}: the {id_col!r} column repeats ids (first: {dup!r}); the predictions file keeps "
             f"them, in the file's order")
    return Split(path, texts, labels if labelled else None, ids)


def label_set(task: CustomTask, train: Split, given: str) -> list[str] | None:
    """Class names in output order (None for regression)."""
    if task.regression:
        return None
    if given:
        labels = [label_string(x) for x in given.split(",")]
        if len(set(labels)) != len(labels) or not all(labels):
            raise UserError(f"--labels {given!r}: give distinct, non-empty names separated by commas")
    else:
        seen = {label_string(v) for _, v in train.raw_labels or []}
        numeric = all(NUMBER.fullmatch(x) for x in seen)
        labels = sorted(seen, key=float if numeric else None)
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
        name = label_string(raw)
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
    cols = text_columns(train_path, rows, cfg.text_columns, cfg.label_name)
    train_split = read_split(train_path, cols, cfg.label_name, cfg.max_train_examples, rows, warn)
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
    dev_split = read_split(find_split(data_dir, "dev"), cols, cfg.label_name, cfg.max_eval_examples,  # type: ignore[arg-type]
                           warn=warn)
    if dev_split.raw_labels is None:
        raise UserError(f"{dev_split.path}: no {cfg.label_name!r} column; the dev file must be labelled")
    evals = {"": to_examples(task, dev_split, labels, strict, warn)}
    test = None
    test_path = find_split(data_dir, "test", required=False)
    if test_path is not None:
        test_split = read_split(test_path, cols, cfg.label_name, cfg.max_eval_examples, warn=warn, predicted=True)
        test = to_examples(task, test_split, labels, strict, warn)
        if test_split.raw_labels is not None:
            evals["test_"] = test
    return CustomData(task, cols, labels, target_range, train, evals, test)


def check_custom(task: CustomTask, data_dir: Path, cfg: Any) -> None:
    load_custom(task, data_dir, cfg, warn=None)  # the job reads them again, and warns


def custom_job(task: CustomTask, data_dir: Path, cfg: Any, tokenizer: Any, cls_id: int, sep_id: int) -> Any:
    """A train.Job for a user's classification or regression data (cfg is the resolved FinetuneConfig)."""
    from electra.finetune.heads import build_head
    from electra.finetune.train import Job

    data = load_custom(task, data_dir, cfg)
    enc = lambda exs: encode_examples(exs, tokenizer, cls_id, sep_id, cfg.max_seq_len)
    eval_feats = {k: enc(v) for k, v in data.evals.items()}
    test_feats = enc(data.test) if data.test is not None else None
    labels = data.labels

    def evaluate(predict: Any) -> dict[str, float]:
        result: dict[str, float] = {}
        for prefix, feats in eval_feats.items():
            predicted = output_labels(predict(feats), task.regression)
            warning = one_class_warning(task.name, labels, "test" if prefix else "dev", predicted)
            if warning:
                print(warning, flush=True)
            gold = [ex.label for ex in data.evals[prefix]]
            result.update({prefix + m: 100.0 * METRICS[m](gold, predicted) for m in task.metrics})
        return result

    def write_test(predict: Any, out_dir: Path) -> list[str]:
        assert data.test is not None and test_feats is not None
        predicted = output_labels(predict(test_feats), task.regression)
        values = [repr(float(p)) for p in predicted] if labels is None else [labels[p] for p in predicted]
        return [write_index_tsv(out_dir / PREDICTIONS_FILE, [ex.guid for ex in data.test], values).name]

    kind = "regression" if task.regression else "classification"
    make_head = lambda hidden: build_head(kind, hidden, len(labels or []), cfg.head_dropout,
                                          data.target_range or (0.0, 5.0), dense=cfg.cls_head == "hf")
    meta: dict[str, Any] = {"segments": len(data.columns), "text_columns": list(data.columns)}
    if data.target_range is not None:
        meta["target_range"] = list(data.target_range)
    return Job(task=task.name, head_kind=kind, labels=labels,
               train=enc(data.train), make_head=make_head, evaluate=evaluate, main_metric=task.metrics[0],
               write_test=write_test if data.test is not None else None, meta=meta)


__all__ = ["CUSTOM_TASKS", "CustomTask", "check_custom", "custom_job", "load_custom"]
