"""`electra prepare --dedup` / `--near-dup J`: repeated (or nearly repeated) documents are left out, the first
kept, across files and units; the result equals preparing the corpus with the repeats removed by hand; shards
follow when an earlier file stops repeating; workers give the same bytes. MinHash agreement is checked against the
Jaccard similarity of the shingle sets, computed directly.

    python -m pytest tests/test_dedup.py -q
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from data_helpers import tree_bytes, write_vocab

from electra.cli import main as cli
from electra.data.dataset import PretrainData
from electra.data.dedup import PERMS, SHINGLE, minhash, near_repeats, repeats
from electra.data.pipeline import Settings
from electra.data.prepare import prepare

A = [["the cat sat on the mat", "a dog ran"], ["one two three", "four five"], ["the sun is hot"]]
B = [["a new story here", "with two lines"], ["one two three", "four five"], ["the sun is hot"],
     ["a new story here", "with two lines"], ["the sun is hot", "and more"]]  # 1, 2 repeat A; 3 repeats 0
C = [["something else", "entirely"], ["one two three", "four five", "six"]]  # one line more: not a repeat


def write(path: Path, docs: list[list[str]]) -> str:
    path.write_text("".join("\n".join(d) + "\n\n" for d in docs), encoding="utf-8")
    return str(path)


def rows(ds: Path) -> dict[str, list[list[int]]]:
    data = PretrainData(ds)
    return {s: [x.tolist() for x in getattr(data, s).take(range(len(getattr(data, s))))] for s in ("train", "valid")}


@pytest.fixture()
def vocab(tmp_path: Path) -> Path:
    return write_vocab(tmp_path / "vocab.txt")


def test_repeats_keep_the_first_in_corpus_order_and_never_count_empty_documents():
    got = repeats([np.array([5, 7, 0, 5], np.uint64), np.array([7, 9, 0], np.uint64), np.array([], np.uint64)])
    assert [g.tolist() for g in got] == [[3], [0], []]


def test_dedup_equals_the_corpus_without_its_repeats(tmp_path: Path, vocab: Path, capsys) -> None:
    files = [write(tmp_path / "a.txt", A), write(tmp_path / "b.txt", B), write(tmp_path / "c.txt", C)]
    by_hand = [write(tmp_path / "ha.txt", A), write(tmp_path / "hb.txt", [B[0], B[4]]), write(tmp_path / "hc.txt", C)]
    common = ["--vocab", str(vocab), "--unit-mb", "0.00001", "--seq-len", "16", "--valid-fraction", "0.3",
              "--workers", "1"]  # one unit per file
    assert cli(["prepare", *files, "--out", str(tmp_path / "dedup"), "--dedup", *common]) == 0
    out = capsys.readouterr()
    assert "--dedup: 3 of 10 documents repeat an earlier one" in out.err
    assert "repeated documents left out (--dedup): 3" in out.out
    assert cli(["prepare", *by_hand, "--out", str(tmp_path / "hand"), *common, "--quiet"]) == 0
    assert rows(tmp_path / "dedup") == rows(tmp_path / "hand")
    meta = json.loads((tmp_path / "dedup" / "meta.json").read_text())
    assert meta["settings"]["dedup"] is True and meta["counts"]["duplicate_documents"] == 3
    assert "dedup" not in json.loads((tmp_path / "hand" / "meta.json").read_text())["settings"]  # old keys kept
    assert cli(["prepare", *files, "--out", str(tmp_path / "plain"), *common, "--quiet"]) == 0
    assert rows(tmp_path / "plain") != rows(tmp_path / "dedup")  # without --dedup the repeats are trained on


def test_a_document_that_stops_repeating_rebuilds_its_shard_only(tmp_path: Path, vocab: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    write(a, A)
    write(b, B)
    write(tmp_path / "c.txt", [["unrelated text"]])
    settings = Settings(seq_len=16, valid_fraction=0.0, dedup=True)
    files = [a, b, tmp_path / "c.txt"]
    info: dict[str, int] = {}
    meta = prepare(files, vocab, tmp_path / "ds", settings, unit_mb=0.00001, log=lambda m: None, run_info=info)
    assert meta["counts"]["duplicate_documents"] == 3 and info == {"built": 3, "reused": 0}
    write(a, A[:2])  # "the sun is hot" is now first seen in b: b keeps it, and b's shard is rebuilt
    meta = prepare(files, vocab, tmp_path / "ds", settings, unit_mb=0.00001, log=lambda m: None, run_info=info)
    assert meta["counts"]["duplicate_documents"] == 2 and info == {"built": 2, "reused": 1}
    fresh = prepare(files, vocab, tmp_path / "fresh", settings, unit_mb=0.00001, log=lambda m: None)
    assert rows(tmp_path / "ds") == rows(tmp_path / "fresh") and fresh["key"] == meta["key"]


@pytest.mark.parametrize("flags", [["--dedup"], ["--near-dup", "0.8"]])
def test_dedup_workers_give_identical_bytes(tmp_path: Path, vocab: Path, flags: list[str]) -> None:
    files = [write(tmp_path / f"{n}.txt", docs * 3) for n, docs in (("a", A), ("b", B), ("c", C))]
    common = [*files, "--vocab", str(vocab), "--unit-mb", "0.00001", *flags, "--quiet"]
    assert cli(["prepare", *common, "--out", str(tmp_path / "w1"), "--workers", "1"]) == 0
    assert cli(["prepare", *common, "--out", str(tmp_path / "w2"), "--workers", "2"]) == 0
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")


# near-duplicates ------------------------------------------------------------------------------------------------

TOKENS = tuple(f"w{i}" for i in range(3000))


def text(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(TOKENS) for _ in range(n)]


def edited(words: list[str], rng: random.Random, changes: int) -> list[str]:
    out = list(words)
    for _ in range(changes):
        out[rng.randrange(len(out))] = f"new{rng.random()}"
    return out


def jaccard(a: list[str], b: list[str]) -> float:
    """The similarity MinHash estimates: of the two sets of SHINGLE-word shingles."""
    def shingles(w: list[str]) -> set[tuple[str, ...]]:
        return {tuple(w[i:i + SHINGLE]) for i in range(len(w) - SHINGLE + 1)}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_minhash_agreement_estimates_the_jaccard_similarity():
    rng = random.Random(0)
    errors = []
    for changes in range(0, 60, 2):  # similarities from 1 down to about 0.3
        a = text(rng, 300)
        b = edited(a, rng, changes)
        errors.append(float((minhash(a) == minhash(b)).mean()) - jaccard(a, b))
    # 128 functions: the estimate's standard deviation is sqrt(J (1 - J) / 128) <= 0.044
    assert max(map(abs, errors)) < 0.15 and abs(float(np.mean(errors))) < 0.03
    unrelated = [float((minhash(text(rng, 300)) == minhash(text(rng, 300))).mean()) for _ in range(10)]
    assert max(unrelated) < 0.05
    assert minhash(a).shape == (PERMS,) and (minhash([]) == 0xFFFF).all()
    assert (minhash(a) == minhash(list(a))).all() and (minhash(["Tiny"]) != minhash(["tiny"])).any()


def test_near_repeats_leave_out_near_copies_of_earlier_documents_only():
    rng = random.Random(1)
    a, b = text(rng, 400), text(rng, 400)
    close_a = edited(a, rng, 4)  # Jaccard about 0.9
    far_b = edited(b, rng, 80)  # about 0.3: a rewrite, kept
    assert jaccard(a, close_a) > 0.85 and jaccard(b, far_b) < 0.5
    unit1 = np.stack([minhash(w) for w in (a, b, [], close_a)])
    unit2 = np.stack([minhash(w) for w in (far_b, [], a, text(rng, 50))])
    got = near_repeats([unit1, unit2, np.zeros((0, PERMS), np.uint16)], 0.8)
    assert [g.tolist() for g in got] == [[3], [2], []]  # the first copy kept; empty documents never count
    assert [g.tolist() for g in near_repeats([unit1, unit2], 0.99)] == [[], [2]]  # only the exact copy


def test_near_dup_equals_the_corpus_without_its_near_copies(tmp_path: Path, capsys) -> None:
    vocab = write_vocab(tmp_path / "vocab.txt", extra=TOKENS)  # every word its own id: rows tell documents apart
    rng = random.Random(2)
    docs = [text(rng, 200) for _ in range(4)]
    copy = [w.upper() for w in edited(docs[1], rng, 1)]  # a word edited (Jaccard 0.95), upper-cased,
    a = write(tmp_path / "a.txt", [[" ".join(docs[0])], [" ".join(docs[1][:80]), " ".join(docs[1][80:])]])
    b = write(tmp_path / "b.txt", [[" ".join(docs[2])], [" ".join(copy[:150]), " ".join(copy[150:])],  # other lines
                                   [" ".join(docs[3])]])
    hand_b = write(tmp_path / "hb.txt", [[" ".join(docs[2])], [" ".join(docs[3])]])
    common = ["--vocab", str(vocab), "--unit-mb", "0.00001", "--seq-len", "16", "--valid-fraction", "0.3",
              "--workers", "1"]
    assert cli(["prepare", a, b, "--out", str(tmp_path / "near"), "--near-dup", "0.8", *common]) == 0
    out = capsys.readouterr()
    assert "--near-dup 0.8: 1 of 5 documents repeat an earlier one or nearly" in out.err
    assert "repeated documents left out (--near-dup 0.8): 1" in out.out
    assert cli(["prepare", a, hand_b, "--out", str(tmp_path / "hand"), *common, "--quiet"]) == 0
    assert rows(tmp_path / "near") == rows(tmp_path / "hand")
    meta = json.loads((tmp_path / "near" / "meta.json").read_text())
    assert meta["settings"]["near_dup"] == 0.8 and "dedup" not in meta["settings"]
    assert "near_dup" not in Settings().as_dict()  # datasets prepared without it keep their keys
    assert cli(["prepare", a, b, "--out", str(tmp_path / "exact"), "--dedup", *common, "--quiet"]) == 0
    assert json.loads((tmp_path / "exact" / "meta.json").read_text())["counts"]["duplicate_documents"] == 0
    capsys.readouterr()
    assert cli(["prepare", a, "--out", str(tmp_path / "bad"), "--near-dup", "1.5", *common]) == 2
    assert "--near-dup 1.5 must be a Jaccard similarity between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
