"""`electra predict`: a fine-tuned model run on new text gives what `electra finetune`'s evaluation computed for
the same rows (every head kind), reads its inputs from the command line, JSON Lines, TSV / text lines, a SQuAD
file or stdin, writes JSON Lines to stdout or a file, and refuses bad models and inputs with one-line errors.

The models are tiny (make_run: 2 layers, width 32) and fine-tuned briefly on files written here; the
dev predictions of each fine-tuning are recorded by wrapping the `predict` that `electra finetune` evaluates with.
"""
from __future__ import annotations

import io
import json
import math
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_finetune_fixtures import make_run, write_tsv, write_vocab

from electra.cli import main as electra_main
from electra.config import ModelConfig
from electra.data.tokenizer import SpecialIds, load_tokenizer
from electra.finetune import cli as ft_cli
from electra.finetune import seeds as ft_seeds
from electra.finetune.config import FinetuneConfig
from electra.finetune.glue import Example, encode_examples
from electra.finetune.heads import FinetuneModel, RegressionHead
from electra.finetune.metrics import span_f1, spans, spearman, squad_scores
from electra.finetune.squad import QAExample, encode_contexts, extract_answers
from electra.finetune.train import collate, save_model
from electra.model import Encoder

WORDS = ["the", "a", "movie", "film", "was", "very", "is"]
STSB_COLS = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
CONTEXT = "john was born in paris . mary was born in london . the team won the game in france ."


def finetune(argv: list[str], epochs: int = 1) -> list[tuple[list[dict], list[Any]]]:
    """Run `electra finetune` (one seed, `epochs`) and return the (features, outputs) of every `predict` call its
    evaluation made: the first is the dev set."""
    calls, real = [], ft_cli.predict

    def recording(model, feats, **kwargs):
        outs = real(model, feats, **kwargs)
        calls.append((feats, outs))
        return outs
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ft_cli, "predict", recording)  # test predictions
        mp.setattr(ft_seeds, "predict", recording)  # each seed's evaluation
        assert electra_main(["finetune", *argv, "--epochs", str(epochs), "--threads", "1"]) == 0
    return calls


