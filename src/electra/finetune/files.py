"""Finding a task's input files under --data, with one-line errors (shared by glue.py, squad.py, tagging.py).

--data may name a benchmark's root (GLUE_DIR holding SST-2/ ..., a folder holding squad-v1.1/ ...) or the
task's own folder, so each task lists the sub-folder names it may sit in and the folder is the first of
them, or --data itself, that holds the task's training file.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from electra.errors import UserError


def find_task_dir(data_dir: Path, task: str, folders: Sequence[str], marker: str) -> Path:
    """The first of data_dir/<folder> (in the order given), then data_dir itself, holding the file `marker`."""
    data_dir = Path(data_dir)
    candidates = [data_dir / f for f in folders] + [data_dir]
    for cand in candidates:
        if (cand / marker).is_file():
            return cand
    if not folders:  # a task of your own: --data is its folder
        raise UserError(f"{task}: {data_dir / marker} is missing; pass --data as the folder holding {marker}")
    # each place looked in, and why it is not the one: a folder that exists without the file is not "missing"
    looked = "; ".join(f"{c} has no {marker}" if c.is_dir() else f"task folder {c} is missing" for c in candidates)
    raise UserError(f"{task}: {marker} not found ({looked}); pass --data as the task's own folder or the folder "
                    f"holding it")


def require_file(path: Path) -> Path:
    """`path`, or a one-line UserError naming it when it is not a file."""
    if not path.is_file():
        raise UserError(f"{path} is missing")
    return path


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file (a leading BOM dropped, as MRPC's), or a one-line UserError naming the file and
    the line of the first byte that is not UTF-8 (latin-1 CoNLL / GLUE copies exist)."""
    raw = require_file(path).read_bytes()
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, bom + e.start) + 1
        raise UserError(f"{path} line {line} is not UTF-8 text ({e.reason} at byte {bom + e.start}); "
                        f"convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
