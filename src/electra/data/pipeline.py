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
import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from electra.data.background import in_background
from electra.data.builder import ExampleBuilder
from electra.data.corpus import DEFAULT_MAX_LINE_BYTES, ReadStats, iter_corpus
from electra.data.dedup import without_documents
from electra.data.inputs import CorpusFile
from electra.data.shards import SPLITS, SplitWriter, commit_shard
from electra.data.tokenizer import SpecialIds, build_tokenizer, long_words

# Test hook: SIGKILL the process that builds unit N once its files are written, before the shard is committed.
KILL_BEFORE_COMMIT_ENV = "ELECTRA_PREPARE_KILL_BEFORE_COMMIT"


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
    blanks_separate_docs: bool = True  # False: blank lines are not document boundaries, each file / record is one
    dedup: bool = False  # leave out documents that repeat an earlier one exactly (dedup.py)
    near_dup: float = 0.0  # > 0: also those whose shingles' MinHash agrees this much with an earlier one's

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # defaults added later are left out: datasets prepared before they existed keep their keys
        if d["blanks_separate_docs"]:
            del d["blanks_separate_docs"]
        if not d["dedup"]:
            del d["dedup"]
        if not d["near_dup"]:
            del d["near_dup"]
        return d


@dataclass(frozen=True)
class Unit:
    """A group of consecutive input files that becomes one shard."""

    index: int
    files: tuple[CorpusFile, ...]
    key: str
    drop: frozenset[int] = frozenset()  # --dedup / --near-dup: the ordinals of the unit's documents that repeat earlier ones

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}-{self.key[:16]}"


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


def _encode(tok: Tokenizer, batches: Iterator[list[str]], unk: int, counter: list[int]
            ) -> Iterator[tuple[list[str], list[list[int]]]]:
    for batch in batches:
        texts = [u for u in batch if u]
        ids = [e.ids for e in tok.encode_batch_fast(texts, add_special_tokens=False)]
        # [word pieces, [UNK]s, [UNK]s that are words too long to split]; not in ReadStats: the reader thread
        # updates that concurrently. A text with an [UNK] is split into words again (rare, but all of a corpus
        # written without spaces, whose whole lines are such words: the `prepare` warning names that cause).
        counter[0] += sum(map(len, ids))
        for text, row in zip(texts, ids):
            if unk in row:
                counter[1] += row.count(unk)
                counter[2] += long_words(tok, text)
        yield batch, ids


def _build_examples(stream: Iterator[tuple[list[str], list[list[int]]]], doc_rng: random.Random,
                    valid_fraction: float, builders: dict[str, ExampleBuilder],
                    writers: dict[str, SplitWriter]) -> None:
    """Route each document to a split, feed its sentences to that split's builder, write the examples."""
    split = ""  # "" = between documents: the next unit starts a document and draws its split
    for batch, ids in stream:
        it = iter(ids)
        for u in batch:
            if not split:
                # Held-out split by whole documents, so no validation text leaks into training.
                split = "valid" if doc_rng.random() < valid_fraction else "train"
            b = builders[split]
            ex = b.end_document() if not u else b.add_sentence(next(it))
            if ex is not None:
                writers[split].add(*ex)
            if not u:
                split = ""
    for s in SPLITS:
        ex = builders[s].end_document()
        if ex is not None:
            writers[s].add(*ex)


def build_unit(unit: Unit, settings: Settings, vocab: dict[str, int], out_dir: Path, dtype: np.dtype,
               batch_lines: int = 4096) -> dict[str, Any]:
    """Build `unit` into `out_dir/unit.name` (crash-safe, see shards.py); returns its shard info.

    `vocab` is the token -> id map that `prepare` read once (a worker process gets a copy instead
    of reading the file again)."""
    tok = build_tokenizer(vocab, lowercase=settings.lowercase, strip_accents=settings.strip_accents)
    special = SpecialIds.from_tokens(vocab)
    stats = ReadStats()
    tmp = out_dir / f".tmp-{unit.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        writers = {s: SplitWriter(tmp, s, dtype) for s in SPLITS}
        builders = {s: ExampleBuilder(settings.seq_len, special.cls, special.sep,
                                      unit_random(settings.seed, unit.index, s),
                                      settings.single_segment_prob, settings.short_seq_prob)
                    for s in SPLITS}
        encoded, dropped = [0, 0, 0], [0]
        units = without_documents(iter_corpus(unit.files, stats, settings.text_field, settings.max_line_bytes,
                                              settings.blanks_separate_docs), unit.drop, dropped)
        # The reader and encoder threads of the module docstring, both stopped (encoder first) when
        # this block is left, also on an error.
        with closing(in_background(_batches(units, batch_lines, 4 << 20))) as batches, \
                closing(in_background(_encode(tok, batches, special.unk, encoded))) as stream:
            _build_examples(stream, unit_random(settings.seed, unit.index, "docs"), settings.valid_fraction,
                            builders, writers)
        stats.tokens_encoded, stats.unk_tokens, stats.unk_long_words = encoded
        counts = {s: w.close() for s, w in writers.items()}
        read = stats.as_dict() | ({"duplicate_documents": dropped[0]} if settings.dedup or settings.near_dup else {})
        info = {"key": unit.key, "unit": unit.index, "inputs": [f.identity() for f in unit.files],
                "counts": counts, "read": read, "warnings": stats.per_file_warnings}
        if os.environ.get(KILL_BEFORE_COMMIT_ENV) == str(unit.index):
            os.kill(os.getpid(), signal.SIGKILL)
        commit_shard(tmp, out_dir / unit.name, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _init_worker(threads: int, parent: int) -> None:
    # Rayon reads this when the tokenizer first encodes in this process (spawned, so not yet).
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    # `parent` is the pid `prepare` passed in, not this process's getppid(): a parent killed while the worker was
    # still starting has already been replaced by init, which the watchdog would then take for the parent
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int, every: float = 0.2) -> None:
    """A worker whose `prepare` was killed (SIGKILL, a plain SIGTERM, preemption) would otherwise live on and
    keep committing shards into a folder whose lock is gone: it ends itself once it has been orphaned."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def build_unit_in_worker(args: tuple) -> dict[str, Any]:
    return build_unit(*args)
