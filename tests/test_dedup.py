"""`electra prepare --dedup`: repeated documents are left out, the first kept, across files and units; the result
equals preparing the corpus with the repeats removed by hand; shards follow when an earlier file stops repeating;
workers give the same bytes.

    python -m pytest tests/test_dedup.py -q
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_helpers import tree_bytes, write_vocab

from electra.cli import main as cli
from electra.data.dataset import PretrainData
from electra.data.dedup import repeats
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


def test_dedup_workers_give_identical_bytes(tmp_path: Path, vocab: Path) -> None:
    files = [write(tmp_path / f"{n}.txt", docs * 3) for n, docs in (("a", A), ("b", B), ("c", C))]
    common = [*files, "--vocab", str(vocab), "--unit-mb", "0.00001", "--dedup", "--quiet"]
    assert cli(["prepare", *common, "--out", str(tmp_path / "w1"), "--workers", "1"]) == 0
    assert cli(["prepare", *common, "--out", str(tmp_path / "w2"), "--workers", "2"]) == 0
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")
