"""Token tagging: CoNLL readers (real CoNLL-2003, written CoNLL-2000), first-sub-token labels, a tiny
end-to-end fine-tune."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_finetune_fixtures import SHARED, make_run, write_vocab

from electra.cli import main as electra_main
from electra.data.tokenizer import SpecialIds, load_tokenizer
from electra.errors import UserError
from electra.finetune.heads import IGNORE
from electra.finetune.metrics import spans
from electra.finetune.tagging import TAGGING_TASKS, Sentence, encode_sentences, read_conll, to_bioes

CONLL = SHARED / "conll2003"


def test_real_conll2003() -> None:
    if not CONLL.exists():
        pytest.skip("shared CoNLL-2003 not present")
    sents = {f: read_conll(CONLL / f) for f in ("eng.train", "eng.testa", "eng.testb")}
    assert [len(v) for v in sents.values()] == [14041, 3250, 3453]
    first = sents["eng.train"][0]
    assert first.words == ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    assert first.tags == ["I-ORG", "O", "I-MISC", "O", "O", "O", "I-MISC", "O", "O"]  # IOB1, as published
    assert all("-DOCSTART-" not in s.words for v in sents.values() for s in v)
    chunk = read_conll(CONLL / "eng.testa", label_column=2, limit=1)[0]
    assert chunk.tags[:3] == ["I-NP", "O", "I-NP"]  # CRICKET NNP I-NP O / - : O O / ...
    assert len(read_conll(CONLL / "eng.train", limit=5)) == 5


def test_written_conll2000_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("Confidence NN B-NP\nin IN B-PP\nthe DT B-NP\npound NN I-NP\n\n"
                                        "Chancellor NNP O\n. . O\n\n\n")
    sents = read_conll(tmp_path / "train.txt")
    assert sents == [Sentence(["Confidence", "in", "the", "pound"], ["B-NP", "B-PP", "B-NP", "I-NP"]),
                     Sentence(["Chancellor", "."], ["O", "O"])]
    assert read_conll(tmp_path / "train.txt", label_column=1)[0].tags[0] == "NN"
    (tmp_path / "bad.txt").write_text("word POS B-NP\nlonely\n")
    with pytest.raises(UserError, match=r"bad.txt line 2: 1 column\(s\)"):
        read_conll(tmp_path / "bad.txt")
    with pytest.raises(UserError, match="column 0"):
        read_conll(tmp_path / "train.txt", label_column=0)
    with pytest.raises(UserError, match="is missing"):
        read_conll(tmp_path / "nope.txt")


def test_first_subword_labels(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path / "vocab.txt")
    tok, sp = load_tokenizer(vocab), SpecialIds.from_vocab(vocab)
    sent = Sentence(["John", "xyz", "won", "."], ["B-PER", "O", "O", "O"])  # "xyz" -> x ##y ##z
    tag_ids = {"B-PER": 0, "O": 1}
    f = encode_sentences([sent], tok, sp.cls, sp.sep, 64, tag_ids)[0]
    pieces = tok.encode(sent.words, is_pretokenized=True, add_special_tokens=False).tokens
    assert pieces == ["john", "x", "##y", "##z", "won", "."]
    assert f["input_ids"][0] == sp.cls and f["input_ids"][-1] == sp.sep
    assert f["labels"] == [IGNORE, 0, 1, IGNORE, IGNORE, 1, 1, IGNORE]
    assert f["word_pos"] == [1, 2, 5, 6] and set(f["segment_ids"]) == {1}
    f = encode_sentences([sent], tok, sp.cls, sp.sep, 5, tag_ids)[0]  # room for 3 pieces: "won" is cut off
    assert f["word_pos"] == [1, 2, -1, -1] and len(f["input_ids"]) == 5


def test_bioes_conversion_keeps_the_chunks() -> None:
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "I-LOC", "I-ORG"]
    assert to_bioes(iob1) == ["B-PER", "E-PER", "S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "S-ORG"]
    assert spans(to_bioes(iob1)) == spans(iob1)
    assert to_bioes(["B-NP", "I-NP", "B-VP", "O"]) == ["B-NP", "E-NP", "S-VP", "O"]


def test_end_to_end_tagging(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    lines = []
    for i in range(48):
        lines += ["-DOCSTART- -X- -X- O", ""] if i % 16 == 0 else []
        lines += ["peter NNP B-NP B-PER", "blackburn NNP I-NP I-PER", "sat VBD B-VP O", "in IN B-PP O",
                  "london NNP B-NP B-LOC" if i % 2 else "paris NNP B-NP B-LOC", ". . O O", ""]
    data = tmp_path / "conll2003"
    data.mkdir()
    for name in ("eng.train", "eng.testa", "eng.testb"):
        (data / name).write_text("\n".join(lines if name == "eng.train" else lines[:30]) + "\n")
    out = tmp_path / "out"
    assert electra_main(["finetune", "--task", "conll2003", "--data", str(tmp_path), "--model", str(run),
                         "--out", str(out), "--epochs", "10", "--lr", "3e-3", "--layer-decay", "1",
                         "--batch-size", "8", "--threads", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["labels"] == ["B-PER", "E-PER", "O", "S-LOC"]  # BIOES targets, as the original
    assert res["summary"]["f1"]["median"] >= 90.0 and "test_f1" in res["summary"]
    assert res["config"]["max_seq_len"] == 128  # the task's 256, capped by the model's position table
    keys = load_file(str(out / "model" / "model.safetensors"))
    assert keys["head.out.weight"].shape == (4, 32)
    assert electra_main(["finetune", "--task", "conll2003", "--data", str(tmp_path), "--model", str(run),
                         "--out", str(tmp_path / "asis"), "--epochs", "0.01", "--tag-encoding", "asis",
                         "--no-save-model"]) == 0
    assert json.loads((tmp_path / "asis" / "results.json").read_text())["labels"] == ["B-LOC", "B-PER", "I-PER", "O"]
    assert json.loads((out / "model" / "finetune.json").read_text())["head"] == "tagging"
    assert TAGGING_TASKS["chunk"].train == "train.txt"


def test_task_folder_lookup(tmp_path: Path) -> None:
    from electra.finetune.config import FinetuneConfig
    from electra.finetune.files import find_task_dir
    from electra.finetune.tagging import tagging_job

    folders = TAGGING_TASKS["chunk"].folders  # chunk, conll2000, CoNLL-2000; then --data itself
    (tmp_path / "chunk").mkdir()  # without the training file: passed over
    for d in (tmp_path / "conll2000", tmp_path / "CoNLL-2000", tmp_path):
        d.mkdir(exist_ok=True)
        (d / "train.txt").write_text("a NN B-NP\n")
    assert find_task_dir(tmp_path, "chunk", folders, "train.txt") == tmp_path / "conll2000"
    assert find_task_dir(tmp_path / "CoNLL-2000", "chunk", folders, "train.txt") == tmp_path / "CoNLL-2000"
    with pytest.raises(UserError, match=r"^chunk: task folder \S+chunk is missing \(no train.txt under ") as e:
        tagging_job(TAGGING_TASKS["chunk"], tmp_path / "chunk", FinetuneConfig(), None, 0, 0)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"test.txt is missing$"):  # the folder is found; its dev file is not
        tagging_job(TAGGING_TASKS["chunk"], tmp_path, FinetuneConfig(max_seq_len=16), None, 0, 0)
