"""Streaming corpus reading: files, folders and globs of plain text, JSON Lines, WikiExtractor output and Parquet,
compressed or not.

Every reader yields *text units* (ELECTRA treats each line as one "sentence", spec 2.1: there is no
sentence splitter) and the empty string "" at each document end, so the example builder can flush
at document boundaries (spec 2.1 step 1). Memory stays bounded: files are read line by line, and a
line longer than `max_line_bytes` is split into pieces instead of being held whole.

Formats (auto-detected per file, or forced with `fmt`):
- text:  one unit per line, a blank line ends a document (ELECTRA's `--blanks-separate-docs`; with
         blanks_separate_docs=False blank lines are skipped and the file is one document, as the original's
         OpenWebText builder reads one web page per file).
- jsonl: one JSON object per line; its `text_field` holds the text, whose lines are units; a blank
         line inside the text (unless blanks_separate_docs=False) or the end of the record ends a document.
         `.jsonl`/`.json`/`.ndjson`.
- wiki:  WikiExtractor output; `<doc ...>`/`</doc>` delimit documents, the title line repeated right
         after `<doc>` is dropped, blank lines inside a document are ignored. Detected by a first
         line starting with `<doc `.
- parquet: one document per row, its text in the `text_field` column (Hugging Face Hub datasets; needs pyarrow).
gzip, bzip2, xz and zstd are detected by magic bytes, whatever the file name (compressed.py). Which files a
corpus argument names, and each one's format, is inputs.py's.
"""
from __future__ import annotations

import codecs
import html
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from electra.data.compressed import (
    READ_ERRORS,
    open_text_stream,
    parquet_texts,
)
from electra.data.inputs import CorpusFile
from electra.errors import UserError

DEFAULT_MAX_LINE_BYTES = 1 << 20
_TITLE_RE = re.compile(r'\btitle="([^"]*)"')


@dataclass
class ReadStats:
    """Counters gathered while reading (summed over files into the dataset metadata)."""

    bytes_read: int = 0
    lines: int = 0
    documents: int = 0
    replaced_bytes: int = 0
    split_lines: int = 0
    bad_records: int = 0
    tokens_encoded: int = 0  # word pieces produced by the tokenizer (filled in by the pipeline)
    unk_tokens: int = 0  # of which [UNK]: words the vocabulary cannot spell
    unk_long_words: int = 0  # of those, words over MAX_CHARS_PER_WORD characters (text written without spaces)
    per_file_warnings: list[str] = field(default_factory=list)

    def add(self, other: ReadStats) -> None:
        for k in _COUNTERS:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.per_file_warnings += other.per_file_warnings

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in _COUNTERS}


_COUNTERS = ("bytes_read", "lines", "documents", "replaced_bytes", "split_lines", "bad_records", "tokens_encoded",
             "unk_tokens", "unk_long_words")


# ---------------------------------------------------------------------------------------------- decoding

_replaced = [0]


