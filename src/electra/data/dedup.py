"""`electra prepare --dedup`: drop every document whose text repeats an earlier one exactly, across all input files.

Web text repeats itself (mirrors, boilerplate pages, the same article in two dumps); a repeated document is
trained on twice per epoch and can land in both the training and the held-out split. Exact repeats are found
before anything is tokenized:

    1. hash pass: each work unit's documents (the reader's text units up to each "" boundary) are hashed in
       order, 8 bytes of BLAKE2b over their lines, in parallel over units like the build itself;
    2. the first occurrence of each hash in corpus order (unit order, then document order) is kept; the others
       are listed per unit, by their ordinal among the unit's documents;
    3. the build reads each unit as before and leaves its listed documents out before the tokenizer.

A unit's list depends on the units before it, so a digest of the list joins the unit's key: when an earlier file
changes which documents repeat, the affected shards are rebuilt, and a resume stays exact. The hash pass reads
the whole corpus on every run (about a tenth of a build's time: reading, no tokenizing). Only exact repeats of
the text as read (lines stripped) count; near-duplicates are not detected.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from electra.data.corpus import CorpusFile, ReadStats, iter_corpus

EMPTY = np.uint64(0)  # the hash of a document without text: never counted as a repeat
U = TypeVar("U")  # pipeline.Unit (index, files, key, drop)


def document_hashes(files: Sequence[CorpusFile], text_field: str, max_line_bytes: int,
                    blanks_separate_docs: bool) -> np.ndarray:
    """(documents,) uint64: one hash per document of these files, in reading order."""
    hashes: list[int] = []
    h, empty = hashlib.blake2b(digest_size=8), True
    for unit in iter_corpus(files, ReadStats(), text_field, max_line_bytes, blanks_separate_docs):
        if unit:
            h.update(unit.encode("utf-8", "surrogatepass"))
            h.update(b"\n")
            empty = False
        else:
            hashes.append(0 if empty else int.from_bytes(h.digest(), "little") or 1)
            h, empty = hashlib.blake2b(digest_size=8), True
    if not empty:  # a reader that did not close its last document
        hashes.append(int.from_bytes(h.digest(), "little") or 1)
    return np.array(hashes, dtype=np.uint64)


def repeats(per_unit: Sequence[np.ndarray]) -> list[np.ndarray]:
    """For each unit, the ordinals of its documents that repeat a document earlier in corpus order."""
    all_hashes = np.concatenate([np.asarray(h, dtype=np.uint64) for h in per_unit] or [np.zeros(0, np.uint64)])
    _, first = np.unique(all_hashes, return_index=True)
    repeat = np.ones(len(all_hashes), dtype=bool)
    repeat[first] = False
    repeat[all_hashes == EMPTY] = False
    out, start = [], 0
    for h in per_unit:
        out.append(np.flatnonzero(repeat[start:start + len(h)]))
        start += len(h)
    return out


def list_digest(ordinals: Iterable[int]) -> str:
    """What joins a unit's key: the documents it leaves out."""
    return hashlib.sha256(",".join(map(str, ordinals)).encode()).hexdigest()


def hash_unit(args: tuple[Any, Any]) -> np.ndarray:
    """Step 1 for one (unit, settings), in a worker process or not."""
    unit, s = args
    return document_hashes(unit.files, s.text_field, s.max_line_bytes, s.blanks_separate_docs)


def mark_repeats(units: Sequence[U], hashes: Sequence[np.ndarray]) -> tuple[list[U], int]:
    """Steps 2-3: the units, each given the documents to leave out and that list's digest in its key; and how many
    documents are left out in all."""
    lists = repeats(hashes)
    marked = [dataclasses.replace(u, drop=frozenset(d.tolist()),  # type: ignore[type-var]
                                  key=hashlib.sha256(f"{u.key}:drop:{list_digest(d.tolist())}".encode()).hexdigest())
              for u, d in zip(units, lists)]
    return marked, sum(map(len, lists))


def without_documents(units: Iterator[str], drop: frozenset[int], dropped: list[int]) -> Iterator[str]:
    """The reader's text units with the documents numbered in `drop` (0 = the first) left out, boundary and all;
    `dropped[0]` counts them."""
    if not drop:
        yield from units
        return
    doc = 0
    for unit in units:
        if doc not in drop:
            yield unit
        if not unit:
            dropped[0] += doc in drop
            doc += 1
