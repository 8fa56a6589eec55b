"""Compressed and columnar corpus files: recognised by their first bytes, whatever their names.

    gzip   1f 8b            gzip (stdlib)
    bzip2  "BZh"            bz2 (stdlib)
    xz     fd "7zXZ" 00     lzma (stdlib)
    zstd   28 b5 2f fd      the `zstandard` package (`pip install zstandard`): The Pile's and RedPajama's .jsonl.zst
    Parquet "PAR1"          `pyarrow` (`pip install pyarrow`): Hugging Face Hub datasets; one document per row,
                            its text in the --text-field column

`open_text_stream` gives a binary stream with `readline`, which the line readers of corpus.py need; an error
from a codec's own module surfaces as one of READ_ERRORS.
"""
from __future__ import annotations

import bz2
import importlib
import io
import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from electra.errors import UserError

CODECS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zstd")  # dropped from a name before its format is guessed
PARQUET_MAGIC = b"PAR1"
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)
try:  # a corrupt zstd frame raises the package's own error
    import zstandard as _zstandard
    READ_ERRORS += (_zstandard.ZstdError,)
except ImportError:
    pass


def codec_of(head: bytes) -> str:
    """The compression a file's first bytes announce: gzip, bzip2, xz, zstd, or "" (none)."""
    return next((name for magic, name in CODECS.items() if head.startswith(magic)), "")


def optional_module(name: str, package: str, what: str, path: Path) -> Any:
    """Import `name`, or a one-line error saying that `path` (which is `what`) needs `package`."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UserError(f"{path} is {what}: reading it needs the {package} package (pip install {package}), or "
                        f"convert the file first") from None


def open_text_stream(path: Path, codec: str) -> BinaryIO:
    """The file's decompressed bytes, as a stream with readline."""
    if codec == "gzip":
        import gzip
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if codec == "bzip2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if codec == "xz":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if codec == "zstd":
        zstandard = optional_module("zstandard", "zstandard", "zstd-compressed", path)
        return io.BufferedReader(ZstdFrames(path, zstandard.ZstdDecompressor()), buffer_size=1 << 20)
    return open(path, "rb")


class ZstdFrames(io.RawIOBase):
    """A zstd file's decompressed bytes, frame after frame (`zstd -T0` and pzstd write several), and an EOFError
    when the file ends inside a frame, as gzip, bz2 and lzma raise for a truncated file (zstandard's own
    stream_reader returns what it has as if the file were whole)."""

    CHUNK = 1 << 20

    def __init__(self, path: Path, dctx: Any):
        self.file, self.dctx = open(path, "rb"), dctx  # noqa: SIM115 - closed in close()
        self.frame, self.started = dctx.decompressobj(), False
        self.pending, self.at = memoryview(b""), 0  # decompressed bytes not read yet: pending[at:]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.at == len(self.pending):
            data = self.file.read(self.CHUNK)
            if not data:
                if self.started:
                    raise EOFError("the file ends inside a zstd frame")
                return 0
            out = []
            while data:
                self.started = True
                out.append(self.frame.decompress(data))
                data = b""
                if self.frame.eof:  # the next frame, if any, begins in what this one left over
                    data, self.frame, self.started = self.frame.unused_data, self.dctx.decompressobj(), False
            self.pending, self.at = memoryview(b"".join(out)), 0
        n = min(len(buffer), len(self.pending) - self.at)
        buffer[:n] = self.pending[self.at:self.at + n]
        self.at += n
        return n

    def close(self) -> None:
        self.file.close()
        super().close()


def parquet_records(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """A Parquet file's rows as {column: value}, read one batch of rows at a time (`columns`: only these)."""
    pq = optional_module("pyarrow.parquet", "pyarrow", "a Parquet file", path)
    try:
        f = pq.ParquetFile(path)
        for batch in f.iter_batches(columns=columns, batch_size=1024):
            yield from batch.to_pylist()
    except Exception as e:  # noqa: BLE001 - pyarrow's errors (ArrowInvalid, ...) are its own types
        raise UserError(f"{path}: not a readable Parquet file ({' '.join(str(e).split())[:160]})") from None


def parquet_texts(path: Path, text_field: str) -> Iterator[Any]:
    """The `text_field` column of a Parquet file, row by row (a value that is not a string is yielded as it is,
    for the caller to count as a bad record)."""
    pq = optional_module("pyarrow.parquet", "pyarrow", "a Parquet file", path)
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # noqa: BLE001 - as above
        raise UserError(f"{path}: not a readable Parquet file ({' '.join(str(e).split())[:160]})") from None
    if text_field not in names:
        raise UserError(f"{path}: no column {text_field!r} (it has {', '.join(names[:10])}); use --text-field to "
                        f"pick the one with the text")
    for record in parquet_records(path, [text_field]):
        yield record[text_field]