def _count_replace(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    _replaced[0] += err.end - err.start
    return "\ufffd", err.end


codecs.register_error("electra-count-replace", _count_replace)


def decode_line(raw: bytes, stats: ReadStats) -> str:
    """UTF-8 decode; invalid bytes become U+FFFD and are counted in `stats.replaced_bytes`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _replaced[0] = 0
        text = raw.decode("utf-8", errors="electra-count-replace")
        stats.replaced_bytes += _replaced[0]
        return text


def _utf8_boundary(data: bytes, cut: int) -> int:
    """Move `cut` back so it does not fall inside a multi-byte UTF-8 character."""
    back = 0
    while cut - back > 0 and back < 3 and (data[cut - back] & 0xC0) == 0x80:
        back += 1
    return cut - back if cut - back > 0 else cut


def raw_lines(f: BinaryIO, max_line_bytes: int, stats: ReadStats) -> Iterator[bytes]:
    """Lines of a binary stream; a line over `max_line_bytes` is split (at a space if possible)."""
    carry = b""
    while True:
        piece = f.readline(max_line_bytes)
        if not piece:
            if carry:
                yield carry
            return
        stats.bytes_read += len(piece)
        data = carry + piece if carry else piece
        carry = b""
        if piece.endswith(b"\n") or len(piece) < max_line_bytes:
            yield data
            continue
        # An over-long line: emit a bounded piece and carry the rest (split, never crash).
        cut = data.rfind(b" ", len(data) // 2)
        if cut <= 0:
            cut = _utf8_boundary(data, len(data) - 1)
        stats.split_lines += 1
        yield data[:cut]
        carry = data[cut:]


# ---------------------------------------------------------------------------------------------- readers

def _text_units(lines: Iterator[str], stats: ReadStats, blanks_separate_docs: bool = True) -> Iterator[str]:
    in_doc = False
    for line in lines:
        unit = line.strip()  # ELECTRA: line.strip(); an empty line separates documents
        if unit:
            in_doc = True
            yield unit
        elif in_doc and blanks_separate_docs:
            in_doc = False
            stats.documents += 1
            yield ""
    if in_doc:
        stats.documents += 1
        yield ""


def _jsonl_units(lines: Iterator[str], stats: ReadStats, text_field: str, where: Path,
                 blanks_separate_docs: bool = True) -> Iterator[str]:
    first_bad, invalid = 0, 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if lineno == 1 and line.lstrip().startswith("["):
            raise UserError(f"{where} is a JSON array, not JSON Lines; write one JSON object per line")
        try:
            rec = json.loads(line)
        except ValueError:
            rec, invalid = None, invalid + 1
        text = rec.get(text_field) if isinstance(rec, dict) else None
        if not isinstance(text, str):
            stats.bad_records += 1
            first_bad = first_bad or lineno
            continue
        yield from _text_units(iter(text.split("\n")), stats, blanks_separate_docs)
    if invalid and invalid == stats.bad_records and stats.documents == 0:
        raise UserError(f"{where}: none of its {invalid} lines is valid JSON; if it is plain text, pass --format text")
    if stats.bad_records:
        kinds = ", ".join(f"{n} {what}" for n, what in ((invalid, "not valid JSON"), (
            stats.bad_records - invalid, f"without a string field {text_field!r}")) if n)
        hint = ("some were records longer than the line limit, split apart: raise --max-line-bytes"
                if stats.split_lines else "fix or remove them" if invalid == stats.bad_records
                else "use --text-field to pick the right field")
        stats.per_file_warnings.append(
            f"{where}: {stats.bad_records} JSON line(s) skipped ({kinds}; first at line {first_bad}); {hint}")


def _parquet_units(path: Path, stats: ReadStats, text_field: str, blanks_separate_docs: bool) -> Iterator[str]:
    """A Parquet file's rows as documents (compressed.parquet_texts); a row whose field is not a string is counted
    as a bad record, and a file without one good row is an error, as for JSON Lines."""
    for text in parquet_texts(path, text_field):
        stats.lines += 1
        if not isinstance(text, str):
            stats.bad_records += 1
            continue
        stats.bytes_read += len(text.encode("utf-8"))
        yield from _text_units(iter(text.split("\n")), stats, blanks_separate_docs)
    if stats.bad_records:
        stats.per_file_warnings.append(f"{path}: {stats.bad_records} row(s) without a string {text_field!r} skipped")
    if stats.bad_records and stats.documents == 0:
        raise UserError(f"{path}: no row has a string in column {text_field!r}; use --text-field to pick it")


def _wiki_units(lines: Iterator[str], stats: ReadStats) -> Iterator[str]:
    in_doc = False
    has_units = False
    title: str | None = None
    for line in lines:
        unit = line.strip()
        if unit.startswith("<doc ") and unit.endswith(">"):
            if has_units:  # a missing </doc>: still a document boundary
                stats.documents += 1
                yield ""
            m = _TITLE_RE.search(unit)
            title = html.unescape(m.group(1)).strip() if m else ""
            in_doc, has_units = True, False
            continue
        if unit == "</doc>":
            if has_units:
                stats.documents += 1
                yield ""
            in_doc, has_units, title = False, False, None
            continue
        if not unit:
            continue  # blank lines inside a WikiExtractor article are not document boundaries
        if in_doc and title is not None:
            t, title = title, None
            if not t or html.unescape(unit) == t:  # the title line WikiExtractor repeats after <doc>
                continue
        has_units = True
        yield unit
    if has_units:
        stats.documents += 1
        yield ""


def iter_units(cf: CorpusFile, stats: ReadStats, text_field: str = "text",
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, blanks_separate_docs: bool = True) -> Iterator[str]:
    """Text units of one file, with "" after every document (see module docstring)."""
    local = ReadStats()
    if cf.fmt == "parquet":
        try:
            yield from _parquet_units(cf.path, local, text_field, blanks_separate_docs)
        finally:
            stats.add(local)
        return
    try:
        with open_text_stream(cf.path, cf.codec) as f:
            # A JSON record must be parsed whole: allow 64x longer lines there (memory ~ one record).
            limit = max_line_bytes * 64 if cf.fmt == "jsonl" else max_line_bytes
            lines = (decode_line(raw, local) for raw in raw_lines(f, limit, local))
            counted = _count(_without_bom(lines), local)
            if cf.fmt == "jsonl":
                yield from _jsonl_units(counted, local, text_field, cf.path, blanks_separate_docs)
            elif cf.fmt == "wiki":
                yield from _wiki_units(counted, local)
            else:
                yield from _text_units(counted, local, blanks_separate_docs)
    except READ_ERRORS as e:
        raise UserError(f"{cf.path}: read failed ({e}); check the file (truncated or corrupt "
                        f"{cf.codec or 'text'}?)") from None
    finally:
        stats.add(local)
    if cf.fmt == "jsonl" and local.bad_records and local.documents == 0:
        raise UserError(f"{cf.path}: no JSON line has a string field {text_field!r}; use --text-field to pick it")
    if local.replaced_bytes:
        # a stray byte is a damaged line; one in a thousand is a file in another encoding, most often Latin-1
        other = (f" (so many that it is likely another encoding: convert it, e.g. iconv -f LATIN1 -t UTF-8 "
                 f"{cf.path})" if local.replaced_bytes * 1000 > max(1, local.bytes_read) else "")
        stats.per_file_warnings.append(f"{cf.path}: {local.replaced_bytes} invalid UTF-8 byte(s) replaced by "
                                       f"U+FFFD{other}")
    if local.split_lines:
        stats.per_file_warnings.append(
            f"{cf.path}: {local.split_lines} split(s) of lines longer than {limit} bytes")


def _without_bom(lines: Iterator[str]) -> Iterator[str]:
    """The lines without a UTF-8 byte-order mark at the start of the file (Windows editors write one): it would
    hide the first line's `<doc ` or `{` from the WikiExtractor and JSON readers."""
    first = next(lines, None)
    if first is not None:
        yield first.removeprefix("\ufeff")
        yield from lines


def _count(lines: Iterator[str], stats: ReadStats) -> Iterator[str]:
    for line in lines:
        stats.lines += 1
        yield line


def iter_corpus(files: Sequence[CorpusFile], stats: ReadStats, text_field: str = "text",
                max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, blanks_separate_docs: bool = True) -> Iterator[str]:
    """Units of several files in order; each file ends with a document boundary."""
    for cf in files:
        yield from iter_units(cf, stats, text_field, max_line_bytes, blanks_separate_docs)
