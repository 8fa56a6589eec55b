"""The corpus a command is given: files, folders and glob patterns expanded to files, and each file's format
(text, jsonl, wiki, parquet) and compression detected from its first bytes; empty files skipped with a warning,
binary and UTF-16 ones refused with the fix. Reading them is corpus.py's."""
from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from electra.data.compressed import PARQUET_MAGIC, READ_ERRORS, SUFFIXES, codec_of, open_text_stream
from electra.errors import UserError

FORMATS = ("text", "jsonl", "wiki", "parquet")
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")

Warn = Callable[[str], None]


def default_warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


@dataclass(frozen=True)
class CorpusFile:
    """One input file with its detected format (`codec`, its compression, is orthogonal to `fmt`)."""

    path: Path
    fmt: str
    codec: str  # "" | gzip | bzip2 | xz | zstd
    size: int
    mtime_ns: int

    def identity(self) -> dict:
        """What decides whether a finished shard built from this file can be reused."""
        return {"path": str(self.path), "size": self.size, "mtime_ns": self.mtime_ns, "fmt": self.fmt}


def expand_inputs(specs: Sequence[str | Path], warn: Warn = default_warn) -> list[Path]:
    """Expand files, folders (recursively, hidden entries skipped) and glob patterns, sorted per spec. Inside a
    folder, links to folders are not followed and broken links are skipped: both with a warning."""
    if not specs:
        raise UserError("no corpus given; pass text files, folders or glob patterns")
    out: list[Path] = []
    seen: set[Path] = set()
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            entries = [q for q in p.rglob("*") if not any(part.startswith(".") for part in q.relative_to(p).parts)]
            found = sorted(q for q in entries if q.is_file())
            skipped = sorted(q for q in entries if q.is_symlink() and not q.is_file())
            if skipped:
                warn(f"{len(skipped)} link(s) in corpus folder {p} skipped, such as {skipped[0]} (a link to a folder "
                     f"is not followed, a broken one has nothing to read); pass their targets themselves")
            if not found:
                raise UserError(f"corpus folder {p} contains no files")
        elif p.is_file():
            found = [p]
        elif any(c in str(spec) for c in "*?["):
            found = sorted(Path(q) for q in glob.glob(str(spec), recursive=True) if Path(q).is_file())
            if not found:
                raise UserError(f"corpus pattern {spec!r} matches no files")
        elif p.exists():  # a pipe (`<(zcat ...)`), a device: read more than once, in parallel, and resumably, no
            raise UserError(f"corpus path {p} is not a regular file (a pipe?); write it to a file first and pass that")
        else:
            raise UserError(f"corpus path {p} does not exist; pass existing text files, folders or glob patterns")
        for q in found:
            r = q.resolve()
            if r not in seen:
                seen.add(r)
                out.append(r)
    return out


def utf16_without_bom(head: bytes) -> bool:
    """Mostly-ASCII UTF-16 text: a NUL in every other byte (odd ones little-endian, even ones big-endian) and
    hardly any in the others (a binary file has them anywhere)."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    return max(even, odd) > len(head) // 4 and min(even, odd) < len(head) // 32


def detect_file(path: Path, fmt: str | None = None, warn: Warn = default_warn) -> CorpusFile | None:
    """Detect one file's format; None (with a warning) for an empty file; UserError for a binary one."""
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown corpus format {fmt!r}; use one of {', '.join(FORMATS)}")
    st = path.stat()
    if st.st_size == 0:
        warn(f"{path} is empty; skipped")
        return None
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(PARQUET_MAGIC) and fmt in (None, "parquet"):
        return CorpusFile(path=path, fmt="parquet", codec="", size=st.st_size, mtime_ns=st.st_mtime_ns)
    if fmt == "parquet":
        raise UserError(f"{path} is not a Parquet file (no PAR1 header); drop --format parquet for it")
    codec = codec_of(magic)
    try:
        with open_text_stream(path, codec) as f:
            head = f.read(1024)
    except READ_ERRORS as e:
        raise UserError(f"{path}: cannot read ({e}); pass a text file, plain or compressed (gzip, bzip2, xz, "
                        f"zstd)") from None
    if not head:
        warn(f"{path} is empty (after decompression); skipped")
        return None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16_without_bom(head):
        raise UserError(f"{path} is UTF-16 text; convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8 {path} > "
                        f"{path}.utf8.txt)")
    if b"\x00" in head:
        raise UserError(f"{path} is not text (NUL bytes in its first KB); remove it from the corpus")
    if fmt is None:
        name = next((path.name[: -len(s)] for s in SUFFIXES if path.name.lower().endswith(s)), path.name)
        if name.lower().endswith(JSON_SUFFIXES):
            fmt = "jsonl"
        elif head.lstrip(b"\xef\xbb\xbf").startswith(b"<doc "):
            fmt = "wiki"
        else:
            fmt = "text"
    return CorpusFile(path=path, fmt=fmt, codec=codec, size=st.st_size, mtime_ns=st.st_mtime_ns)


def resolve_corpus(specs: Sequence[str | Path], fmt: str | None = None, warn: Warn = default_warn,
                   exclude: Path | None = None) -> list[CorpusFile]:
    """Expand and detect all inputs (skipping `exclude` and anything under it); UserError if nothing readable
    remains."""
    paths = expand_inputs(specs, warn)
    if exclude is not None:
        ex = exclude.resolve()
        paths = [p for p in paths if p != ex and ex not in p.parents]
    files = [cf for p in paths if (cf := detect_file(p, fmt, warn)) is not None]
    if not files:
        raise UserError(f"the corpus {' '.join(map(str, specs))} has no non-empty files")
    return files


def file_bytes_estimate(cf: CorpusFile) -> int:
    """Rough raw-text size, used only to group small files into work units (compressed text ~3x)."""
    return cf.size * 3 if cf.codec or cf.fmt == "parquet" else cf.size
