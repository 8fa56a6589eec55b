"""Turning one work unit (a group of input files) into one finished shard.

Three stages overlap in threads so the Rust tokenizer (which releases the GIL and uses all its
threads inside `encode_batch_fast`) is never idle while Python reads text or builds examples:

    reader thread: files -> batches of text units ("" = document end)
    encoder thread: batch -> word-piece ids (`encode_batch_fast`, no offsets)
    caller thread:  ids -> documents routed to train/valid -> ExampleBuilder -> SplitWriter

Queues are bounded, so memory does not grow with the corpus. Determinism: one random stream per
(seed, unit, purpose) — the split of documents and the two builders never share state with other
units, so the result does not depend on how many workers run or in which order.
"""
from __future__ import annotations

import os
import queue
import random
import shutil
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from electra.data.builder import ExampleBuilder
from electra.data.corpus import DEFAULT_MAX_LINE_BYTES, CorpusFile, ReadStats, iter_corpus
from electra.data.shards import SplitWriter, commit_shard
from electra.data.tokenizer import SpecialIds, load_tokenizer


@dataclass(frozen=True)
class Settings:
    """Everything (besides the inputs and vocab) that the dataset's bytes depend on."""

    seq_len: int = 128
    lowercase: bool = True
    strip_accents: bool | None = None
    single_segment_prob: float = 0.1
    short_seq_prob: float = 0.05
    seed: int = 12345
    valid_fraction: float = 0.01
    text_field: str = "text"
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Unit:
    """A group of consecutive input files that becomes one shard."""

    index: int
    files: tuple[CorpusFile, ...]
    key: str

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}-{self.key[:16]}"


_DONE = object()


def _threaded(gen: Iterator[Any], maxsize: int = 4) -> Iterator[Any]:
    """Run a generator in a daemon thread; exceptions are re-raised in the consumer, and the thread
    stops (closing the generator and its files) when the consumer stops early."""
    q: queue.Queue = queue.Queue(maxsize)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in gen:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(e)
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()

    threading.Thread(target=run, daemon=True).start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _batches(units: Iterator[str], max_lines: int, max_chars: int) -> Iterator[list[str]]:
    batch: list[str] = []
    chars = 0
    for u in units:
        batch.append(u)
        chars += len(u)
        if len(batch) >= max_lines or chars >= max_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def unit_random(seed: int, unit: int, purpose: str) -> random.Random:
    # A str seed is hashed with sha512 by `random` (version 2): stable across runs and platforms.
    return random.Random(f"electra-prepare:{seed}:{unit}:{purpose}")


def build_unit(unit: Unit, settings: Settings, vocab_path: Path, out_dir: Path, dtype: np.dtype,
               batch_lines: int = 4096) -> dict[str, Any]:
    """Build `unit` into `out_dir/unit.name` (crash-safe, see shards.py); returns its shard info."""
    tok = load_tokenizer(vocab_path, lowercase=settings.lowercase, strip_accents=settings.strip_accents)
    special = SpecialIds.from_vocab(vocab_path)
    stats = ReadStats()
    tmp = out_dir / f".tmp-{unit.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        writers = {s: SplitWriter(tmp, s, dtype) for s in ("train", "valid")}
        builders = {s: ExampleBuilder(settings.seq_len, special.cls, special.sep,
                                      unit_random(settings.seed, unit.index, s),
                                      settings.single_segment_prob, settings.short_seq_prob)
                    for s in ("train", "valid")}
        doc_rng = unit_random(settings.seed, unit.index, "docs")

        encoded = [0]

        def encode(batches: Iterator[list[str]]) -> Iterator[tuple[list[str], list[list[int]]]]:
            for batch in batches:
                encs = tok.encode_batch_fast([u for u in batch if u], add_special_tokens=False)
                ids = [e.ids for e in encs]
                encoded[0] += sum(map(len, ids))  # not in `stats`: the reader thread updates that
                yield batch, ids

        units = iter_corpus(unit.files, stats, settings.text_field, settings.max_line_bytes)
        stream = _threaded(encode(_threaded(_batches(units, batch_lines, 4 << 20))))
        split = ""  # "" = between documents: the next unit starts a document and draws its split
        for batch, ids in stream:
            it = iter(ids)
            for u in batch:
                if not split:
                    # Held-out split by whole documents, so no validation text leaks into training.
                    split = "valid" if doc_rng.random() < settings.valid_fraction else "train"
                b = builders[split]
                ex = b.end_document() if not u else b.add_sentence(next(it))
                if ex is not None:
                    writers[split].add(*ex)
                if not u:
                    split = ""
        for s in ("train", "valid"):
            ex = builders[s].end_document()
            if ex is not None:
                writers[s].add(*ex)
        stats.tokens_encoded = encoded[0]
        counts = {s: w.close() for s, w in writers.items()}
        info = {"key": unit.key, "unit": unit.index, "inputs": [f.identity() for f in unit.files],
                "counts": counts, "read": stats.as_dict(), "warnings": stats.per_file_warnings}
        commit_shard(tmp, out_dir / unit.name, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _init_worker(threads: int) -> None:
    # Rayon reads this when the tokenizer first encodes in this process (spawned, so not yet).
    os.environ["RAYON_NUM_THREADS"] = str(threads)


def build_unit_in_worker(args: tuple) -> dict[str, Any]:
    return build_unit(*args)
