"""`electra vocab CORPUS --extend BASE`: the corpus's most token-saving words take BASE's [unusedN] slots and no
other id moves; `pretrain --init` accepts the extension and starts each new word at the mean of its old pieces.

    python -m pytest tests/test_extend_vocab.py -q
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from test_objective import SP, tiny_cfg

from electra.cli import main
from electra.data.extend_vocab import added_words, extend, free_slots
from electra.data.tokenizer import SPECIAL_TOKENS, build_tokenizer, read_vocab
from electra.errors import UserError
from electra.new_words import start_new_words
from electra.objective import Electra

TOKENS = [*SPECIAL_TOKENS, "[unused0]", "[unused1]", "[unused2]", "the", "walk", "run", "##ing", "##ed", "##ner", "a"]


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    return path


def test_the_most_saving_words_take_the_slots_in_order(tmp_path):
    base = write(tmp_path / "base" / "vocab.txt", TOKENS)
    # walking = walk ##ing (saves 1 a time, 30 times), runner = run ##ner (12), walked (5: under min_frequency)
    corpus = write(tmp_path / "c.txt", ["the walking"] * 30 + ["the runner"] * 12 + ["walked"] * 5 + ["the"] * 8)
    ext = extend([corpus], base, add=2, min_frequency=10)
    assert ext.added == [("walking", 30, 2), ("runner", 12, 2)] and ext.unknown == 0
    old = read_vocab(base)
    assert ext.vocab["walking"] == old["[unused0]"] and ext.vocab["runner"] == old["[unused1]"]
    assert all(ext.vocab[t] == i for t, i in old.items() if t not in ("[unused0]", "[unused1]"))  # no id moved
    assert ext.pieces_before == 50 * 1 + 30 * 2 + 12 * 2 + 5 * 2 and ext.pieces_after == ext.pieces_before - 42
    assert build_tokenizer(ext.vocab).encode("walking runner", add_special_tokens=False).ids == [5, 6]
    assert added_words(old, ext.vocab) == {5: "walking", 6: "runner"}
    assert added_words(old, {**ext.vocab, "a": 99}) is None and added_words(old, dict(list(old.items())[:-1])) is None
    assert free_slots(old) == [5, 6, 7]
    with pytest.raises(UserError, match="has 3 \\[unusedN\\] slots; give 1 to 3"):
        extend([corpus], base, add=4)
    unknown = write(tmp_path / "u.txt", ["zzz the"] * 11 + ["the walking"] * 10)  # "zzz": no "z" in the vocabulary
    ext = extend([unknown], base, add=3, min_frequency=10)
    assert ext.added == [("zzz", 11, 1), ("walking", 10, 2)] and ext.unknown == 1  # 11 legible > 10 pieces saved
    plain = write(tmp_path / "plain" / "vocab.txt", [t for t in TOKENS if not t.startswith("[unused")])
    with pytest.raises(UserError, match="no \\[unusedN\\] slots to fill"):
        extend([corpus], plain)
    assert main(["vocab", str(corpus), "--extend", str(base), "--add", "1", "--min-frequency", "10",
                 "--out", str(tmp_path / "out")]) == 0
    assert read_vocab(tmp_path / "out" / "vocab.txt")["walking"] == 5


def test_new_words_start_at_the_mean_of_their_old_pieces(tmp_path):
    vocab = TOKENS + [f"w{i}" for i in range(300 - len(TOKENS))]
    old = write(tmp_path / "old" / "vocab.txt", vocab)
    new = write(tmp_path / "new" / "vocab.txt", [{"[unused0]": "walking", "[unused2]": "runner"}.get(t, t) for t in vocab])
    torch.manual_seed(0)
    model = Electra(tiny_cfg(), SP)
    torch.nn.init.normal_(model.generator_head.bias)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pieces = start_new_words(model, old, new, lowercase=True, strip_accents=None)
    assert pieces == {5: [9, 11], 7: [10, 13]}  # walk ##ing, run ##ner
    after = model.state_dict()
    for name in ("discriminator.embeddings.word.weight", "generator_head.bias"):
        want = before[name].clone()
        want[5], want[7] = before[name][[9, 11]].mean(0), before[name][[10, 13]].mean(0)
        torch.testing.assert_close(after[name], want, rtol=0, atol=0)
    assert torch.equal(after["generator.embeddings.word.weight"], after["discriminator.embeddings.word.weight"])


def test_continued_pre_training_takes_an_extended_vocabulary(tiny_dataset, tmp_path, capsys):
    from electra.hf_export import export

    base = write(tmp_path / "base" / "vocab.txt",
                 [*(tiny_dataset / "vocab.txt").read_text().split(), "[unused0]", "[unused1]", "[unused2]"])
    corpus = tiny_dataset.parent / "corpus.txt"
    assert main(["prepare", str(corpus), "--vocab", str(base), "--seq-len", "32", "--out", str(tmp_path / "d0"),
                 "--quiet"]) == 0
    assert main(["pretrain", "--data", str(tmp_path / "d0"), "--out", str(tmp_path / "run"), "--no-tensorboard",
                 *tiny_overrides(max_steps=1, eval_every=0, vocab_size=len(read_vocab(base)))]) == 0
    export(tmp_path / "run", tmp_path / "hf")
    domain = write(tmp_path / "domain.txt", ["the zyxwv and the qrstuv of the mnbvc"] * 40)  # words of many pieces
    assert main(["vocab", str(corpus), "--extend", str(base), "--min-frequency", "100000",
                 "--out", str(tmp_path / "x")]) == 2
    assert "nothing to add" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["vocab", str(domain), "--extend", str(base), "--out", str(tmp_path / "ext")]) == 0
    assert main(["prepare", str(domain), str(corpus), "--vocab", str(tmp_path / "ext" / "vocab.txt"), "--seq-len",
                 "32", "--out", str(tmp_path / "d1"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--init", str(tmp_path / "hf"), "--data", str(tmp_path / "d1"), "--out",
                 str(tmp_path / "more"), "--no-tensorboard", "--max-steps", "1", "--eval-every", "0"]) == 0
    added = added_words(read_vocab(base), read_vocab(tmp_path / "ext" / "vocab.txt"))
    assert sorted(added.values()) == ["mnbvc", "qrstuv", "zyxwv"]  # split into pieces, or [UNK] (unknown letters)
    assert "puts 3 new words in" in capsys.readouterr().err
    other = write(tmp_path / "other" / "vocab.txt", [*SPECIAL_TOKENS, *"abcdefghij"])
    assert main(["prepare", str(corpus), "--vocab", str(other), "--seq-len", "32", "--out", str(tmp_path / "d2"),
                 "--quiet"]) == 0
    assert main(["pretrain", "--init", str(tmp_path / "hf"), "--data", str(tmp_path / "d2"), "--out",
                 str(tmp_path / "nope"), "--max-steps", "1"]) == 2
    assert "--extend" in capsys.readouterr().err
