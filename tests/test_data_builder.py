"""The example builder follows ELECTRA's `ExampleBuilder` (spec 2.1) decision for decision (issue 2, point 3)."""
from __future__ import annotations

import random

import pytest

from electra.data.builder import (
    FLAG_ONE_SEGMENT,
    FLAG_SHORT_TARGET,
    FLAG_SINGLE_SEGMENT,
    ExampleBuilder,
    build_examples,
    split_segments,
)

CLS, SEP = 2, 3


class OriginalBuilder:
    """ELECTRA's build_pretraining_dataset.ExampleBuilder, transcribed (tokenization replaced by given ids)."""

    def __init__(self, max_length: int, rng: random.Random) -> None:
        self._current_sentences: list[list[int]] = []
        self._current_length = 0
        self._max_length = max_length
        self._target_length = max_length
        self.random = rng

    def add_line(self, bert_tokids: list[int] | None) -> list[int] | None:
        if bert_tokids is None and self._current_length != 0:  # empty lines separate docs
            return self._create_example()
        bert_tokids = bert_tokids or []
        self._current_sentences.append(bert_tokids)
        self._current_length += len(bert_tokids)
        if self._current_length >= self._target_length:
            return self._create_example()
        return None

    def _create_example(self) -> list[int]:
        if self.random.random() < 0.1:
            first_segment_target_length = 100000
        else:
            first_segment_target_length = (self._target_length - 3) // 2
        first_segment: list[int] = []
        second_segment: list[int] = []
        for sentence in self._current_sentences:
            if (len(first_segment) == 0 or len(first_segment) + len(sentence) < first_segment_target_length or
                    (len(second_segment) == 0 and len(first_segment) < first_segment_target_length and
                     self.random.random() < 0.5)):
                first_segment += sentence
            else:
                second_segment += sentence
        first_segment = first_segment[:self._max_length - 2]
        second_segment = second_segment[:max(0, self._max_length - len(first_segment) - 3)]
        self._current_sentences = []
        self._current_length = 0
        if self.random.random() < 0.05:
            self._target_length = self.random.randint(5, self._max_length)
        else:
            self._target_length = self._max_length
        input_ids = [CLS] + first_segment + [SEP]
        if second_segment:
            input_ids += second_segment + [SEP]
        return input_ids


def random_stream(seed: int, n_docs: int, max_sentence: int = 60) -> list[list[int] | None]:
    """Documents of sentences with distinct token ids (id = 10 + running position) so origins are traceable."""
    rng = random.Random(seed)
    out: list[list[int] | None] = []
    pos = 10
    for _ in range(n_docs):
        for _ in range(rng.randint(1, 15) if max_sentence >= 60 else 60):
            n = rng.choice([rng.randint(1, 12), rng.randint(1, max_sentence), rng.randint(100, 300)])
            n = n if max_sentence >= 60 else min(n, max_sentence)
            out.append(list(range(pos, pos + n)))
            pos += n
        out.append(None)
    return out


@pytest.mark.parametrize("max_len", [5, 32, 128])
def test_identical_to_the_original_builder(max_len: int) -> None:
    stream = random_stream(1, 400)
    ref = OriginalBuilder(max_len, random.Random(7))
    expected = [ex for u in stream if (ex := ref.add_line(u)) is not None]
    ours = ExampleBuilder(max_len, CLS, SEP, random.Random(7))
    got = [ids for ids, _ in build_examples(stream, ours)]
    assert got == expected and len(got) > 300


def test_examples_never_cross_documents_and_fit() -> None:
    stream = random_stream(2, 300)
    doc_of: dict[int, int] = {}
    d = 0
    for u in stream:
        if u is None:
            d += 1
        else:
            doc_of.update((t, d) for t in u)
    examples = list(build_examples(stream, ExampleBuilder(64, CLS, SEP, random.Random(0))))
    for ids, flags in examples:
        assert ids[0] == CLS and ids[-1] == SEP and len(ids) <= 64
        a, b = split_segments(ids, SEP)
        assert a and len({doc_of[t] for t in a + b}) == 1
        # A and B keep document order; they may interleave sentence-wise (a short sentence after one that
        # went to B still joins A if it fits: the original's rule 3), and B starts after A's first sentence.
        assert a == sorted(set(a))
        if b:
            assert b == sorted(set(b)) and b[0] > a[0]
        assert bool(flags & FLAG_ONE_SEGMENT) == (not b)
        if flags & FLAG_SINGLE_SEGMENT:
            assert not b


def test_fractions_and_options() -> None:
    stream = random_stream(3, 3000)
    for single, short in ((0.1, 0.05), (0.3, 0.2), (0.0, 0.0)):
        flags = [f for _, f in build_examples(stream, ExampleBuilder(128, CLS, SEP, random.Random(1), single, short))]
        n = len(flags)
        f_single = sum(f & FLAG_SINGLE_SEGMENT for f in flags) / n
        f_short = sum(bool(f & FLAG_SHORT_TARGET) for f in flags) / n
        print(f"settings {single}/{short}: single-segment {f_single:.3f}, short {f_short:.3f} over {n}")
        assert abs(f_single - single) < 0.02 and abs(f_short - short) < 0.02


def test_short_targets_and_determinism() -> None:
    stream = random_stream(4, 500, max_sentence=8)  # long documents of short sentences
    run1 = list(build_examples(stream, ExampleBuilder(128, CLS, SEP, random.Random(5))))
    run2 = list(build_examples(stream, ExampleBuilder(128, CLS, SEP, random.Random(5))))
    run3 = list(build_examples(stream, ExampleBuilder(128, CLS, SEP, random.Random(6))))
    assert run1 == run2 and run1 != run3
    # with short sentences, examples built towards a short target are mostly much shorter
    short = [len(ids) for ids, f in run1 if f & FLAG_SHORT_TARGET]
    full = [len(ids) for ids, f in run1 if not f & FLAG_SHORT_TARGET]
    assert short and sum(short) / len(short) < 0.8 * sum(full) / len(full)


def test_overflow_is_discarded_not_carried() -> None:
    b = ExampleBuilder(16, CLS, SEP, random.Random(0), single_segment_prob=0.0, short_seq_prob=0.0)
    ex = b.add_sentence(list(range(100, 140)))  # one 40-token sentence >= target: emitted alone, truncated
    assert ex is not None and ex[0] == [CLS, *range(100, 114), SEP]
    assert b.end_document() is None  # nothing was carried over
    assert ExampleBuilder(16, CLS, SEP, random.Random(0)).end_document() is None
    with pytest.raises(ValueError):
        ExampleBuilder(4, CLS, SEP, random.Random(0))
