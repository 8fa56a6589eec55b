"""`electra prepare --dedup` / `--near-dup J`: drop every document whose text repeats an earlier one exactly, or
nearly, across all input files.

Web text repeats itself (mirrors, boilerplate pages, the same article in two dumps, a page crawled twice with
another date or footer); a repeated document is trained on twice per epoch and can land in both the training and
the held-out split. Repeats are found before anything is tokenized:

    1. fingerprint pass: each work unit's documents (the reader's text units up to each "" boundary) are
       fingerprinted in order, in parallel over units like the build itself: 8 bytes of BLAKE2b over their lines
       (exact), and with --near-dup a MinHash signature of their 5-word shingles (near);
    2. a document repeats when its hash equals an earlier document's (exact), or when it shares one of its
       signature's LSH bands with an earlier document and their signatures agree on at least J of their
       entries (near: an estimate of the Jaccard similarity of the two shingle sets); the first in corpus order
       (unit order, then document order) is kept, the others are listed per unit by their ordinal among the
       unit's documents;
    3. the build reads each unit as before and leaves its listed documents out before the tokenizer.

A unit's list depends on the units before it, so a digest of the list joins the unit's key: when an earlier file
changes which documents repeat, the affected shards are rebuilt, and a resume stays exact. The pass reads the
whole corpus on every run (about a tenth of a build's time: reading, no tokenizing; MinHash adds about as much
again). Exact repeats are of the text as read (lines stripped); near ones compare lower-cased words, so case,
spacing and line breaks do not matter. A signature takes 256 bytes a document in memory (1 M documents: 0.25 GB).

Near-duplicates (Broder 1997; LSH banding as in Leskovec et al., Mining of Massive Datasets, ch. 3): with 128
hash functions in 16 bands of 8, a pair at Jaccard 0.8 shares a band with probability 0.95, at 0.9 0.9999, at
0.5 0.06 (and is then told apart by its agreement). Each band compares a document with the first document of its
bucket, not all of them: a chain of near-copies is cut at the first.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np

from electra.data.corpus import ReadStats, iter_corpus
from electra.data.inputs import CorpusFile

EMPTY = np.uint64(0)  # the hash of a document without text: never counted as a repeat
U = TypeVar("U")  # pipeline.Unit (index, files, key, drop)

SHINGLE = 5  # words per shingle (a shorter document is one shingle)
PERMS = 128  # MinHash functions
BANDS = 16  # LSH bands of PERMS // BANDS entries
NO_WORDS = np.uint16(0xFFFF)  # every entry of a wordless document's signature: never compared


def _constants(name: str, n: int) -> np.ndarray:
    """n odd 64-bit constants, fixed forever (they are part of which documents a dataset leaves out)."""
    return np.array([int.from_bytes(hashlib.blake2b(f"electra-dedup:{name}:{i}".encode(), digest_size=8).digest(),
                                    "little") | 1 for i in range(n)], dtype=np.uint64)


SHINGLE_MIX, HASH_A, HASH_B = _constants("shingle", SHINGLE), _constants("a", PERMS), _constants("b", PERMS)


def minhash(words: Sequence[str]) -> np.ndarray:
    """(PERMS,) uint16: the MinHash signature of the words' SHINGLE-word shingles. Each shingle is hashed by
    mixing its words' CRC-32s; hash function i is multiply-shift, the top 16 bits of A_i x + B_i (mod 2^64)."""
    if not words:
        return np.full(PERMS, NO_WORDS, dtype=np.uint16)
    w = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words))
    k = min(SHINGLE, len(w))
    shingles = sum(w[j:len(w) - k + 1 + j] * SHINGLE_MIX[j] for j in range(k))  # (S,) uint64, wrapping
    h = np.multiply.outer(HASH_A, shingles)  # (PERMS, S): the min runs along memory, twice as fast as (S, PERMS)
    h += HASH_B[:, None]
    return (h.min(axis=1) >> np.uint64(48)).astype(np.uint16)  # the top bits of the min are the min of the top bits


class Fingerprints(NamedTuple):
    exact: np.ndarray  # (documents,) uint64: a hash of the text, EMPTY without any
    near: np.ndarray | None  # (documents, PERMS) uint16 MinHash signatures (--near-dup), else None


