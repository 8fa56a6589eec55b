"""Word and span masking: the vectorised choice equals a plain loop over units (words, or spans of words) in score
order that takes each unit that still fits; it masks whole units only, within the budget and never twice; a word
is drawn as often whatever its length; span lengths follow the clipped geometric; and a run trains and evaluates
with either, held-out rows masked alike in every evaluation.

    python -m pytest tests/test_word_masking.py -q
"""
from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import tiny_overrides

from electra.cli import main
from electra.objective import SpecialTokens, mask_tokens, maskable
from electra.word_masking import choose_units, continuation_table, span_lengths, span_starts, word_starts

SPECIAL = SpecialTokens(pad=0, cls=2, sep=3, mask=4)
CONT = 20  # ids >= CONT are `##` pieces in these tests
CONTINUES = torch.arange(40) >= CONT


def words_of(row: list[int], attention: list[bool]) -> list[list[int]]:
    """The positions of each word: a maskable token and the `##` pieces right after it (the reference)."""
    words: list[list[int]] = []
    for t, tok in enumerate(row):
        if not attention[t] or tok in (SPECIAL.cls, SPECIAL.sep, SPECIAL.mask):
            continue
        if tok >= CONT and words and words[-1][-1] == t - 1:
            words[-1].append(t)
        else:
            words.append([t])
    return words


def spans_of(words: list[list[int]], lengths: list[int]) -> list[list[int]]:
    """The words cut into runs of lengths[0], lengths[1], ... words; a run also ends where the next word does not
    follow the last one directly (a token that cannot be masked lies between them)."""
    cuts, at = set(), 0
    for n in lengths:
        cuts.add(at)
        at += n
    spans: list[list[int]] = []
    for w, word in enumerate(words):
        if w in cuts or not spans or spans[-1][-1] != word[0] - 1:
            spans.append(list(word))
        else:
            spans[-1] += word
    return spans


def reference(units: list[list[int]], u: list[float], k: int, fill: list[list[int]] | None = None) -> list[int]:
    """Units in the order of their first token's number (ties: by position), each taken if it still fits in k;
    then the `fill` units (words) not overlapping what was taken, the same way. The positions, sorted."""
    taken: list[int] = []
    for group in (units, fill or []):
        for unit in sorted(group, key=lambda w: (u[w[0]], w[0])):
            if len(taken) + len(unit) <= k and not set(unit) & set(taken):
                taken += unit
    return sorted(taken)


