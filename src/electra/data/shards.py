"""On-disk shard format and crash-safe writing.

A dataset folder holds `meta.json` (written last), `vocab.txt`, and one directory per work unit:

    shard-00003-<key16>/
        train.tokens.bin   token ids of all train examples back to back (uint16 or uint32, little-endian)
        train.offsets.bin  int64[n+1]: example i is tokens[offsets[i]:offsets[i+1]], offsets[0] = 0
        train.flags.bin    uint8[n]: builder flags (bit 0 single-segment draw, bit 1 short target, bit 2 no B)
        valid.*            the same for the held-out split
        shard.json         key, counts, file sizes

Each example is stored unpadded as [CLS] A [SEP] (B [SEP]); masks, segment ids and padding are derived
at load time. A shard is built in `.tmp-<name>-<pid>/`, every file fsync'd, then the directory is
renamed into place and the parent fsync'd: a killed run leaves only `.tmp-*` leftovers, which no
reader looks at and the next run deletes. `key` hashes everything the shard's bytes depend on, so a
re-run reuses exactly the shards that would come out the same.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from electra.data.builder import FLAG_ONE_SEGMENT, FLAG_SHORT_TARGET, FLAG_SINGLE_SEGMENT
from electra.errors import UserError

# meta.json's "format" and "version", written by prepare and checked by dataset: a reader refuses a
# folder whose version it does not know instead of misreading it.
FORMAT_NAME = "electra-pretrain-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "valid")
SHARD_JSON = "shard.json"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_folder(folder: Path, command: str, stop: str = "stop it", note_pid: bool = True) -> int:
    """Hold folder/.lock (flock: released however this process ends, SIGKILL included), so that a second
    `electra COMMAND` writing the same folder is refused by name; the descriptor to close when done. `note_pid`:
    write this pid into the lock for that message (not into a dataset, whose bytes are a function of its inputs)."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise UserError(f"another `electra {command}`{f' (pid {holder})' if holder else ''} is writing {folder}; wait "
                        f"for it to end or {stop}, or give another --out") from None
    if note_pid:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    return fd


def foreign(names: list[str]) -> str:
    """How an error names what a folder holds that is not ours: "'notes.txt' that is", "'a' and 2 other files
    that are"."""
    more = len(names) - 1
    return f"{names[0]!r} and {more} other file{'s' * (more > 1)} that are" if more else f"{names[0]!r} that is"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp name, fsync, rename over `path`, fsync the folder. Interrupted (Ctrl-C, SIGTERM, an
    error), the temp file is removed; only SIGKILL can leave it."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def replace_dir(new: Path, final: Path, aside: Path) -> None:
    """Put the finished folder `new` in place as `final`. A previous `final` is first renamed to `aside` and
    deleted last, so that a crash at any moment leaves a whole folder: the old one (at `final` or `aside`,
    where the reader can look for it) or the new one, never half of either."""
    if final.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
    os.replace(new, final)
    fsync_dir(final.parent)
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A fresh folder beside `final` (`.<name>.tmp`) for the block to write into, put in place whole by
    `replace_dir` when the block ends, and removed if it raises: `final` is the old folder or the new one."""
    tmp = final.parent / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final, aside=final.parent / f".{final.name}.old")


def dump_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


class SplitWriter:
    """Streams examples of one split to its three files; memory is bounded by `flush_tokens`."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype, flush_tokens: int = 1 << 20) -> None:
        self.dtype = dtype
        # Kept open while streaming; close() flushes, fsyncs and closes them.
        self._tok = open(folder / f"{split}.tokens.bin", "wb")  # noqa: SIM115
        self._off = open(folder / f"{split}.offsets.bin", "wb")  # noqa: SIM115
        self._flg = open(folder / f"{split}.flags.bin", "wb")  # noqa: SIM115
        self._off.write(np.zeros(1, "<i8").tobytes())
        self._pending: list[int] = []
        self._lengths: list[int] = []
        self._flags: list[int] = []
        self._flush_tokens = flush_tokens
        self.examples = 0
        self.tokens = 0
        self.flag_counts = {"single_segment_draws": 0, "short_target_draws": 0, "one_segment": 0}
        self._end = 0

    def add(self, ids: list[int], flags: int) -> None:
        self._pending += ids
        self._lengths.append(len(ids))
        self._flags.append(flags)
        self.examples += 1
        self.tokens += len(ids)
        self.flag_counts["single_segment_draws"] += bool(flags & FLAG_SINGLE_SEGMENT)
        self.flag_counts["short_target_draws"] += bool(flags & FLAG_SHORT_TARGET)
        self.flag_counts["one_segment"] += bool(flags & FLAG_ONE_SEGMENT)
        if len(self._pending) >= self._flush_tokens:
            self.flush()

    def flush(self) -> None:
        if not self._lengths:
            return
        self._tok.write(np.array(self._pending, dtype=self.dtype).tobytes())
        ends = self._end + np.cumsum(np.array(self._lengths, dtype="<i8"))
        self._off.write(ends.astype("<i8").tobytes())
        self._end = int(ends[-1])
        self._flg.write(np.array(self._flags, dtype=np.uint8).tobytes())
        self._pending, self._lengths, self._flags = [], [], []

    def close(self) -> dict[str, int]:
        self.flush()
        for f in (self._tok, self._off, self._flg):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        return {"examples": self.examples, "tokens": self.tokens, **self.flag_counts}


def commit_shard(tmp: Path, final: Path, info: dict) -> None:
    """Record file sizes, write shard.json, fsync, and atomically rename `tmp` to `final`."""
    info = dict(info)
    info["file_sizes"] = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
    with open(tmp / SHARD_JSON, "wb") as f:
        f.write(dump_json(info))
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(final.parent)


def read_shard_info(folder: Path) -> dict | None:
    """shard.json of a finished shard whose files all have the recorded sizes, else None."""
    try:
        info = json.loads((folder / SHARD_JSON).read_text())
        for name, size in info["file_sizes"].items():
            if (folder / name).stat().st_size != size:
                return None
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SplitArrays:
    """Memory-mapped view of one split of one shard (opened lazily by the dataset)."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype, n: int) -> None:
        self.n = n
        if n == 0:
            self.tokens = np.zeros(0, dtype)
            self.offsets = np.zeros(1, "<i8")
            return
        tok_path = folder / f"{split}.tokens.bin"
        self.tokens = np.memmap(tok_path, dtype=dtype, mode="r") if tok_path.stat().st_size else np.zeros(0, dtype)
        self.offsets = np.memmap(folder / f"{split}.offsets.bin", dtype="<i8", mode="r")

    def get(self, i: int) -> np.ndarray:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(self.tokens[a:b], dtype=np.int64)

    def lengths(self) -> np.ndarray:
        return np.diff(np.asarray(self.offsets))


def read_flags(folder: Path, split: str) -> np.ndarray:
    return np.fromfile(folder / f"{split}.flags.bin", dtype=np.uint8)