def fingerprints(files: Sequence[CorpusFile], text_field: str, max_line_bytes: int, blanks_separate_docs: bool,
                 near: bool = False) -> Fingerprints:
    """The fingerprints of every document of these files, in reading order."""
    hashes: list[int] = []
    signatures: list[np.ndarray] = []
    h, words, empty = hashlib.blake2b(digest_size=8), [], True

    def close() -> None:
        hashes.append(0 if empty else int.from_bytes(h.digest(), "little") or 1)
        if near:
            signatures.append(minhash(words))

    for unit in iter_corpus(files, ReadStats(), text_field, max_line_bytes, blanks_separate_docs):
        if unit:
            h.update(unit.encode("utf-8", "surrogatepass"))
            h.update(b"\n")
            empty = False
            if near:
                words += unit.lower().split()
        else:
            close()
            h, words, empty = hashlib.blake2b(digest_size=8), [], True
    if not empty:  # a reader that did not close its last document
        close()
    near_array = np.stack(signatures) if signatures else np.zeros((0, PERMS), np.uint16)
    return Fingerprints(np.array(hashes, dtype=np.uint64), near_array if near else None)


def repeats(per_unit: Sequence[np.ndarray]) -> list[np.ndarray]:
    """For each unit, the ordinals of its documents that repeat a document earlier in corpus order."""
    all_hashes = np.concatenate([np.asarray(h, dtype=np.uint64) for h in per_unit] or [np.zeros(0, np.uint64)])
    _, first = np.unique(all_hashes, return_index=True)
    repeat = np.ones(len(all_hashes), dtype=bool)
    repeat[first] = False
    repeat[all_hashes == EMPTY] = False
    return per_unit_ordinals(repeat, [len(h) for h in per_unit])


def per_unit_ordinals(repeat: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """A corpus-wide flag per document, as each unit's list of flagged ordinals."""
    bounds = np.cumsum([0, *sizes])
    return [np.flatnonzero(repeat[a:b]) for a, b in itertools.pairwise(bounds)]


def near_repeats(per_unit: Sequence[np.ndarray], threshold: float) -> list[np.ndarray]:
    """For each unit, the ordinals of its documents whose signature agrees on at least `threshold` of its entries
    with that of an earlier document in one of its LSH buckets (the first document of each band's bucket)."""
    sig = np.concatenate([np.asarray(s, dtype=np.uint16).reshape(-1, PERMS) for s in per_unit]
                         or [np.zeros((0, PERMS), np.uint16)])
    docs = np.flatnonzero((sig != NO_WORDS).any(axis=1))  # documents with words, in corpus order
    repeat = np.zeros(len(sig), dtype=bool)
    rows = PERMS // BANDS
    for band in range(BANDS):
        keys = np.ascontiguousarray(sig[docs, band * rows:(band + 1) * rows]).view(f"V{2 * rows}").ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        earlier = docs[first[inverse.ravel()]]  # each document's bucket's first document (itself, if first)
        pair = earlier != docs
        agree = (sig[docs[pair]] == sig[earlier[pair]]).mean(axis=1)
        repeat[docs[pair][agree >= threshold]] = True
    return per_unit_ordinals(repeat, [len(s) for s in per_unit])


def list_digest(ordinals: Iterable[int]) -> str:
    """What joins a unit's key: the documents it leaves out."""
    return hashlib.sha256(",".join(map(str, ordinals)).encode()).hexdigest()


def fingerprint_unit(args: tuple[Any, Any]) -> Fingerprints:
    """Step 1 for one (unit, settings), in a worker process or not."""
    unit, s = args
    return fingerprints(unit.files, s.text_field, s.max_line_bytes, s.blanks_separate_docs, near=s.near_dup > 0)


def mark_repeats(units: Sequence[U], prints: Sequence[Fingerprints], exact: bool, near: float) -> tuple[list[U], int]:
    """Steps 2-3: the units, each given the documents to leave out (repeats, `exact`ly or with a signature
    agreement of at least `near` > 0) and that list's digest in its key; and how many documents are left out."""
    lists = [np.zeros(0, np.int64) for _ in units]
    if exact:
        lists = repeats([p.exact for p in prints])
    if near > 0:
        lists = [np.union1d(a, b) for a, b in zip(lists, near_repeats([p.near for p in prints], near))]
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