def random_batch(rng: random.Random, B: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, masks = [], []
    for _ in range(B):
        n = rng.randint(3, T)
        body = [rng.choice([5, 6, 7, 8, 20, 21, 22, SPECIAL.mask]) for _ in range(n - 2)]
        rows.append([SPECIAL.cls, *body, SPECIAL.sep] + [SPECIAL.pad] * (T - n))
        masks.append([True] * n + [False] * (T - n))
    return torch.tensor(rows), torch.tensor(masks)


@pytest.mark.parametrize("span", [False, True])
@pytest.mark.parametrize("max_k,passes", [(4, 4), (24, 24)])  # passes >= k: the passes are the whole scan
def test_vectorised_choice_equals_the_loop_over_units(span, max_k, passes):
    rng = random.Random(0)
    for _ in range(200):
        B, T = 4, rng.randint(4, 24)
        N = rng.randint(1, min(max_k, T))
        ids, attention = random_batch(rng, B, T)
        g = torch.Generator().manual_seed(rng.randrange(1 << 30))
        u, lengths = torch.rand(B, T, generator=g), torch.randint(1, 4, (B, T), generator=g)
        k = torch.tensor([float(rng.randint(0, N)) for _ in range(B)])
        candidates = maskable(ids, attention, SPECIAL)
        starts = word_starts(ids, candidates, CONTINUES)
        if span:
            positions, weights = choose_units(span_starts(starts, candidates, lengths), candidates, k, N, u, passes,
                                              fill_starts_BT=starts)
        else:
            positions, weights = choose_units(starts, candidates, k, N, u, passes)
        for b in range(B):
            words = words_of(ids[b].tolist(), attention[b].tolist())
            if span:
                want = reference(spans_of(words, lengths[b].tolist()), u[b].tolist(), int(k[b]), fill=words)
            else:
                want = reference(words, u[b].tolist(), int(k[b]))
            got = positions[b][weights[b].bool()].tolist()
            assert got == want, (ids[b].tolist(), u[b].tolist(), int(k[b]), got, want)
            assert positions[b][~weights[b].bool()].eq(0).all()


def test_span_lengths_follow_the_clipped_geometric():
    u = torch.rand(200_000, 1, generator=torch.Generator().manual_seed(0))
    lengths = span_lengths(u, 0.2, 10).flatten()
    assert lengths.min() == 1 and lengths.max() == 10
    q = [0.2 * 0.8 ** (n - 1) for n in range(1, 11)]  # SpanBERT: Geo(0.2) renormalised on 1..10, mean 3.8
    want = torch.tensor(q) / sum(q)
    got = torch.bincount(lengths, minlength=11)[1:].double() / len(lengths)
    assert torch.allclose(got, want.double(), atol=0.004), (got, want)
    assert abs(lengths.double().mean() - 3.8) < 0.02
    assert span_lengths(u[:10], 1.0, 10).eq(1).all()  # p = 1: every span one word, whole-word masking


def test_only_whole_words_are_masked_and_each_word_is_as_likely_whatever_its_length():
    # [CLS] a ##x ##y b c ##z d [SEP]: words a+2 pieces, b, c+1 piece, d; one slot budget of 3 tokens
    ids = torch.tensor([[SPECIAL.cls, 5, 20, 21, 6, 7, 22, 8, SPECIAL.sep]]).repeat(20000, 1)
    attention = torch.ones_like(ids, dtype=torch.bool)
    masked = mask_tokens(ids, attention, SPECIAL, max_predictions=3, mask_prob=1 / 3, mask_token_prob=1.0,
                         rng=torch.Generator().manual_seed(0), continues_V=CONTINUES)
    words = [(1, 2, 3), (4,), (5, 6), (7,)]
    first = torch.zeros(len(words))
    for b in range(ids.shape[0]):
        chosen = set(masked.positions[b][masked.weights[b].bool()].tolist())
        assert len(chosen) == int(masked.weights[b].sum()) <= 3  # no position twice, within the budget
        assert all(set(w) <= chosen or not set(w) & chosen for w in words)  # a word whole, or not at all
        assert (masked.input_ids[b] == SPECIAL.mask).sum() == len(chosen)
        first += torch.tensor([float(w[0] in chosen) for w in words])
    # every word comes first in a quarter of the draws, so each is masked at least that often
    assert (first / ids.shape[0] > 0.24).all(), first


def test_the_token_path_is_unchanged_without_the_table():
    ids, attention = random_batch(random.Random(1), 8, 16)
    a = mask_tokens(ids, attention, SPECIAL, 3, 0.15, 0.85, rng=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, attention, SPECIAL, 3, 0.15, 0.85, rng=torch.Generator().manual_seed(5), continues_V=None)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_continuation_table_marks_the_pieces():
    table = continuation_table({"[PAD]": 0, "walk": 1, "##ing": 2, "##": 3, "#x": 4}, vocab_size=6)
    assert table.tolist() == [False, False, True, False, False, False]  # "##" alone is a token, not a piece


@pytest.mark.parametrize("masking", ["whole_word", "span"])
def test_a_word_masking_run_trains_and_evaluates_alike(tiny_dataset, tmp_path, masking):
    evals = []
    for name in ("a", "b"):  # the same command twice: the same masks in training and in evaluation
        run = tmp_path / name
        assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--masking", masking,
                     *tiny_overrides(eval_every=2, max_steps=4)]) == 0
        assert json.loads((run / "config.json").read_text())["objective"]["masking"] == masking
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        evals.append([{k: v for k, v in r.items() if k != "time" and "per_s" not in k} for r in rows])
    assert evals[0] == evals[1]
    held_out = [r for r in evals[0] if "eval/mlm_loss" in r]
    assert len(held_out) == 2 and all(0.05 < r["eval/replaced_rate"] < 0.2 for r in held_out)


@pytest.mark.parametrize("span", [None, (0.2, 10)])
def test_word_masking_masks_whole_words_of_a_wordpiece_vocabulary(span):
    from electra.data.tokenizer import SPECIAL_TOKENS, build_tokenizer

    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, "the", "walk", "talk", "run", "##ing", "##ed", "##s",
                                         "##ly", "quick", "dog", "."])}
    tok = build_tokenizer(vocab)
    table = continuation_table(vocab, len(vocab))
    cls, sep, pad, mask = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"], vocab["[MASK]"]
    texts = ["the dogs walked quickly .", "the quick dog talks and runs", "walking talking running ."] * 20
    rows = [[cls, *tok.encode(t, add_special_tokens=False).ids, sep] for t in texts]
    T = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows])
    attention = ids != pad
    m = mask_tokens(ids, attention, SpecialTokens(pad, cls, sep, mask), 4, 0.3, 1.0,
                    rng=torch.Generator().manual_seed(0), continues_V=table, span=span)
    assert table[ids].sum() > 60  # "dogs" = dog ##s, "walked" = walk ##ed, ...
    for b, row in enumerate(rows):
        words = _words(row, table)
        chosen = set(m.positions[b][m.weights[b].bool()].tolist())
        assert chosen and all(set(w) <= chosen or not set(w) & chosen for w in words), (row, chosen)


def _words(row: list[int], table: torch.Tensor) -> list[list[int]]:
    words: list[list[int]] = []
    for t, tok in enumerate(row[1:-1], start=1):
        if table[tok] and words and words[-1][-1] == t - 1:
            words[-1].append(t)
        else:
            words.append([t])
    return words
