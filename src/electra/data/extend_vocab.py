"""`electra vocab CORPUS --extend BASE/vocab.txt`: your domain's frequent words in a published vocabulary's free slots.

Continuing a published ELECTRA on a domain keeps its vocabulary: the embeddings are indexed by it. A domain's
frequent words then cost several word pieces each ("electroencephalography" is 7 pieces in BERT's). BERT's
vocabulary (which Google's ELECTRA models use) keeps 994 `[unusedN]` slots for this: a slot's token can be
replaced without moving any other id, so the published weights still fit.

    1. count the corpus's words, normalised and split exactly as `prepare` will (BertNormalizer, BertPreTokenizer)
    2. split each word that is not in the vocabulary with it; a word of n pieces saves n - 1 tokens per occurrence
       (a word read as [UNK], for a character the vocabulary lacks, is worth 1 per occurrence: it becomes legible)
    3. the words with the largest savings (count x (n - 1)), at least --min-frequency times, take the slots in
       order ([unused0] first)

`electra pretrain --init` accepts a dataset prepared with the extended vocabulary and starts each new word's
embedding at the mean of its old pieces' embeddings (new_words.py), instead of the never-trained slot's.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from electra.data.corpus import ReadStats, iter_corpus
from electra.data.inputs import default_warn, resolve_corpus
from electra.data.tokenizer import build_tokenizer, read_vocab
from electra.errors import UserError

FREE_SLOT = re.compile(r"\[unused\d+\]")


class Extension(NamedTuple):
    vocab: dict[str, int]  # the extended token -> id map
    added: list[tuple[str, int, int]]  # (word, count, pieces before) in the order they took the slots
    pieces_before: int  # the corpus's word pieces with the base vocabulary
    pieces_after: int  # and with the extended one
    unknown: int  # how many of the added words were read as [UNK] before (their count is their saving)


def free_slots(vocab: Mapping[str, int]) -> list[int]:
    """The ids of the `[unusedN]` tokens, by N."""
    slots = [(int(t[7:-1]), i) for t, i in vocab.items() if FREE_SLOT.fullmatch(t)]
    return [i for _, i in sorted(slots)]


def added_words(base: Mapping[str, int], new: Mapping[str, int]) -> dict[int, str] | None:
    """{id: word} where `new` fills one of `base`'s free slots, if `new` is `base` with only such changes (None
    otherwise: another vocabulary)."""
    if len(base) != len(new):
        return None
    by_id = {i: t for t, i in base.items()}
    added = {}
    for token, i in new.items():
        old = by_id.get(i)
        if old != token:
            if old is None or not FREE_SLOT.fullmatch(old):
                return None
            added[i] = token
    return added


def extend(corpus: Sequence[str | Path], base_vocab: str | Path, add: int | None = None, min_frequency: int = 10,
           lowercase: bool = True, strip_accents: bool | None = None, fmt: str | None = None,
           text_field: str = "text") -> Extension:
    """The base vocabulary with up to `add` (default: every free slot) of the corpus's words in its free slots."""
    base = read_vocab(base_vocab)
    slots = free_slots(base)
    if not slots:
        raise UserError(f"{base_vocab} has no [unusedN] slots to fill; train a vocabulary for your corpus with "
                        f"`electra vocab CORPUS --out DIR` instead (and pre-train from scratch)")
    add = len(slots) if add is None else add
    if not 1 <= add <= len(slots):
        raise UserError(f"--add {add}: {base_vocab} has {len(slots)} [unusedN] slots; give 1 to {len(slots)}")
    tok = build_tokenizer(base, lowercase=lowercase, strip_accents=strip_accents)
    counts: Counter[str] = Counter()
    stats = ReadStats()
    batch: list[str] = []
    for unit in iter_corpus(resolve_corpus(corpus, fmt), stats, text_field):
        if unit:
            batch.append(unit)
        if len(batch) >= 1024 or (not unit and batch):
            text = tok.normalizer.normalize_str("\n".join(batch))
            counts.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text))
            batch = []
    for w in stats.per_file_warnings:
        default_warn(w)
    if not counts:
        raise UserError(f"the corpus {' '.join(map(str, corpus))} has no words; give the text to extend for")
    unk = base["[UNK]"]
    split = {w: [t.id for t in tok.model.tokenize(w)] for w in counts}
    pieces = {w: len(ids) for w, ids in split.items()}
    unknown = {w for w, ids in split.items() if ids == [unk]}  # a character the vocabulary lacks: all of it lost
    # a word's saving: the pieces it stops costing; a word read as [UNK] is worth its count (it becomes legible)
    candidates = [(c * (pieces[w] - 1 if w not in unknown else 1), w) for w, c in counts.items()
                  if w not in base and c >= min_frequency and (pieces[w] > 1 or w in unknown)]
    chosen = sorted(candidates, key=lambda sw: (-sw[0], sw[1]))[:add]
    if not chosen:
        raise UserError(f"no word of the corpus outside {base_vocab} occurs --min-frequency {min_frequency} times or "
                        f"more; nothing to add (lower --min-frequency, or give more text)")
    vocab = dict(base)
    by_id = {i: t for t, i in base.items()}
    for (_, word), slot in zip(chosen, slots):
        del vocab[by_id[slot]]
        vocab[word] = slot
    before = sum(c * pieces[w] for w, c in counts.items())
    after = before - sum(counts[w] * (pieces[w] - 1) for _, w in chosen)
    return Extension(vocab, [(w, counts[w], pieces[w]) for _, w in chosen], before, after,
                     sum(w in unknown for _, w in chosen))
