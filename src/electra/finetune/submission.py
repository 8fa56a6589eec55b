"""The GLUE leaderboard's submission: the eleven prediction files its server takes, zipped together.

A run of several GLUE tasks (`--task glue`) leaves each task's files in OUT/<task>/test_predictions/. The server
wants all of them in one zip, at its top level, plus two that no GLUE task here trains:

    AX.tsv    the diagnostic set, predicted by the MNLI model (its job writes it, beside MNLI-m / MNLI-mm)
    WNLI.tsv  the majority class of WNLI's training set for every test example, as BERT and ELECTRA submitted
              it (the paper leaves WNLI out: its train and dev sets are adversarial to each other)

OUT/glue_submission.zip is written whenever the run produced any leaderboard file; what is missing is named, as
the server refuses an incomplete submission.
"""
from __future__ import annotations

import os
import zipfile
from collections import Counter
from pathlib import Path

from electra.errors import UserError
from electra.finetune.glue import index_tsv, read_tsv

SUBMISSION_FILES = ("AX", "CoLA", "MNLI-m", "MNLI-mm", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "STS-B", "WNLI")
ZIP_NAME = "glue_submission.zip"


def wnli_predictions(data_dir: Path) -> str | None:
    """WNLI.tsv's text: the majority label of GLUE_DIR/WNLI/train.tsv (ties: the smaller) for each row of its
    test.tsv; None when --data has no WNLI folder with both files."""
    folder = data_dir / "WNLI"
    if not ((folder / "train.tsv").is_file() and (folder / "test.tsv").is_file()):
        return None
    rows = {}
    for split, column in (("train", "label"), ("test", "index")):
        path = folder / f"{split}.tsv"
        lines = read_tsv(path)
        if len(lines) < 2:
            raise UserError(f"{path} has no examples; give GLUE's WNLI {split}.tsv")
        header = [h.strip() for h in lines[0][1]]
        if column not in header:
            raise UserError(f"{path}: expected a column named {column!r}, the header has {header}")
        col = header.index(column)
        short = next((n for n, fields in lines[1:] if len(fields) <= col), None)
        if short is not None:
            raise UserError(f"{path} line {short}: no {column!r} column (too few tab-separated columns)")
        rows[split] = [fields[col].strip() for _, fields in lines[1:]]
    counts = Counter(rows["train"])
    majority = min(counts, key=lambda label: (-counts[label], label))
    return index_tsv(rows["test"], [majority] * len(rows["test"]))


def write_submission(out: Path, prediction_dirs: list[Path], data_dir: Path) -> tuple[Path | None, list[str]]:
    """OUT/glue_submission.zip from the tasks' leaderboard files and WNLI's majority class: (the zip, or None when
    the run wrote no leaderboard file; the files the server wants that it lacks). A zip of an earlier run goes."""
    zip_path = out / ZIP_NAME
    found = {p.stem: p.read_text(encoding="utf-8") for d in prediction_dirs if d.is_dir()
             for p in sorted(d.glob("*.tsv")) if p.stem in SUBMISSION_FILES}
    if not found:
        zip_path.unlink(missing_ok=True)
        return None, list(SUBMISSION_FILES)
    wnli = wnli_predictions(data_dir)
    if wnli is not None:
        found["WNLI"] = wnli
    tmp = zip_path.with_name(f".{ZIP_NAME}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for stem in SUBMISSION_FILES:
                if stem in found:
                    # a fixed date: the same predictions give the same bytes (a resumed run's zip is the same file)
                    z.writestr(zipfile.ZipInfo(f"{stem}.tsv", date_time=(1980, 1, 1, 0, 0, 0)), found[stem],
                               compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, zip_path)
    finally:
        tmp.unlink(missing_ok=True)
    return zip_path, [s for s in SUBMISSION_FILES if s not in found]
