"""`electra finetune --task classify | regress | tag`: a user's own files (CSV / TSV / JSONL, CoNLL tags)."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from test_finetune_fixtures import make_run

from electra.cli import main as electra_main
from electra.errors import UserError
from electra.finetune import metrics as M
from electra.finetune.config import FinetuneConfig
from electra.finetune.custom import CUSTOM_TASKS, load_custom
from electra.finetune.heads import RegressionHead

FAST = ["--epochs", "6", "--lr", "3e-3", "--layer-decay", "1", "--batch-size", "8", "--threads", "1"]
POS, NEG = ["good movie", "great film", "very good film", "great movie"], ["bad movie", "awful film", "very bad film"]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sentiment_rows(n: int, seed: int) -> list[list[object]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        text = rng.choice(POS if pos else NEG) + (", the man, " if i % 3 else "")  # commas: CSV quoting
        rows.append([f"r{i}", text, "positive" if pos else "negative"])
    return rows


def test_classify_csv_end_to_end(tmp_path: Path) -> None:
    run, data, out = make_run(tmp_path), tmp_path / "mine", tmp_path / "out"
    write_csv(data / "train.csv", ["id", "text", "label"], sentiment_rows(48, 0))
    write_csv(data / "dev.csv", ["id", "text", "label"], sentiment_rows(12, 1))
    test_rows = sentiment_rows(10, 2)
    write_csv(data / "test.csv", ["id", "text", "label"], test_rows)
    assert electra_main(["finetune", "--task", "classify", "--data", str(data), "--model", str(run),
                         "--out", str(out), *FAST]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["labels"] == ["negative", "positive"] and res["main_metric"] == "accuracy"
    assert set(res["summary"]) == {"accuracy", "macro_f1", "test_accuracy", "test_macro_f1"}
    assert res["summary"]["accuracy"]["median"] == 100.0  # a separable toy task
    # the prediction file: the test file's ids, label names, and the same accuracy the run reported
    lines = (out / "test_predictions" / "test.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 11
    pred = dict(line.split("\t") for line in lines[1:])
    assert list(pred) == [r[0] for r in test_rows]
    acc = 100.0 * sum(pred[r[0]] == r[2] for r in test_rows) / len(test_rows)
    assert acc == pytest.approx(res["summary"]["test_accuracy"]["median"])
    meta = json.loads((out / "model" / "finetune.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["segments"] == 1 and meta["text_columns"] == ["text"]
    assert meta["config"]["max_seq_len"] == 128
    # `electra predict` on the test rows (JSON Lines with the file's own column name) gives the written predictions
    write_jsonl(tmp_path / "rows.jsonl", [{"id": r[0], "text": r[1]} for r in test_rows])
    assert electra_main(["predict", "--model", str(out), "--input", str(tmp_path / "rows.jsonl"),
                         "--output", str(tmp_path / "p.jsonl")]) == 0
    got = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert {g["id"]: g["label"] for g in got} == pred


def test_classify_jsonl_pairs_with_columns_and_label_order(tmp_path: Path) -> None:
    run, data, out = make_run(tmp_path), tmp_path / "nli", tmp_path / "out"
    rows = [{"premise": "the cat sat on the mat", "hypothesis": h, "y": y}
            for h, y in [("the cat sat", "yes"), ("the dog sat", "no"), ("a cat sat", "yes")] * 8]
    write_jsonl(data / "train.jsonl", rows)
    write_jsonl(data / "validation.jsonl", rows[:6])  # validation.* is the dev file too
    assert electra_main(["finetune", "--task", "classify", "--data", str(data), "--model", str(run), "--out", str(out),
                         "--label-name", "y", "--labels", "yes,no", "--epochs", "0.5", "--no-save-model"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["labels"] == ["yes", "no"]  # --labels fixes the output order
    cfg = FinetuneConfig(label_name="y", labels="yes,no", text_columns="hypothesis,premise")
    d = load_custom(CUSTOM_TASKS["classify"], data, cfg)
    assert d.columns == ("hypothesis", "premise") and d.train[1].texts == ("the dog sat", "the cat sat on the mat")
    assert [ex.label for ex in d.train[:3]] == [0, 1, 0] and d.test is None
    # with --labels, a dev label outside them is an error; without, a warning and counted as wrong (-1)
    write_jsonl(data / "validation.jsonl", rows[:2] + [{"premise": "a", "hypothesis": "b", "y": "maybe"}])
    with pytest.raises(UserError, match=r"validation.jsonl line 3: label 'maybe' is not one of --labels"):
        load_custom(CUSTOM_TASKS["classify"], data, cfg)
    warned: list[str] = []
    d = load_custom(CUSTOM_TASKS["classify"], data, FinetuneConfig(label_name="y"), warn=warned.append)
    assert d.labels == ["no", "yes"] and [ex.label for ex in d.evals[""]] == [1, 0, -1]
    assert "maybe" in warned[0]


def test_regress_tsv_end_to_end_on_the_targets_scale(tmp_path: Path) -> None:
    run, data, out = make_run(tmp_path), tmp_path / "scores", tmp_path / "out"
    rows = [[t, str(s)] for t, s in [("good film", 90), ("bad film", 10), ("very good film", 100),
                                     ("awful film", 20), ("great movie", 80)] * 6]
    for name in ("train.tsv", "dev.tsv"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text("sentence\tscore\n" + "".join(f"{t}\t{s}\n" for t, s in rows))
    (data / "test.tsv").write_text("sentence\n" + "".join(f"{t}\n" for t, _ in rows[:5]))  # unlabelled
    assert electra_main(["finetune", "--task", "regress", "--data", str(data), "--model", str(run), "--out", str(out),
                         "--label-name", "score", *FAST]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["head"] == "regression" and set(res["summary"]) == {"spearman", "pearson"}  # test unlabelled: not scored
    assert res["summary"]["pearson"]["median"] > 80.0
    meta = json.loads((out / "model" / "finetune.json").read_text())
    assert meta["target_range"] == [10.0, 100.0]
    preds = [float(line.split("\t")[1]) for line in (out / "test_predictions" / "test.tsv").read_text().splitlines()[1:]]
    assert len(preds) == 5 and preds[2] > preds[1] + 30  # predictions on the 10-100 scale, not [0, 1]


def test_regression_head_maps_the_target_range() -> None:
    head = RegressionHead(4, 0.0, (10.0, 20.0))
    pred = torch.tensor([0.0, 0.5, 1.0])
    assert head.predict(pred, {}) == [10.0, 15.0, 20.0]
    losses = head.losses(pred, {"label": torch.tensor([10.0, 20.0, 20.0])})
    assert losses.tolist() == [0.0, 0.25, 0.0]  # (pred - (y - lo) / (hi - lo))^2
    stsb = RegressionHead(4, 0.0)  # STS-B: the original's y / 5
    assert stsb.losses(torch.tensor([0.2]), {"label": torch.tensor([1.0])}).item() == pytest.approx(0.0)


def _conll(sents: list[list[tuple[str, str]]]) -> str:
    return "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sents) + "\n"


def test_tag_task_pos_tags_by_accuracy_and_chunk_tags_by_f1(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    pos = [[("the", "DT"), ("cat", "NN"), ("sat", "VBD")], [("a", "DT"), ("dog", "NN"), ("sat", "VBD")]] * 12
    data = tmp_path / "pos"
    data.mkdir()
    (data / "train.txt").write_text(_conll(pos))
    (data / "dev.txt").write_text(_conll(pos[:4]))
    assert electra_main(["finetune", "--task", "tag", "--data", str(data), "--model", str(run),
                         "--out", str(tmp_path / "o1"), *FAST]) == 0
    res = json.loads((tmp_path / "o1" / "results.json").read_text())
    assert res["main_metric"] == "accuracy" and res["labels"] == ["DT", "NN", "VBD"]  # no BIOES for POS tags
    assert res["summary"]["accuracy"]["median"] == 100.0
    meta = json.loads((tmp_path / "o1" / "model" / "finetune.json").read_text())
    assert meta["chunk_tags"] is False and meta["tag_encoding"] == "asis" and meta["fallback_tag"] in ("DT", "NN", "VBD")
    assert electra_main(["predict", "--model", str(tmp_path / "o1"), "--output", str(tmp_path / "p.jsonl"),
                         "the cat sat"]) == 0
    got = json.loads((tmp_path / "p.jsonl").read_text())
    assert got["tags"] == ["DT", "NN", "VBD"] and "entities" not in got  # POS tags: no chunks to list
    ner = [[("john", "B-PER"), ("sat", "O"), ("in", "O"), ("paris", "B-LOC")]] * 16
    data2 = tmp_path / "ner"
    data2.mkdir()
    (data2 / "train.txt").write_text(_conll(ner))
    (data2 / "dev.txt").write_text(_conll(ner[:3]))
    (data2 / "test.txt").write_text(_conll(ner[:2]))
    assert electra_main(["finetune", "--task", "tag", "--data", str(data2), "--model", str(run),
                         "--out", str(tmp_path / "o2"), "--epochs", "0.5", "--no-save-model"]) == 0
    res = json.loads((tmp_path / "o2" / "results.json").read_text())
    assert res["main_metric"] == "f1" and res["labels"] == ["O", "S-LOC", "S-PER"] and "test_f1" in res["summary"]


def test_macro_f1_by_hand_and_against_sklearn() -> None:
    # classes 0: tp 1 fp 1 fn 1 -> 0.5; 1: tp 1 fp 0 fn 1 -> 2/3; 2: tp 0 fp 1 fn 0 -> 0
    gold, pred = [0, 0, 1, 1], [0, 2, 1, 0]
    assert M.f1_macro(gold, pred) == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    sk = pytest.importorskip("sklearn.metrics")
    rng = random.Random(3)
    for _ in range(5):
        g = [rng.randrange(4) for _ in range(40)]
        p = [rng.randrange(4) for _ in range(40)]
        assert M.f1_macro(g, p) == pytest.approx(sk.f1_score(g, p, average="macro"))


def test_numeric_labels_sort_as_numbers(tmp_path: Path) -> None:
    data = tmp_path / "d"
    write_csv(data / "train.csv", ["text", "label"], [["a", 10], ["b", 2], ["c", 1], ["d", 2]])
    write_csv(data / "dev.csv", ["text", "label"], [["a", 1]])
    assert load_custom(CUSTOM_TASKS["classify"], data, FinetuneConfig()).labels == ["1", "2", "10"]


@pytest.mark.parametrize("files, options, message", [
    ({}, [], r"has no train.csv, train.tsv, train.jsonl or train.parquet"),
    ({"train.csv": "text,label\n"}, [], r"train.csv has no examples"),
    ({"train.csv": "text,label\na,x\nb,y\n", "dev.csv": "text,label\n\n"}, [], r"dev.csv has no examples"),
    ({"train.csv": "text,label\na,x\nb,y\n", "train.tsv": "text\tlabel\n"}, [], r"has train.csv and train.tsv; keep one"),
    ({"train.csv": "body,label\na,x\nb,y\n", "dev.csv": "body,label\na,x\n"}, [],
     r"train.csv: no text column among \['body', 'label'\]; name it .* --text-columns"),
    ({"train.csv": "text,label\na,x\nb,y,z\n", "dev.csv": "text,label\na,x\n"}, [],
     r"train.csv line 3: 3 columns, the header has 2"),
    ({"train.csv": "text,label\na,x\nb,x\n", "dev.csv": "text,label\na,x\n"}, [],
     r"every example has the label 'x'; a classifier needs two classes"),
    ({"train.csv": "text,label\na,x\nb,y\n"}, [], r"has no dev.csv, dev.tsv, dev.jsonl or dev.parquet \(or validation.\*\)"),
    ({"train.csv": "text,label\na,x\nb,y\n", "dev.csv": "text\na\n"}, [], r"dev.csv: no 'label' column; the dev file"),
    ({"train.jsonl": '{"text": "a", "label": 1}\n[1]\n'}, [], r"train.jsonl line 2: a JSON list, expected an object"),
    ({"train.jsonl": '{"text": 5, "label": 1}\n'}, [], r"train.jsonl line 1: column 'text' is a int, not text"),
    ({"train.csv": "text,label\na,x\nb,y\n", "dev.csv": "text,label\na,x\n"}, ["regress"],
     r"train.csv line 2: target 'x' is not a number"),
    ({"train.csv": "text,label\na,3\nb,3\n", "dev.csv": "text,label\na,3\n"}, ["regress"],
     r"every target is 3; regression needs targets that vary"),
    ({"train.csv": "text,y\na,x\nb,y\n", "dev.csv": "text,y\na,x\n"}, [], r"train.csv: no 'label' column; .*--label-name"),
])
def test_bad_files_are_one_line_errors(tmp_path: Path, files: dict[str, str], options: list[str], message: str) -> None:
    data = tmp_path / "d"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    task = CUSTOM_TASKS[options[0] if options else "classify"]
    with pytest.raises(UserError, match=message):
        load_custom(task, data, FinetuneConfig())


def test_cli_checks_custom_files_before_loading_the_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "d"
    write_csv(data / "train.csv", ["text", "label"], [["a", "x"], ["b", "y"]])
    # the model folder does not exist: the data error must come first, as one line
    assert electra_main(["finetune", "--task", "classify", "--data", str(data), "--model", str(tmp_path / "nope"),
                         "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no dev.csv" in err[0]


def test_classify_on_sst2_as_csv_equals_the_sst2_task(tmp_path: Path) -> None:
    """The same rows as GLUE's SST-2 folder and as a user's CSV give the same training, to the last bit."""
    from safetensors.torch import load_file
    from test_finetune_fixtures import write_tsv

    run = make_run(tmp_path)
    binary = lambda rows: [[text, "1" if label == "positive" else "0"] for _, text, label in rows]
    train, dev = binary(sentiment_rows(40, 4)), binary(sentiment_rows(10, 5))
    glue = tmp_path / "glue"
    write_tsv(glue / "SST-2" / "train.tsv", train, header=["sentence", "label"])
    write_tsv(glue / "SST-2" / "dev.tsv", dev, header=["sentence", "label"])
    mine = tmp_path / "mine"
    write_csv(mine / "train.csv", ["sentence", "label"], train)
    write_csv(mine / "dev.csv", ["sentence", "label"], dev)
    for task, data in (("sst2", glue), ("classify", mine)):
        assert electra_main(["finetune", "--task", task, "--data", str(data), "--model", str(run),
                             "--out", str(tmp_path / task), "--epochs", "2", "--batch-size", "8", "--threads", "1"]) == 0
    a, b = (json.loads((tmp_path / t / "results.json").read_text()) for t in ("sst2", "classify"))
    assert a["labels"] == b["labels"] == ["0", "1"]
    assert a["runs"][0]["train"]["final_loss"] == b["runs"][0]["train"]["final_loss"]
    assert a["summary"]["accuracy"] == b["summary"]["accuracy"]
    wa, wb = (load_file(str(tmp_path / t / "model" / "model.safetensors")) for t in ("sst2", "classify"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_tag_task_names_its_missing_file(tmp_path: Path) -> None:
    from electra.finetune.tagging import TAGGING_TASKS, check_tagging

    with pytest.raises(UserError, match=r"^tag: .*mine/train.txt is missing; pass --data as the folder holding train.txt$"):
        check_tagging(TAGGING_TASKS["tag"], tmp_path / "mine", FinetuneConfig())


def test_what_users_files_look_like(tmp_path: Path) -> None:
    """Headers in other cases, pandas' 1.0 labels, Kaggle's `Id`, a document in one CSV cell, an empty test label
    column, and the warnings for empty texts and repeated ids."""
    data = tmp_path / "d"
    long = "good " * 40_000  # 200 KB in one cell: past the csv module's default field limit
    write_csv(data / "train.csv", ["Text", "Label"], [["good film", "1.0"], ["bad film", "0.0"], [long, "1.0"], ["", "0.0"]])
    write_csv(data / "dev.csv", ["text", "label", "idx"], [["good", "1", "0"], ["bad", "0", "0"]])  # never predicted
    write_csv(data / "test.csv", ["Id", "TEXT", "label"], [["3000", "good", ""], ["3001", "bad", ""], ["3001", "x", ""]])
    warned: list[str] = []
    d = load_custom(CUSTOM_TASKS["classify"], data, FinetuneConfig(), warn=warned.append)
    assert d.columns == ("Text",) and d.labels == ["0", "1"]  # 1.0 in training and 1 in dev: one class
    assert [ex.label for ex in d.evals[""]] == [1, 0] and len(d.train[2].texts[0]) > 100_000
    assert "test_" not in d.evals and d.test is not None and [ex.guid for ex in d.test] == ["3000", "3001", "3001"]
    assert any("1 row(s) with an empty text (first: line 5)" in w for w in warned)
    repeats = f"warning: {data / 'test.csv'}: the 'Id' column repeats ids (first: '3001'); the predictions file keeps"
    assert [w for w in warned if "repeats ids" in w] == [f"{repeats} them, in the file's order"]


@pytest.mark.parametrize("content, message", [
    ('{"text": "a", "label": ["0", "1"]}\n{"text": "b", "label": "1"}\n', r"line 1: the label is a JSON list; give one label"),
    ("text;label\na;x\nb;y\n", r"train.csv: its header is one column, 'text;label'; is the file separated by semicolons"),
    ("text;label\na;x,1\n", r"line 2: 2 columns, the header has 1 .*separated by semicolons"),
    ("text,label\na,x\nb,\n", r"line 3: no 'label' value \(other rows have one\)"),
])
def test_more_bad_files(tmp_path: Path, content: str, message: str) -> None:
    data = tmp_path / "d"
    data.mkdir()
    name = "train.jsonl" if content.startswith("{") else "train.csv"
    (data / name).write_text(content)
    (data / "dev.csv").write_text("text,label\na,x\n")
    with pytest.raises(UserError, match=message):
        load_custom(CUSTOM_TASKS["classify"], data, FinetuneConfig())


def test_labels_sort_as_text_unless_plain_numbers(tmp_path: Path) -> None:
    data = tmp_path / "d"
    for labels, order in ((["③", "①", "②"], ["①", "②", "③"]), (["2.5", "10", "-1"], ["-1", "2.5", "10"])):
        write_csv(data / "train.csv", ["text", "label"], [[f"t{i}", x] for i, x in enumerate(labels)])
        write_csv(data / "dev.csv", ["text", "label"], [["a", labels[0]]])
        assert load_custom(CUSTOM_TASKS["classify"], data, FinetuneConfig()).labels == order


def test_tag_words_with_no_break_spaces_and_an_unlabelled_test_file(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from electra.finetune.tagging import fields

    assert fields("10\u00a0000\tNUM\tO\r") == ["10\u00a0000", "NUM", "O"] and fields("peter NNP  B-PER") == ["peter", "NNP", "B-PER"]
    run, data, out = make_run(tmp_path), tmp_path / "ner", tmp_path / "out"
    data.mkdir()
    (data / "train.txt").write_text(_conll([[("john", "B-PER"), ("sat", "O"), ("in", "O"), ("paris", "B-LOC")]] * 16))
    (data / "dev.txt").write_text(_conll([[("mary", "B-PER"), ("sat", "O")]]))
    (data / "test.txt").write_text("peter\nsat\n\n-DOCSTART-\n\nmary\nwon\n")  # words only
    assert electra_main(["finetune", "--task", "tag", "--data", str(data), "--model", str(run), "--out", str(out),
                         *FAST]) == 0
    res = json.loads((out / "results.json").read_text())
    assert "test_f1" not in res["summary"] and res["test_predictions"] == ["test.txt"]
    blocks = (out / "test_predictions" / "test.txt").read_text().strip().split("\n\n")
    assert [[line.split("\t")[0] for line in b.split("\n")] for b in blocks] == [["peter", "sat"], ["mary", "won"]]
    assert all(line.split("\t")[1] in res["labels"] for b in blocks for line in b.split("\n"))
    # re-running into the same --out replaces the prediction file (it is finetune's own); words cut off are noted
    (data / "dev.txt").write_text(_conll([[("mary", "B-PER"), ("sat", "O")] * 6]))
    capsys.readouterr()
    assert electra_main(["finetune", "--task", "tag", "--data", str(data), "--model", str(run), "--out", str(out),
                         "--epochs", "0.5", "--max-seq-len", "8"]) == 0
    assert "note: [tag] 6 word(s) in 1 sentence(s) past max_seq_len 8 (or without a word piece) are tagged 'O' " \
           "(first: dev.txt sentence 1); a longer --max-seq-len keeps them" in capsys.readouterr().out


def test_regression_predictions_keep_every_digit(tmp_path: Path) -> None:
    run, data, out = make_run(tmp_path), tmp_path / "prices", tmp_path / "out"
    rows = [["good film", 998294421504.0], ["bad film", 1.5]] * 8
    write_csv(data / "train.csv", ["text", "label"], rows)
    write_csv(data / "dev.csv", ["text", "label"], rows[:4])
    write_csv(data / "test.csv", ["text"], [["good film"]])
    assert electra_main(["finetune", "--task", "regress", "--data", str(data), "--model", str(run), "--out", str(out),
                         "--epochs", "0.5"]) == 0
    value = (out / "test_predictions" / "test.tsv").read_text().splitlines()[1].split("\t")[1]
    assert "e" not in value and float(value) == pytest.approx(float(value), abs=0) and "." in value


def test_saved_tensors_get_the_umask_permissions(tmp_path: Path) -> None:
    import os

    from electra.checkpoint import save_tensors

    old = os.umask(0o022)
    try:
        save_tensors({"a": torch.zeros(2)}, tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644  # safetensors alone writes 0600


def test_a_hub_parquet_dataset_trains_as_its_csv_and_predict_reads_parquet(tmp_path: Path) -> None:
    """A Hugging Face Hub dataset's layout (train in two shards, validation, test; integer labels) gives the same
    training as the same rows in CSV; `electra predict --input test.parquet` reproduces the test predictions."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from safetensors.torch import load_file

    run = make_run(tmp_path)
    binary = lambda rows: [[text, 1 if label == "positive" else 0] for _, text, label in rows]
    train, dev, test = binary(sentiment_rows(40, 4)), binary(sentiment_rows(10, 5)), binary(sentiment_rows(6, 6))
    hub = tmp_path / "hub" / "data"
    hub.mkdir(parents=True)
    table = lambda rows: pa.table({"text": [r[0] for r in rows], "label": pa.array([r[1] for r in rows], pa.int64())})
    pq.write_table(table(train[:25]), hub / "train-00000-of-00002.parquet")
    pq.write_table(table(train[25:]), hub / "train-00001-of-00002.parquet")
    pq.write_table(table(dev), hub / "validation-00000-of-00001.parquet")
    pq.write_table(table([[t, -1] for t, _ in test]), hub / "test-00000-of-00001.parquet")  # the Hub's "no label"
    mine = tmp_path / "mine"
    write_csv(mine / "train.csv", ["text", "label"], train)
    write_csv(mine / "dev.csv", ["text", "label"], dev)
    for name, data in (("hub", hub), ("csv", mine)):
        assert electra_main(["finetune", "--task", "classify", "--data", str(data), "--model", str(run),
                             "--out", str(tmp_path / f"out-{name}"), "--epochs", "2", "--batch-size", "8",
                             "--threads", "1"]) == 0
    a, b = (json.loads((tmp_path / f"out-{n}" / "results.json").read_text()) for n in ("hub", "csv"))
    assert a["labels"] == b["labels"] == ["0", "1"] and a["runs"][0]["train"]["final_loss"] == b["runs"][0]["train"]["final_loss"]
    wa, wb = (load_file(str(tmp_path / f"out-{n}" / "model" / "model.safetensors")) for n in ("hub", "csv"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not any(k.startswith("test_") for k in a["summary"])  # -1 everywhere: an unlabelled test split
    written = (tmp_path / "out-hub" / "test_predictions" / "test.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in written] == [str(i) for i in range(6)]  # no id column: row numbers
    assert electra_main(["predict", "--model", str(tmp_path / "out-hub"), "--input",
                         str(hub / "test-00000-of-00001.parquet"), "--output", str(tmp_path / "p.jsonl")]) == 0
    got = [json.loads(line)["label"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert got == [line.split("\t")[1] for line in written]


def test_a_corrupt_parquet_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("pyarrow")
    data = tmp_path / "mine"
    data.mkdir()
    (data / "train.parquet").write_bytes(b"PAR1" + b"\x00" * 40)
    write_csv(data / "dev.csv", ["text", "label"], [["good", "1"]])
    rc = electra_main(["finetune", "--task", "classify", "--data", str(data), "--model", str(tmp_path / "m"),
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "train.parquet: not a readable Parquet file" in err and len(err.splitlines()) == 1
