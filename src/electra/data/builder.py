"""ELECTRA's pre-training example builder (`build_pretraining_dataset.py::ExampleBuilder`, spec 2.1).

Followed fact by fact:
1. Each text unit (line) is tokenized and appended to a buffer; once the buffered length reaches the
   target length an example is emitted. A document end flushes a non-empty buffer, so examples never
   cross documents and document tails become short examples.
2. With probability `single_segment_prob` (0.1) an example has a single segment (first-segment target
   = 100000), otherwise the first-segment target is (target_length - 3) // 2.
3. Sentences go to segment A if A is empty, or A + sentence < target, or (B is still empty, A is below
   target and a fair coin says so); else to B. B is the real continuation (no NSP, no random B).
4. A is truncated to max_len - 2 and B to max(0, max_len - len(A) - 3); the overflow is discarded.
5. After each example, with probability `short_seq_prob` (0.05) the next target length is
   randint(5, max_len), else max_len.
6. Layout [CLS] A [SEP] (B [SEP]); padding, masks and segment ids are derived at load time.

The random draws are made in the same order as the original (one `random.Random` per stream), so the
choices are the original's for a given generator state.
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

# Per-example flags stored next to the tokens (for the measured fractions in tests and the summary).
FLAG_SINGLE_SEGMENT = 1  # the 10% single-segment draw happened for this example
FLAG_SHORT_TARGET = 2  # this example was built towards a random short target length (the 5% draw)
FLAG_ONE_SEGMENT = 4  # the example has no B segment (from the draw, a lone long sentence, or a doc tail)


class ExampleBuilder:
    """Turns a stream of tokenized sentences and document ends into packed examples."""

    def __init__(self, max_len: int, cls_id: int, sep_id: int, rng: random.Random,
                 single_segment_prob: float = 0.1, short_seq_prob: float = 0.05) -> None:
        if max_len < 5:
            raise ValueError(f"max_len must be >= 5 (randint(5, max_len) in spec 2.1 step 5), got {max_len}")
        self.max_len = max_len
        self.cls_id, self.sep_id = cls_id, sep_id
        self.rng = rng
        self.single_segment_prob = single_segment_prob
        self.short_seq_prob = short_seq_prob
        self._sentences: list[list[int]] = []
        self._length = 0
        self._target = max_len
        self._short = False

    def add_sentence(self, ids: list[int]) -> tuple[list[int], int] | None:
        """Add one tokenized line; returns (token ids, flags) when an example is complete."""
        self._sentences.append(ids)
        self._length += len(ids)
        if self._length >= self._target:
            return self._create_example()
        return None

    def end_document(self) -> tuple[list[int], int] | None:
        """A document boundary: flush the buffer if it holds any tokens (the original's blank line)."""
        if self._length != 0:
            return self._create_example()
        return None

    def _create_example(self) -> tuple[list[int], int]:
        rng = self.rng
        flags = FLAG_SHORT_TARGET if self._short else 0
        if rng.random() < self.single_segment_prob:
            first_target = 100000
            flags |= FLAG_SINGLE_SEGMENT
        else:
            first_target = (self._target - 3) // 2  # -3: [CLS] and two [SEP] not yet added
        first: list[int] = []
        second: list[int] = []
        for sentence in self._sentences:
            # Same short-circuit order as the original: the coin is only drawn when needed.
            if (len(first) == 0 or len(first) + len(sentence) < first_target
                    or (len(second) == 0 and len(first) < first_target and rng.random() < 0.5)):
                first += sentence
            else:
                second += sentence
        first = first[: self.max_len - 2]
        second = second[: max(0, self.max_len - len(first) - 3)]
        self._sentences = []
        self._length = 0
        if rng.random() < self.short_seq_prob:
            self._target = rng.randint(5, self.max_len)
            self._short = True
        else:
            self._target = self.max_len
            self._short = False
        ids = [self.cls_id, *first, self.sep_id]
        if second:
            ids += second
            ids.append(self.sep_id)
        else:
            flags |= FLAG_ONE_SEGMENT
        return ids, flags


def build_examples(units: Iterable[list[int] | None], builder: ExampleBuilder) -> Iterator[tuple[list[int], int]]:
    """Drive a builder: a list of ids is a sentence, None a document end; flushes at the end."""
    for u in units:
        ex = builder.end_document() if u is None else builder.add_sentence(u)
        if ex is not None:
            yield ex
    ex = builder.end_document()
    if ex is not None:
        yield ex


def split_segments(ids: list[int] | tuple[int, ...], sep_id: int) -> tuple[list[int], list[int]]:
    """Inverse of the layout: ([CLS] A [SEP] (B [SEP])) -> (A, B)."""
    ids = list(ids)
    first_sep = ids.index(sep_id, 1)
    a = ids[1:first_sep]
    b = ids[first_sep + 1: -1] if len(ids) > first_sep + 1 else []
    return a, b