def predict(capsys: pytest.CaptureFixture, *argv: str) -> list[dict]:
    capsys.readouterr()
    assert electra_main(["predict", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def error(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """The one-line message of a refused `electra predict` (exit status 2, nothing on stdout)."""
    capsys.readouterr()
    assert electra_main(["predict", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("electra predict: error: ")
    return err


def softmax(x: Any) -> np.ndarray:
    e = np.exp(np.asarray(x, dtype=np.float64) - max(x))
    return e / e.sum()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    make_run(root)
    return root


@pytest.fixture(scope="module")
def sst2(root: Path) -> dict[str, Any]:
    rng = random.Random(0)
    rows = []
    for i in range(80):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randint(0, len(words)), "great" if i % 2 else "awful")
        rows.append([" ".join(words), str(i % 2)])
    write_tsv(root / "glue" / "SST-2" / "train.tsv", rows[:64], ["sentence", "label"])
    write_tsv(root / "glue" / "SST-2" / "dev.tsv", rows[64:], ["sentence", "label"])
    out = root / "sst2"
    calls = finetune(["--task", "sst2", "--data", str(root / "glue"), "--model", str(root / "run"), "--out", str(out),
                      "--lr", "2e-3", "--batch-size", "8"], epochs=4)  # 32 steps: both labels get predicted
    return {"out": out, "dev": rows[64:], "outputs": calls[0][1]}


@pytest.fixture(scope="module")
def stsb(root: Path) -> dict[str, Any]:
    rng = random.Random(1)
    rows = [[str(i), "g", "f", "y", "0", "s", "s", " ".join(rng.choices(WORDS, k=rng.randint(2, 5))),
             " ".join(rng.choices(WORDS, k=rng.randint(2, 5))), f"{rng.uniform(0, 5):.3f}"] for i in range(40)]
    write_tsv(root / "glue" / "STS-B" / "train.tsv", rows[:32], STSB_COLS)
    write_tsv(root / "glue" / "STS-B" / "dev.tsv", rows[32:], STSB_COLS)
    out = root / "stsb"
    calls = finetune(["--task", "stsb", "--data", str(root / "glue"), "--model", str(root / "run"), "--out", str(out)])
    return {"out": out, "dev": [(r[7], r[8], float(r[9])) for r in rows[32:]], "outputs": calls[0][1],
            "glue_dev": root / "glue" / "STS-B" / "dev.tsv"}


@pytest.fixture(scope="module")
def conll(root: Path) -> dict[str, Any]:
    sent = [("peter", "B-PER"), ("blackburn", "I-PER"), ("sat", "O"), ("in", "O"), ("london", "B-LOC"), (".", "O")]
    lines = [f"{w} NNP B-NP {t}" for w, t in sent] + [""]
    data = root / "conll" / "conll2003"
    data.mkdir(parents=True)
    (data / "eng.train").write_text("\n".join(lines * 24) + "\n")
    dev = ["john won the game in paris .", "mary sat", "peter blackburn sat in france ."]
    dev_tags = [["B-PER", "O", "O", "O", "O", "B-LOC", "O"], ["B-PER", "O"], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]]
    (data / "eng.testa").write_text("".join("".join(f"{w} X X {t}\n" for w, t in zip(s.split(), tags)) + "\n"
                                            for s, tags in zip(dev, dev_tags)))
    (data / "eng.testb").write_text((data / "eng.testa").read_text())
    out = root / "ner"
    calls = finetune(["--task", "conll2003", "--data", str(data.parent), "--model", str(root / "run"), "--out", str(out),
                      "--lr", "3e-3", "--batch-size", "8"])
    return {"out": out, "dev": dev, "gold": dev_tags, "feats": calls[0][0], "outputs": calls[0][1],
            "conll_dev": data / "eng.testa"}


def _squad(path: Path, v2: bool, repeat: int) -> Path:
    qas = [{"id": "q1", "question": "where was john born ?", "answers": [{"text": "paris", "answer_start": 17}]},
           {"id": "q2", "question": "where was mary born ?", "answers": [{"text": "london", "answer_start": 42}]},
           {"id": "q3", "question": "who won the game ?", "answers": [{"text": "the team", "answer_start": 51}]}]
    if v2:
        qas.append({"id": "q4", "question": "where was peter born ?", "answers": [], "is_impossible": True})
    paragraphs = [{"context": CONTEXT, "qas": [dict(q, id=f"{q['id']}_{r}") for q in qas]} for r in range(repeat)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "x", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


def _finetune_squad(root: Path, task: str, head: str) -> dict[str, Any]:
    v2 = task == "squad2"
    data = root / f"sq_{task}"
    names = ("train-v2.0.json", "dev-v2.0.json") if v2 else ("train-v1.1.json", "dev-v1.1.json")
    _squad(data / names[0], v2, repeat=8)
    dev = _squad(data / names[1], v2, repeat=1)
    out = root / f"{task}_{head}"
    # 24 positions: the context is cut into several windows (doc_stride 6), as a long SQuAD paragraph is
    calls = finetune(["--task", task, "--data", str(data), "--model", str(root / "run"), "--out", str(out),
                      "--max-seq-len", "24", "--doc-stride", "6", "--qa-head", head, "--batch-size", "8"])
    return {"out": out, "dev": dev, "v2": v2, "feats": calls[0][0], "outputs": calls[0][1]}


@pytest.fixture(scope="module")
def squad1(root: Path) -> dict[str, Any]:
    return _finetune_squad(root, "squad1", "simple")


@pytest.fixture(scope="module")
def squad2(root: Path) -> dict[str, Any]:
    return _finetune_squad(root, "squad2", "electra")


# ---------------------------------------------------------------------------------------------------
# predictions = the evaluation's


def test_classification_equals_the_evaluation(sst2: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "dev.txt").write_text("\n".join(r[0] for r in sst2["dev"]) + "\n\n")  # a blank line is skipped
    got = predict(capsys, "--model", str(sst2["out"] / "model"), "--input", str(tmp_path / "dev.txt"))
    assert len(got) == len(sst2["dev"])
    for res, logits in zip(got, sst2["outputs"]):
        probs = softmax(logits)
        assert res["label"] == str(int(np.argmax(logits))) and set(res) == {"label", "score", "probs"}
        assert res["probs"] == pytest.approx({"0": probs[0], "1": probs[1]}, abs=1e-9)
        assert res["score"] == res["probs"][res["label"]] == max(res["probs"].values())
    assert {g["label"] for g in got} == {"0", "1"}
    results = json.loads((sst2["out"] / "results.json").read_text())
    accuracy = 100.0 * np.mean([res["label"] == r[1] for res, r in zip(got, sst2["dev"])])
    assert accuracy == pytest.approx(results["summary"]["accuracy"]["median"])
    # OUT itself, the texts on the command line, --top-k, --batch-size 1 and --device cpu: the same predictions
    texts = [r[0] for r in sst2["dev"][:5]]
    again = predict(capsys, "--model", str(sst2["out"]), *texts, "--top-k", "1", "--batch-size", "1", "--device", "cpu")
    for a, b in zip(again, got):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert list(a["probs"]) == [a["label"]]


def test_jsonl_ids_stdin_and_output_file(sst2: dict, tmp_path: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"id": "a", "text": sst2["dev"][0][0]}, {"sentence": sst2["dev"][1][0]}, {"id": 7, "text": "great"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "preds.jsonl"
    out.write_text("an earlier run's predictions\n")  # replaced whole
    capsys.readouterr()
    assert electra_main(["predict", "--model", str(sst2["out"] / "model"), "--input", str(tmp_path / "in.jsonl"),
                         "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "3 predictions written to" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "preds.jsonl"]  # no temporary file left
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("id") for r in written] == ["a", None, 7] and list(written[0]) == ["id", "label", "score", "probs"]
    for source in ("".join(json.dumps(r) + "\n" for r in rows), "\n".join(r.get("text") or r["sentence"] for r in rows)):
        # JSON Lines or plain lines, told apart by the first character; read as bytes (UTF-8) when stdin has them
        for stdin in (io.StringIO(source), io.TextIOWrapper(io.BytesIO(source.encode()))):
            monkeypatch.setattr(sys, "stdin", stdin)
            got = predict(capsys, "--model", str(sst2["out"] / "model"), "--input", "-")
            assert [g["label"] for g in got] == [w["label"] for w in written]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9\n")))
    assert "stdin is not UTF-8 text" in error(capsys, "--model", str(sst2["out"] / "model"), "--input", "-")


def test_regression_pairs_equal_the_evaluation(stsb: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = str(stsb["out"] / "model")
    meta = json.loads((stsb["out"] / "model" / "finetune.json").read_text())
    assert meta["segments"] == 2 and meta["target_range"] == [0.0, 5.0] and meta["text_columns"] == ["sentence1", "sentence2"]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "id": i}) + "\n"
                                                for i, (a, b, _) in enumerate(stsb["dev"])))
    got = predict(capsys, "--model", model, "--input", str(tmp_path / "dev.jsonl"))
    assert [g["id"] for g in got] == list(range(len(stsb["dev"])))
    assert [g["score"] for g in got] == pytest.approx(stsb["outputs"], abs=1e-9)
    results = json.loads((stsb["out"] / "results.json").read_text())
    assert 100.0 * spearman([d[2] for d in stsb["dev"]], [g["score"] for g in got]) == pytest.approx(
        results["summary"]["spearman"]["median"])
    # the same pairs as `A ||| B` arguments, as tab-separated lines, and GLUE's own dev.tsv (a header: its columns)
    pairs = [f"{a} ||| {b}" for a, b, _ in stsb["dev"][:3]]
    (tmp_path / "dev.txt").write_text("".join(f"{a}\t{b}\n" for a, b, _ in stsb["dev"][:3]))
    for argv in (pairs, ["--input", str(tmp_path / "dev.txt")]):
        assert [g["score"] for g in predict(capsys, "--model", model, *argv)] == pytest.approx(
            stsb["outputs"][:3], abs=1e-5)
    glue_dev = predict(capsys, "--model", model, "--input", str(stsb["glue_dev"]))
    assert [g["score"] for g in glue_dev] == pytest.approx(stsb["outputs"], abs=1e-5)
    assert [g["id"] for g in glue_dev] == [str(i) for i in range(32, 40)]  # its `index` column


def test_tagging_equals_the_evaluation(conll: dict, tmp_path: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    model = conll["out"] / "model"
    labels = json.loads((model / "finetune.json").read_text())["labels"]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps({"tokens": s.split()}) + "\n" for s in conll["dev"]))
    got = predict(capsys, "--model", str(model), "--input", str(tmp_path / "dev.jsonl"))
    for res, sent, f, out in zip(got, conll["dev"], conll["feats"], conll["outputs"]):
        assert res["tokens"] == sent.split() and len(res["tags"]) == len(res["tokens"])
        assert res["tags"] == [labels[out[p]] for p in f["word_pos"]]
        assert res["entities"] == [{"text": " ".join(res["tokens"][s:e + 1]), "type": t, "start": s, "end": e + 1}
                                   for s, e, t in sorted(spans(res["tags"]))]
    results = json.loads((conll["out"] / "results.json").read_text())
    assert span_f1(conll["gold"], [g["tags"] for g in got])["f1"] == pytest.approx(results["summary"]["f1"]["median"])
    # plain lines (whitespace-separated words), JSON {"text"} and arguments give the same tags
    (tmp_path / "dev.txt").write_text("\n".join(conll["dev"]) + "\n")
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in conll["dev"]))
    (tmp_path / "dev.conll").write_bytes(conll["conll_dev"].read_bytes())
    (tmp_path / "text.ndjson").write_bytes((tmp_path / "text.jsonl").read_bytes())
    for argv in (["--input", str(tmp_path / "dev.txt")], ["--input", str(tmp_path / "text.jsonl")], conll["dev"],
                 ["--input", str(tmp_path / "text.ndjson")],
                 ["--input", str(tmp_path / "dev.conll")],  # the CoNLL file finetune scored: its first column
                 ["--input", str(conll["conll_dev"])],  # eng.testa: no suffix to go by, it looks like CoNLL
                 ["--input", str(tmp_path / "dev.txt"), "--format", "lines"]):
        assert [g["tags"] for g in predict(capsys, "--model", str(model), *argv)] == [g["tags"] for g in got]
    capsys.readouterr()
    assert electra_main(["predict", "--model", str(model), "--input", str(conll["conll_dev"])]) == 0
    assert "eng.testa read as a CoNLL file (its first column: the words)" in capsys.readouterr().err
    # sentences of equal length, one per line, are not a CoNLL file; words one per line in blank-line blocks are
    for text, words in (("peter sat in paris .\nmary won the game .\n", [5, 5]),
                        ("peter\nsat\nin\nparis\n\nmary\nwon\nthe\ngame\n", [4, 4])):
        (tmp_path / "x.txt").write_text(text)
        assert [len(g["tokens"]) for g in predict(capsys, "--model", str(model), "--input", str(tmp_path / "x.txt"))] == words
    # stdin with a byte-order mark is still JSON Lines
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf" + (tmp_path / "text.jsonl").read_bytes())))
    assert [g["tags"] for g in predict(capsys, "--model", str(model), "--input", "-")] == [g["tags"] for g in got]


