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
    data = tmp_path / "data" / "conll2003"  # --data is the folder above it, and --out outside --data
    data.mkdir(parents=True)
    for name in ("eng.train", "eng.testa", "eng.testb"):
        (data / name).write_text("\n".join(lines if name == "eng.train" else lines[:30]) + "\n")
    out = tmp_path / "out"
    assert electra_main(["finetune", "--task", "conll2003", "--data", str(data.parent), "--model", str(run),
                         "--out", str(out), "--epochs", "10", "--lr", "3e-3", "--layer-decay", "1",
                         "--batch-size", "8", "--threads", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["labels"] == ["B-PER", "E-PER", "O", "S-LOC"]  # BIOES targets, as the original
    assert res["summary"]["f1"]["median"] >= 90.0 and "test_f1" in res["summary"]
    assert res["config"]["max_seq_len"] == 128  # the task's 256, capped by the model's position table
    keys = load_file(str(out / "model" / "model.safetensors"))
    assert keys["head.out.weight"].shape == (4, 32)
    assert electra_main(["finetune", "--task", "conll2003", "--data", str(data.parent), "--model", str(run),
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
    with pytest.raises(UserError, match=r"^chunk: train.txt not found \(task folder \S+ is missing; ") as e:
        tagging_job(TAGGING_TASKS["chunk"], tmp_path / "chunk", FinetuneConfig(), None, 0, 0)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"test.txt is missing$"):  # the folder is found; its dev file is not
        tagging_job(TAGGING_TASKS["chunk"], tmp_path, FinetuneConfig(max_seq_len=16), None, 0, 0)


def test_conll_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "eng.train"
    path.write_bytes("EU NNP I-NP I-ORG\n\nM\u00fcller NNP I-NP I-PER\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"eng.train line 3 is not UTF-8 text \(invalid start byte at byte "
                                        r"20\); convert the file to UTF-8") as e:
        read_conll(path)
    assert "\n" not in str(e.value)
    path.write_bytes("\ufeffM\u00fcller NNP I-NP I-PER\n".encode("utf-8"))  # a BOM is not part of the first word
    assert read_conll(path)[0].words == ["M\u00fcller"]


def test_conll2003_entity_types_are_checked(tmp_path: Path) -> None:
    types = TAGGING_TASKS["conll2003"].entity_types
    (tmp_path / "eng.train").write_text("EU NNP I-NP B-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP S-PERSON\n")
    with pytest.raises(UserError, match=r"eng.train line 4: tag 'S-PERSON' is not O or a tag of type PER, LOC, "
                                        r"ORG, MISC; fix the file or pick the tag column with --label-column"):
        read_conll(tmp_path / "eng.train", entity_types=types)
    assert read_conll(tmp_path / "eng.train")[1].tags == ["S-PERSON"]  # chunk: any tag
    # --label-column 2 reads CoNLL-2003's chunk column (docs/finetune.md): not an entity column
    assert read_conll(tmp_path / "eng.train", label_column=2, entity_types=types)[0].tags == ["I-NP", "I-VP"]
    (tmp_path / "eng.train").write_text("EU NNP I-NP PER\n")  # no prefix: no type either
    with pytest.raises(UserError, match="tag 'PER' is not O"):
        read_conll(tmp_path / "eng.train", entity_types=types)


def _tagging_files(folder: Path, train: str, dev: str, test: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("eng.train", train), ("eng.testa", dev), ("eng.testb", test)):
        if text is not None:
            (folder / name).write_text(text)
    return folder


def test_empty_dev_or_test_file_is_refused(tmp_path: Path) -> None:
    from electra.finetune.config import FinetuneConfig
    from electra.finetune.tagging import check_tagging, tagging_job

    sent = "peter NNP B-NP B-PER\nsat VBD B-VP O\n\n"
    folder = _tagging_files(tmp_path / "conll2003", sent, "-DOCSTART- -X- -X- O\n\n")
    task, cfg = TAGGING_TASKS["conll2003"], FinetuneConfig(max_seq_len=16)
    with pytest.raises(UserError, match=r"eng.testa has no examples; give the task's tagged dev file$"):
        check_tagging(task, tmp_path, cfg)
    with pytest.raises(UserError, match=r"eng.testa has no examples"):
        tagging_job(task, tmp_path, cfg, None, 0, 0)
    _tagging_files(folder, sent, sent, "")
    with pytest.raises(UserError, match=r"eng.testb has no examples; give the task's tagged test file$"):
        check_tagging(task, tmp_path, cfg)


def test_dev_tags_unseen_in_training_are_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from electra.finetune.config import FinetuneConfig
    from electra.finetune.tagging import tagging_job

    vocab = write_vocab(tmp_path / "vocab.txt")
    tok, sp = load_tokenizer(vocab), SpecialIds.from_vocab(vocab)
    train = "peter NNP B-NP B-PER\nblackburn NNP I-NP I-PER\nsat VBD B-VP O\n\n"
    dev = train + "john NNP B-NP B-PER\nin IN B-PP O\nparis NNP B-NP B-LOC\n\n"
    _tagging_files(tmp_path / "conll2003", train, dev)
    task = TAGGING_TASKS["conll2003"]
    tagging_job(task, tmp_path, FinetuneConfig(max_seq_len=16), tok, sp.cls, sp.sep)
    out = capsys.readouterr().out.strip()
    assert out.endswith("eng.testa has tags that no training sentence has, which cannot be predicted "
                        "(as BIOES targets): S-LOC, S-PER") and len(out.splitlines()) == 1
    assert out.startswith("warning: [conll2003] ")
    tagging_job(task, tmp_path, FinetuneConfig(max_seq_len=16, tag_encoding="asis"), tok, sp.cls, sp.sep)
    assert capsys.readouterr().out.strip().endswith("cannot be predicted: B-LOC")
    _tagging_files(tmp_path / "conll2003", train, train)
    tagging_job(task, tmp_path, FinetuneConfig(max_seq_len=16), tok, sp.cls, sp.sep)
    assert capsys.readouterr().out == ""
