"""`electra inspect DATASET`: the split's statistics against numbers computed here from the rows; the rows
decoded by BERT's own rule (pieces joined at `##`); --mask marks what mask_tokens masks, the budget per row and the
85 / 15 split held, whole words whole.

    python -m pytest tests/test_inspect.py -q
"""
from __future__ import annotations

import json
import random
import re

import numpy as np

from electra.cli import main
from electra.data.dataset import PretrainData
from electra.data.tokenizer import read_vocab


def run(capsys, *args: str) -> dict:
    assert main(["inspect", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def bert_decode(ids: list[int], names: dict[int, str]) -> str:
    return " ".join(names[i] for i in ids).replace(" ##", "")


def test_statistics_and_rows_are_the_datasets(tiny_dataset, capsys):
    data = PretrainData(tiny_dataset)
    names = {i: t for t, i in read_vocab(data.vocab_path).items()}
    report = run(capsys, str(tiny_dataset), "--rows", "6", "--seed", "3")
    rows = data.train.take(range(len(data.train)))
    lengths = np.array([len(r) for r in rows])
    s = report["stats"]
    assert s["rows"] == len(rows) and s["tokens"] == lengths.sum() and s["sampled_rows"] == len(rows)
    assert s["full_length"] == round(float((lengths == 32).mean()), 4)
    assert s["padding"] == round(1 - lengths.mean() / 32, 4) and s["length"]["p50"] == int(np.median(lengths))
    assert s["with_b_segment"] == round(float(np.mean([(r == data.special.sep).sum() == 2 for r in rows])), 4)
    assert len(report["rows"]) == 6
    for r in report["rows"]:
        ids = rows[r["index"]].tolist()
        sep = ids.index(data.special.sep)
        assert ids[0] == data.special.cls and r["length"] == len(ids)
        assert r["a"] == bert_decode(ids[1:sep], names) and r["b"] == bert_decode(ids[sep + 1:-1], names)
    assert run(capsys, str(tiny_dataset), "--rows", "6", "--seed", "3") == report  # the seed picks the rows
    assert run(capsys, str(tiny_dataset), "--split", "valid", "--rows", "0")["stats"]["rows"] == len(data.valid)


def test_mask_marks_what_a_training_step_masks(tiny_dataset, capsys):
    report = run(capsys, str(tiny_dataset), "--rows", "60", "--mask", "--mask-prob", "0.25")
    masked = kept = 0
    for r in report["rows"]:
        tokens = r["masked"].split()
        marks = [t for t in tokens if re.search(r"\[[^\]]+\]|\{[^}]+\}", t) and t not in ("[CLS]", "[SEP]")]
        k = min(int((0.25 + 0.005) * 32), max(1, round(0.25 * r["length"])))
        assert 1 <= len(marks) <= k  # distinct positions; a position drawn twice is marked once
        masked += sum(t.count("[") for t in marks)
        kept += sum(t.count("{") for t in marks)
    assert 0.75 < masked / (masked + kept) < 0.95  # 85% become [MASK]


def test_whole_word_masking_marks_every_piece_of_a_word(tmp_path, capsys):
    rng = random.Random(0)  # made-up words over few letters: a small vocabulary keeps them in pieces
    text = "\n".join(" ".join("".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 9)))
                                for _ in range(rng.randint(5, 15))) + ("\n" if i % 5 == 4 else "")
                       for i in range(400))
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    assert main(["vocab", str(tmp_path / "corpus.txt"), "--vocab-size", "120", "--out", str(tmp_path / "v")]) == 0
    assert main(["prepare", str(tmp_path / "corpus.txt"), "--vocab", str(tmp_path / "v" / "vocab.txt"), "--seq-len",
                 "32", "--out", str(tmp_path / "ds"), "--workers", "1", "--quiet"]) == 0
    capsys.readouterr()
    words = run(capsys, str(tmp_path / "ds"), "--rows", "40", "--mask", "--masking", "whole_word")
    marked_words = [w for r in words["rows"] for w in r["masked"].split() if re.search(r"[\[{]", w)]
    assert marked_words and all(re.fullmatch(r"(\[[^\]]+\]|\{[^}]+\})+", w) for w in marked_words)  # whole words
    assert any(re.fullmatch(r"(\[[^\]]+\]|\{[^}]+\}){2,}", w) for w in marked_words)  # words of several pieces


def test_text_output_and_bad_input(tiny_dataset, tmp_path, capsys):
    assert main(["inspect", str(tiny_dataset), "--rows", "1", "--mask"]) == 0
    out = capsys.readouterr().out
    assert "at full length" in out and "  A: " in out and "  masked: [CLS]" in out
    assert main(["inspect", str(tmp_path)]) == 2
    assert "is not a prepared dataset" in capsys.readouterr().err
    assert main(["inspect", str(tiny_dataset), "--rows", "-1"]) == 2
    assert "--rows -1 must be 0 or more" in capsys.readouterr().err