def test_tagging_words_past_max_seq_len_are_o(conll: dict, capsys: pytest.CaptureFixture) -> None:
    long = " ".join(["peter", "blackburn", "sat", "in", "london"] * 30)  # 150 words, max_seq_len 128
    capsys.readouterr()
    assert electra_main(["predict", "--model", str(conll["out"] / "model"), long]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert len(res["tags"]) == 150 and res["tags"][126:] == ["O"] * 24  # 126 pieces fit between [CLS] and [SEP]
    assert ("note: 24 word(s) in 1 sentence(s) past max_seq_len 128 (or without a word piece) are tagged 'O' "
            "(first: input 1)") in captured.err
    assert all(e["end"] <= 126 for e in res["entities"])


def test_tagging_models_from_older_files_and_other_tag_sets(conll: dict, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "model"
    shutil.copytree(conll["out"] / "model", model)
    meta = json.loads((model / "finetune.json").read_text())
    long = " ".join(["peter", "blackburn", "sat", "in", "london"] * 30)
    want = predict(capsys, "--model", str(conll["out"] / "model"), *conll["dev"], long)
    # before "config" / "chunk_tags" / "fallback_tag": max_seq_len 256 capped at 128, chunks read from the labels
    old = {k: v for k, v in meta.items() if k not in ("config", "chunk_tags", "fallback_tag")}
    (model / "finetune.json").write_text(json.dumps(old))
    assert predict(capsys, "--model", str(model), *conll["dev"], long) == want
    # a tag set without chunks (POS tags): no entities, and a cut-off word gets the saved fallback tag
    pos = dict(old, labels=["DT", "NN", "NNP", "VBD"], chunk_tags=False, fallback_tag="NN")
    (model / "finetune.json").write_text(json.dumps(pos))
    got = predict(capsys, "--model", str(model), *conll["dev"], long)
    rename = dict(zip(meta["labels"], pos["labels"]))
    assert [g["tags"] for g in got[:-1]] == [[rename[t] for t in w["tags"]] for w in want[:-1]]
    assert all("entities" not in g for g in got) and got[-1]["tags"][126:] == ["NN"] * 24


@pytest.mark.parametrize("which", ["squad1", "squad2"])
def test_qa_equals_the_evaluation(which: str, request: pytest.FixtureRequest, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    squad = request.getfixturevalue(which)
    model = squad["out"] / "model"
    got = predict(capsys, "--model", str(model), "--input", str(squad["dev"]))  # the SQuAD dev file itself
    exs = [QAExample(q["id"], q["question"], p["context"], [], False)
           for p in json.loads(squad["dev"].read_text())["data"][0]["paragraphs"] for q in p["qas"]]
    vocab = model / "vocab.txt"
    cfg = FinetuneConfig(**json.loads((model / "finetune.json").read_text())["config"])
    offsets = [c.offsets for c in encode_contexts(exs, load_tokenizer(vocab))]
    expected = extract_answers(exs, offsets, squad["feats"], squad["outputs"], cfg, squad["v2"])
    assert [g["id"] for g in got] == [e.qid for e in exs]
    assert {g["id"]: g["answer"] for g in got} == expected
    for g in got:
        if g["answer"]:
            assert CONTEXT[g["start"]:g["end"]] == g["answer"] and math.isfinite(g["score"])
        else:
            assert set(g) == {"id", "answer"}
    golds = {e.qid: [a["text"] for p in json.loads(squad["dev"].read_text())["data"][0]["paragraphs"]
                     for q in p["qas"] if q["id"] == e.qid for a in q["answers"]] for e in exs}
    results = json.loads((squad["out"] / "results.json").read_text())
    assert squad_scores(golds, expected, squad["v2"])["f1"] == pytest.approx(results["summary"]["f1"]["median"])
    # question ||| context on the command line, and JSON Lines
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": exs[0].question, "context": CONTEXT, "id": "x"}) + "\n")
    for argv in ([f"{exs[0].question} ||| {CONTEXT}"], ["--input", str(tmp_path / "q.jsonl")]):
        res = predict(capsys, "--model", str(model), *argv)[0]
        assert res["answer"] == expected[exs[0].qid] and res["answer"] in CONTEXT


def test_squad2_no_answer_follows_the_saved_threshold(squad2: dict, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "model"
    shutil.copytree(squad2["out"] / "model", model)
    meta = json.loads((model / "finetune.json").read_text())
    for threshold, answered in ((1e9, True), (-1e9, False)):  # the impossible logit is never / always above it
        meta["config"]["null_threshold"] = threshold
        (model / "finetune.json").write_text(json.dumps(meta))
        got = predict(capsys, "--model", str(model), "--input", str(squad2["dev"]))
        assert all(bool(g["answer"]) == answered for g in got), got


# ---------------------------------------------------------------------------------------------------
# a model saved directly: an independent computation, target_range, an older finetune.json


def _saved_regression(tmp_path: Path, meta: dict, target_range: tuple[float, float]) -> tuple[Path, FinetuneModel]:
    vocab = write_vocab(tmp_path / "vocab.txt")
    mcfg = ModelConfig(vocab_size=len(vocab.read_text().split()), hidden_size=16, embedding_size=16, num_layers=1,
                       num_heads=2, intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    model = FinetuneModel(Encoder(mcfg), RegressionHead(16, 0.1, target_range))
    torch.nn.init.normal_(model.head.out.weight, std=0.5)
    base = {"task": "regress", "head": "regression", "labels": None, "model_config": mcfg.__dict__,
            "lowercase": True, "strip_accents": None}
    save_model(model, tmp_path / "out" / "model", base | meta, vocab)
    return tmp_path / "out", model.eval()


def test_regression_target_range_against_the_model_run_directly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, model = _saved_regression(tmp_path, {"segments": 1, "target_range": [1.0, 10.0],
                                              "config": FinetuneConfig(max_seq_len=12).to_dict()}, (1.0, 10.0))
    texts = ["the cat sat on the mat and the dog sat on the mat too", "a film"]
    got = [g["score"] for g in predict(capsys, "--model", str(out), *texts)]
    vocab = out / "model" / "vocab.txt"
    sp = SpecialIds.from_vocab(vocab)
    feats = encode_examples([Example((t,), None, "") for t in texts], load_tokenizer(vocab), sp.cls, sp.sep, 12)
    assert len(feats[0]["input_ids"]) == 12  # cut to the saved max_seq_len
    with torch.no_grad():
        raw = torch.stack([model(collate([f], sp.pad)) for f in feats]).flatten()
    assert got == pytest.approx((raw * 9.0 + 1.0).tolist(), abs=1e-5)  # [0, 1] mapped back onto 1-10
    assert min(got) != max(got)


def test_older_finetune_json_falls_back_to_defaults(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No config / segments / target_range: 0-5 (STS-B), max_seq_len 128 capped at the 64 positions, and one or
    two texts per row as each row gives them."""
    out, model = _saved_regression(tmp_path, {}, (0.0, 5.0))
    long = " ".join(["cat"] * 100)
    got = [g["score"] for g in predict(capsys, "--model", str(out), "a film ||| the movie", "a film", long)]
    vocab = out / "model" / "vocab.txt"
    sp = SpecialIds.from_vocab(vocab)
    tok = load_tokenizer(vocab)
    feats = encode_examples([Example(("a film", "the movie"), None, "")], tok, sp.cls, sp.sep, 64) + \
        encode_examples([Example((t,), None, "") for t in ("a film", long)], tok, sp.cls, sp.sep, 64)
    with torch.no_grad():
        raw = torch.stack([model(collate([f], sp.pad)) for f in feats]).flatten()
    assert got == pytest.approx((raw * 5.0).tolist(), abs=1e-5)


# ---------------------------------------------------------------------------------------------------
# errors: one line, exit status 2


def test_model_folder_errors(sst2: dict, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "does not exist" in error(capsys, "--model", str(tmp_path / "nope"), "text")
    assert "`electra pretrain` run (or checkpoint) folder, not a fine-tuned model" in error(
        capsys, "--model", str(root / "run"), "text")
    assert "is a file" in error(capsys, "--model", str(root / "run" / "config.json"), "text")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "electra"}))
    assert "Hugging Face model folder" in error(capsys, "--model", str(hf), "text")
    (tmp_path / "empty").mkdir()
    assert "holds no finetune.json" in error(capsys, "--model", str(tmp_path / "empty"), "text")
    several = tmp_path / "several"
    for task in ("sst2", "rte"):
        shutil.copytree(sst2["out"] / "model", several / task / "model")
    assert "several tasks" in error(capsys, "--model", str(several), "text")
    # finetune.json and model.safetensors from different runs: three labels for a two-output head
    broken = tmp_path / "broken"
    shutil.copytree(sst2["out"] / "model", broken)
    meta = json.loads((broken / "finetune.json").read_text())
    (broken / "finetune.json").write_text(json.dumps(meta | {"labels": ["a", "b", "c"]}))
    msg = error(capsys, "--model", str(broken), "text")
    assert "head.out.weight has shape (2, 32), finetune.json implies (3, 32)" in msg
    (broken / "finetune.json").write_text("{not json")
    assert "unreadable" in error(capsys, "--model", str(broken), "text")
    (broken / "finetune.json").write_text(json.dumps(meta | {"head": "pooler"}))
    assert "no known 'head'" in error(capsys, "--model", str(broken), "text")
    (broken / "finetune.json").write_text(json.dumps(meta | {"target_range": [5, 0]}))
    assert "bad 'labels'" in error(capsys, "--model", str(broken), "text")
    (broken / "finetune.json").write_text(json.dumps(meta))
    (broken / "model.safetensors").write_bytes((broken / "model.safetensors").read_bytes()[:100])
    assert "model.safetensors is missing or damaged" in error(capsys, "--model", str(broken), "text")


def test_input_errors(sst2: dict, stsb: dict, squad1: dict, conll: dict, tmp_path: Path,
                      capsys: pytest.CaptureFixture) -> None:
    pair, single = str(stsb["out"] / "model"), str(sst2["out"] / "model")
    assert "input 2: the stsb model takes a pair of texts per example (TEXT A ||| TEXT B), this one has 1" in error(
        capsys, "--model", pair, "a ||| b", "only one")
    assert "takes one text per example, this one has 2" in error(capsys, "--model", single, "a ||| b")
    qa, tagger = str(squad1["out"] / "model"), str(conll["out"] / "model")
    files = [  # (model, file name, content, the error's words)
        (single, "two.txt", "a film\tthe movie\n", "two.txt line 1: the sst2 model takes one text"),
        (single, "header.csv", "review,label\na film,1\n", "header.csv line 2: no text; expected 'sentence' (it has ['review', 'label'])"),
        (single, "shape.jsonl", '{"text": "a"}\n["a"]\n', "shape.jsonl line 2: a JSON list, expected an object"),
        (single, "notext.jsonl", '{"txt": "a"}\n', "notext.jsonl line 1: no text"),
        (pair, "bad.jsonl", '{"text": "a", "text_pair": "b"}\n\n{"text": "a", oops}\n', "bad.jsonl line 3: not a JSON object"),
        (pair, "one.jsonl", '{"text": "a"}\n', "one.jsonl line 1: the stsb model takes a pair"),
        (pair, "num.jsonl", '{"text": 3, "text_pair": "b"}\n', "'text' is int, expected a string"),
        (qa, "q.jsonl", '{"question": "who ?"}\n',
         "q.jsonl line 1: a question-answering model takes a question and its context"),
        (tagger, "t.jsonl", '{"tokens": "peter sat"}\n', "'tokens' must be a list of strings"),
    ]
    for model, name, content, words in files:
        (tmp_path / name).write_text(content)
        assert words in error(capsys, "--model", model, "--input", str(tmp_path / name))
    assert "takes a question and its context" in error(capsys, "--model", qa, "who won ?")
    (tmp_path / "blank.txt").write_text("\n  \n")
    assert "has no examples" in error(capsys, "--model", single, "--input", str(tmp_path / "blank.txt"))
    assert "missing.txt is missing" in error(capsys, "--model", single, "--input", str(tmp_path / "missing.txt"))
    (tmp_path / "one.txt").write_text("a good film\n")
    assert "has the header only ('a good film'); --format lines" in error(capsys, "--model", single, "--input",
                                                                          str(tmp_path / "one.txt"), "--format", "table")
    assert "SQuAD file" in error(capsys, "--model", single, "--input", str(squad1["dev"]))
    assert "--format conll is for tagging models" in error(capsys, "--model", single, "--input", str(squad1["dev"]),
                                                           "--format", "conll")
    assert "not both" in error(capsys, "--model", single, "text", "--input", str(tmp_path / "blank.txt"))
    assert "nothing to predict" in error(capsys, "--model", single)
    assert "--top-k is for classification models" in error(capsys, "--model", pair, "--top-k", "2", "a ||| b")
    assert ">= 1" in error(capsys, "--model", single, "--batch-size", "0", "text")
    assert "is a folder" in error(capsys, "--model", single, "text", "--output", str(tmp_path))
    assert "its folder does not exist" in error(capsys, "--model", single, "text", "--output",
                                                str(tmp_path / "no" / "p.jsonl"))
    assert "is the --input file" in error(capsys, "--model", single, "--input", str(tmp_path / "blank.txt"),
                                          "--output", str(tmp_path / "blank.txt"))
    assert "not a device" in error(capsys, "--model", single, "text", "--device", "tpu")
