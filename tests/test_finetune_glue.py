"""GLUE: readers on the real shared files and on format-faithful written ones, errors, pair encoding,
both sentence orders, leaderboard files, and a tiny end-to-end fine-tune through the CLI."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_finetune_fixtures import SHARED, make_run, write_tsv, write_vocab

from electra.cli import main as electra_main
from electra.data.tokenizer import SpecialIds, load_tokenizer
from electra.errors import UserError
from electra.finetune.config import FinetuneConfig
from electra.finetune.glue import (
    GLUE_TASKS,
    encode_examples,
    glue_job,
    load_glue,
    read_split,
    truncate_pair,
    write_test_predictions,
)

GLUE = SHARED / "glue"


@pytest.mark.parametrize("task,n_train,n_dev,n_test", [
    ("cola", 8551, 1043, 1063), ("sst2", 67349, 872, 1821), ("mrpc", 3668, 408, 1725), ("stsb", 5749, 1500, 1379)])
def test_real_glue_files(task: str, n_train: int, n_dev: int, n_test: int) -> None:
    if not (GLUE / GLUE_TASKS[task].folder).exists():
        pytest.skip("shared GLUE data not present")
    d = load_glue(GLUE_TASKS[task], GLUE)
    assert (len(d.train), len(d.dev["dev"]), len(next(iter(d.test.values())))) == (n_train, n_dev, n_test)
    assert all(ex.label is not None for ex in d.train + d.dev["dev"])
    assert all(ex.label is None for ex in next(iter(d.test.values())))
    if task == "cola":  # no header: the first line is an example
        assert d.train[0].texts == ("Our friends won't buy this analysis, let alone the next one we propose.",)
        assert d.train[0].label == 1
    if task == "mrpc":  # BOM on the header; quotes kept verbatim
        assert d.train[0].label == 1 and d.train[0].texts[0].startswith('Amrozi accused his brother, whom he called "the')
    if task == "stsb":
        assert d.train[0].label == 5.0 and d.train[1].label == 3.8
    assert [ex.guid for ex in next(iter(d.test.values()))[:3]] == ["0", "1", "2"]


def test_real_glue_task_folder_directly() -> None:
    if not (GLUE / "SST-2").exists():
        pytest.skip("shared GLUE data not present")
    d = load_glue(GLUE_TASKS["sst2"], GLUE / "SST-2", max_train=10, max_eval=5)
    assert len(d.train) == 10 and len(d.dev["dev"]) == 5


def write_unavailable_tasks(root: Path) -> Path:
    """QQP, MNLI, QNLI and RTE in the published layouts (headers, quotes inside fields)."""
    write_tsv(root / "QQP" / "train.tsv", [["1", "11", "12", 'What is "AI"?', "What's AI?", "1"],
                                           ["2", "13", "14", "Who is he?", "Where is it?", "0"]],
              ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"])
    write_tsv(root / "QQP" / "dev.tsv", [["7", "1", "2", "a?", "b?", "0"]],
              ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"])
    write_tsv(root / "QQP" / "test.tsv", [["0", "a?", "b?"], ["1", "c?", "d?"]], ["id", "question1", "question2"])
    mnli_cols = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                 "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
    row = ["0", "31193", "31193n", "government", "( ( x ) )", "( y )", "(ROOT x)", "(ROOT y)",
           'He said "yes" .', "He agreed ."]
    write_tsv(root / "MNLI" / "train.tsv", [row + ["entailment", "entailment"], row + ["neutral", "neutral"]],
              mnli_cols + ["label1", "gold_label"])
    dev_cols = mnli_cols + ["label1", "label2", "label3", "label4", "label5", "gold_label"]
    write_tsv(root / "MNLI" / "dev_matched.tsv", [row + ["contradiction"] * 6], dev_cols)
    write_tsv(root / "MNLI" / "dev_mismatched.tsv", [row + ["neutral"] * 6, row + ["entailment"] * 6], dev_cols)
    write_tsv(root / "MNLI" / "test_matched.tsv", [row], mnli_cols)
    write_tsv(root / "MNLI" / "test_mismatched.tsv", [row, row], mnli_cols)
    for name, cols in (("QNLI", ["index", "question", "sentence", "label"]),
                       ("RTE", ["index", "sentence1", "sentence2", "label"])):
        write_tsv(root / name / "train.tsv", [["0", "Who sat?", "The cat sat.", "entailment"],
                                              ["1", "What?", 'A "dog".', "not_entailment"]], cols)
        write_tsv(root / name / "dev.tsv", [["0", "Who?", "A man.", "not_entailment"]], cols)
        write_tsv(root / name / "test.tsv", [["0", "Who?", "A man."]], cols[:3])
    return root


def test_written_qqp_mnli_qnli_rte(tmp_path: Path) -> None:
    root = write_unavailable_tasks(tmp_path)
    qqp = load_glue(GLUE_TASKS["qqp"], root)
    assert qqp.train[0].texts == ('What is "AI"?', "What's AI?") and [e.label for e in qqp.train] == [1, 0]
    assert [e.guid for e in qqp.test["QQP"]] == ["0", "1"]
    mnli = load_glue(GLUE_TASKS["mnli"], root)
    labels = GLUE_TASKS["mnli"].labels
    assert [labels[e.label] for e in mnli.train] == ["entailment", "neutral"]
    assert set(mnli.dev) == {"matched", "mismatched"} and len(mnli.dev["mismatched"]) == 2
    assert set(mnli.test) == {"MNLI-m", "MNLI-mm"} and len(mnli.test["MNLI-mm"]) == 2
    assert mnli.train[0].texts == ('He said "yes" .', "He agreed .")
    for task in ("qnli", "rte"):
        d = load_glue(GLUE_TASKS[task], root)
        assert [e.label for e in d.train] == [0, 1] and d.dev["dev"][0].label == 1 and len(d.test) == 1


def test_bad_glue_input_is_a_one_line_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="task folder .*RTE is missing"):
        load_glue(GLUE_TASKS["rte"], tmp_path)
    cols = ["index", "sentence1", "sentence2", "label"]
    write_tsv(tmp_path / "RTE" / "train.tsv", [["0", "a", "b", "maybe"]], cols)
    with pytest.raises(UserError, match=r"train.tsv line 2: label 'maybe' is not one of") as e:
        load_glue(GLUE_TASKS["rte"], tmp_path)
    assert "\n" not in str(e.value)
    write_tsv(tmp_path / "RTE" / "train.tsv", [["0", "a", "entailment"]], ["index", "sentence1", "label"])
    with pytest.raises(UserError, match="expected a column named 'sentence2'"):
        load_glue(GLUE_TASKS["rte"], tmp_path)
    write_tsv(tmp_path / "RTE" / "train.tsv", [["0", "a", "b", "entailment"], ["1", "a"]], cols)
    with pytest.raises(UserError, match="line 3: 2 tab-separated columns"):
        load_glue(GLUE_TASKS["rte"], tmp_path)
    write_tsv(tmp_path / "STS-B" / "train.tsv", [["0", "a", "b", "high"]], ["index", "sentence1", "sentence2", "score"])
    with pytest.raises(UserError, match="not a number"):
        read_split(GLUE_TASKS["stsb"], tmp_path / "STS-B", GLUE_TASKS["stsb"].train)


def test_truncate_pair_longest_first() -> None:
    a, b = truncate_pair(list(range(10)), list(range(100, 104)), 8)
    assert a == [0, 1, 2, 3] and b == [100, 101, 102, 103]
    a, b = truncate_pair([1, 2, 3], [4, 5, 6], 4)
    assert a == [1, 2] and b == [4, 5]


def _tok(tmp_path: Path):
    vocab = write_vocab(tmp_path / "vocab.txt")
    return load_tokenizer(vocab), SpecialIds.from_vocab(vocab)


def test_pair_encoding_and_both_orders(tmp_path: Path) -> None:
    tok, sp = _tok(tmp_path)
    cols = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(tmp_path / "MRPC" / "train.tsv", [["1", "1", "2", "the cat sat", "a dog"]], cols, bom=True)
    write_tsv(tmp_path / "MRPC" / "dev.tsv", [["0", "1", "2", "the cat", "a dog"]], cols, bom=True)
    ids = lambda s: tok.encode(s, add_special_tokens=False).ids
    cat, dog = ids("the cat sat"), ids("a dog")
    job = glue_job(GLUE_TASKS["mrpc"], tmp_path, FinetuneConfig(max_seq_len=32), tok, sp.cls, sp.sep)
    assert [f["input_ids"] for f in job.train] == [[sp.cls] + cat + [sp.sep] + dog + [sp.sep],
                                                   [sp.cls] + dog + [sp.sep] + cat + [sp.sep]]
    assert job.train[0]["segment_ids"] == [0] * (len(cat) + 2) + [1] * (len(dog) + 1)
    assert [f["label"] for f in job.train] == [1, 1]
    job = glue_job(GLUE_TASKS["mrpc"], tmp_path, FinetuneConfig(max_seq_len=32, double_unordered=False), tok,
                   sp.cls, sp.sep)
    assert len(job.train) == 1
    # single sentences: [CLS] A [SEP], truncated to max_seq_len - 2
    from electra.finetune.glue import Example
    f = encode_examples([Example(("the cat sat on the mat",), 0, "0")], tok, sp.cls, sp.sep, 5)[0]
    assert f["input_ids"] == [sp.cls] + ids("the cat sat") + [sp.sep] and f["segment_ids"] == [0] * 5


def test_leaderboard_files(tmp_path: Path) -> None:
    p = write_test_predictions(GLUE_TASKS["mnli"], "MNLI-mm", ["0", "1"], [1, 2], tmp_path)
    assert p.name == "MNLI-mm.tsv" and p.read_text() == "index\tprediction\n0\tentailment\n1\tneutral\n"
    p = write_test_predictions(GLUE_TASKS["sst2"], "SST-2", ["0"], [1], tmp_path)
    assert p.read_text() == "index\tprediction\n0\t1\n"
    p = write_test_predictions(GLUE_TASKS["stsb"], "STS-B", ["0", "1"], [3.14159, 5.7], tmp_path)
    assert p.read_text() == "index\tprediction\n0\t3.142\n1\t5.000\n"


def _learnable_sst2(root: Path, n: int = 96) -> Path:
    rng = random.Random(0)
    rows, dev = [], []
    for i in range(n + 32):
        label = i % 2
        words = [rng.choice(["the", "a", "movie", "film", "was", "very", "is"]) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randint(0, len(words)), "great" if label else "awful")
        (rows if i < n else dev).append([" ".join(words), str(label)])
    write_tsv(root / "SST-2" / "train.tsv", rows, ["sentence", "label"])
    write_tsv(root / "SST-2" / "dev.tsv", dev, ["sentence", "label"])
    write_tsv(root / "SST-2" / "test.tsv", [[str(i), r[0]] for i, r in enumerate(dev[:5])], ["index", "sentence"])
    return root


def test_a_one_class_classifier_is_called_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Every dev example given the same label: a warning names the label (the SST-2-stuck-at-50% failure); a
    classifier that predicts both classes, and a regression task, get none."""
    tok, sp = _tok(tmp_path)
    job = glue_job(GLUE_TASKS["sst2"], _learnable_sst2(tmp_path / "glue"), FinetuneConfig(max_seq_len=32), tok,
                   sp.cls, sp.sep)
    scores = job.evaluate(lambda feats: [[0.2, 0.9]] * len(feats))
    assert scores["accuracy"] == 50.0
    out = capsys.readouterr().out
    assert "warning: [sst2] every dev prediction (32) is '1'" in out and len(out.strip().splitlines()) == 1
    job.evaluate(lambda feats: [[0.2, 0.9] if i % 3 else [0.9, 0.2] for i in range(len(feats))])
    assert capsys.readouterr().out == ""
    from electra.finetune.glue import one_class_warning
    assert one_class_warning("stsb", GLUE_TASKS["stsb"].labels, "dev", [2.5, 2.5, 2.5]) is None


def test_fine_tuning_schedule_and_layer_scales(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every update's rates, as the optimizer holds them: lr x warmup (10% of the steps, a fraction of a step
    included, as the original) x linear decay to 0, times each group's layer-wise scale (decay 0.8 per layer below
    the top)."""
    from electra.finetune import train as ft_train
    seen, set_lr = [], ft_train.set_lr

    def record(opt, lr):
        set_lr(opt, lr)
        seen.append([(g["lr"], g.get("lr_scale", 1.0)) for g in opt.param_groups])
    monkeypatch.setattr(ft_train, "set_lr", record)
    run = make_run(tmp_path)
    data = _learnable_sst2(tmp_path / "glue")
    assert electra_main(["finetune", "--task", "sst2", "--data", str(data), "--model", str(run), "--out",
                         str(tmp_path / "out"), "--epochs", "9", "--batch-size", "8", "--lr", "2e-3",
                         "--layer-decay", "0.8", "--threads", "1", "--no-save-model"]) == 0
    T = 96 // 8 * 9
    assert len(seen) == T
    for t, groups in enumerate(seen):
        base = 2e-3 * min(1.0, t / (T * 0.1)) * (1 - t / T)  # warmup over 10.8 steps
        for lr, scale in groups:
            assert lr == pytest.approx(base * scale, rel=1e-9, abs=1e-15), (t, lr, scale)
    scales = sorted({scale for _, scale in seen[0]})
    assert scales[-1] == 1.0 and len(scales) >= 3 and scales[0] == pytest.approx(0.8 ** round(math.log(scales[0], 0.8)))


def test_end_to_end_sst2_learns_and_saves(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    data = _learnable_sst2(tmp_path / "glue")
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    assert electra_main(["finetune", "--task", "sst2", "--data", str(data), "--model", str(run), "--out", str(out),
                         "--seeds", "2", "--epochs", "12", "--lr", "2e-3", "--layer-decay", "1", "--threads", "1"]) == 0
    assert torch.get_num_threads() == threads  # --threads holds for the command, not for its caller
    res = json.loads((out / "results.json").read_text())
    assert res["task"] == "sst2" and [r["seed"] for r in res["runs"]] == [1, 2]
    # the saved model is the seed with the best dev score (ties: the first)
    scores = [r["metrics"]["accuracy"] for r in res["runs"]]
    assert res["best_seed"] == res["runs"][scores.index(max(scores))]["seed"]
    assert res["config"]["lr"] == 2e-3 and res["config"]["epochs"] == 12 and res["config"]["batch_size"] == 32
    assert res["runs"][0]["train"]["steps"] == 96 // 32 * 12
    assert res["summary"]["accuracy"]["median"] >= 90.0  # "great" vs "awful" is easy to learn
    assert res["summary"]["accuracy"]["n"] == 2
    keys = load_file(str(out / "model" / "model.safetensors"))
    assert keys["head.out.weight"].shape == (2, 32) and keys["head.out.bias"].shape == (2,)
    assert "encoder.embeddings.word.weight" in keys and "encoder.blocks.1.mlp.fc.weight" in keys
    meta = json.loads((out / "model" / "finetune.json").read_text())
    assert meta["task"] == "sst2" and meta["head"] == "classification" and meta["labels"] == ["0", "1"]
    assert meta["model_config"]["hidden_size"] == 32 and meta["lowercase"] is True
    assert (out / "model" / "vocab.txt").read_text() == (run / "vocab.txt").read_text()
    lines = (out / "test_predictions" / "SST-2.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 6


def test_end_to_end_several_tasks_random_init_and_regression(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    root = write_unavailable_tasks(tmp_path / "glue")
    cols = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
    rows = [[str(i), "g", "f", "y", "0", "s", "s", "a man plays", "the man plays guitar", f"{i % 6:.3f}"]
            for i in range(8)]
    write_tsv(root / "STS-B" / "train.tsv", rows, cols)
    write_tsv(root / "STS-B" / "dev.tsv", rows, cols)
    out = tmp_path / "out"
    assert electra_main(["finetune", "--task", "rte,mnli,stsb", "--data", str(root), "--model", str(run),
                         "--out", str(out), "--epochs", "1", "--random-init", "--no-save-model"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["tasks"]) == {"rte", "mnli", "stsb"} and res["glue_score"] is None
    assert res["tasks"]["rte"]["random_init"] is True
    assert res["tasks"]["rte"]["pretraining"] is None  # its shape only: no pre-training went into it
    assert set(res["tasks"]["mnli"]["runs"][0]["metrics"]) == {"accuracy", "mismatched_accuracy"}
    assert set(res["tasks"]["stsb"]["runs"][0]["metrics"]) == {"spearman", "pearson"}
    assert res["tasks"]["stsb"]["config"]["epochs"] == 1
    assert (out / "mnli" / "test_predictions" / "MNLI-m.tsv").exists()
    assert (out / "mnli" / "test_predictions" / "MNLI-mm.tsv").exists()
    assert not (out / "rte" / "model").exists()


def test_random_init_changes_the_encoder(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    data = _learnable_sst2(tmp_path / "glue", n=32)
    common = ["finetune", "--task", "sst2", "--data", str(data), "--model", str(run), "--epochs", "0.001"]
    assert electra_main(common + ["--out", str(tmp_path / "a")]) == 0
    assert electra_main(common + ["--out", str(tmp_path / "b"), "--random-init"]) == 0
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))["encoder.blocks.0.attn.qkv.weight"]
    b = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))["encoder.blocks.0.attn.qkv.weight"]
    assert a.shape == b.shape and not (a - b).abs().max() < 1e-3


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notamodel").mkdir()
    data = _learnable_sst2(tmp_path / "glue", n=32)
    rc = electra_main(["finetune", "--task", "sst2", "--data", str(data), "--model", str(tmp_path / "notamodel"),
                       "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "notamodel" in err and len(err.splitlines()) == 1
    assert electra_main(["finetune", "--task", "wnli", "--data", "x", "--model", "y", "--out", "z"]) == 2
    assert "unknown task 'wnli'" in capsys.readouterr().err
    assert electra_main(["finetune", "--task", "sst2", "--data", "x", "--model", "y", "--out", "z", "--lrr", "1"]) == 2
    assert "--lrr" in capsys.readouterr().err
    run = make_run(tmp_path)
    rc = electra_main(["finetune", "--task", "rte", "--data", str(data), "--model", str(run), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "RTE is missing" in err and len(err.splitlines()) == 1


def test_end_to_end_from_a_hugging_face_folder(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf = tmp_path / "hf"
    hf.mkdir()
    vocab = write_vocab(hf / "vocab.txt")
    cfg = transformers.ElectraConfig(vocab_size=len(vocab.read_text().splitlines()), embedding_size=32,
                                     hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=128)
    transformers.ElectraForPreTraining(cfg).save_pretrained(hf)
    data = _learnable_sst2(tmp_path / "glue")
    out = tmp_path / "out"
    assert electra_main(["finetune", "--task", "sst2", "--data", str(data), "--model", str(hf), "--out", str(out),
                         "--epochs", "12", "--lr", "2e-3", "--layer-decay", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["summary"]["accuracy"]["median"] >= 90.0 and res["model_config"]["num_layers"] == 2
    assert load_file(str(out / "model" / "model.safetensors"))["head.out.weight"].shape == (2, 32)


def test_all_eight_tasks_give_a_glue_score(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    root = write_unavailable_tasks(tmp_path / "glue")
    _learnable_sst2(root, n=8)
    rows = [["src", str(i % 2), "", "the cat sat"] for i in range(6)]
    write_tsv(root / "CoLA" / "train.tsv", rows)  # no header, as the published CoLA
    write_tsv(root / "CoLA" / "dev.tsv", rows)
    cols = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(root / "MRPC" / "train.tsv", [[str(i % 2), "1", "2", "a dog", "the cat"] for i in range(4)], cols, bom=True)
    write_tsv(root / "MRPC" / "dev.tsv", [["1", "1", "2", "a dog", "the cat"]], cols, bom=True)
    cols = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
    rows = [[str(i), "g", "f", "y", "0", "s", "s", "a man", "the man", f"{i}.000"] for i in range(4)]
    write_tsv(root / "STS-B" / "train.tsv", rows, cols)
    write_tsv(root / "STS-B" / "dev.tsv", rows, cols)
    out = tmp_path / "out"
    assert electra_main(["finetune", "--task", "glue", "--data", str(root), "--model", str(run), "--out", str(out),
                         "--epochs", "0.01", "--no-save-model"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["tasks"]) == list(GLUE_TASKS)
    from electra.finetune.metrics import glue_score
    medians = {t: {m: s["median"] for m, s in r["summary"].items()} for t, r in res["tasks"].items()}
    assert res["glue_score"] == pytest.approx(glue_score(medians))
    assert res["glue_score"] == pytest.approx(sum([medians["cola"]["mcc"], medians["stsb"]["spearman"]] + [
        medians[t]["accuracy"] for t in ("sst2", "mrpc", "qqp", "mnli", "qnli", "rte")]) / 8)


def test_stsb_score_must_be_a_finite_number_from_0_to_5(tmp_path: Path) -> None:
    cols = ["index", "sentence1", "sentence2", "score"]
    task = GLUE_TASKS["stsb"]
    for bad in ("nan", "inf", "-inf", "-0.5", "5.2"):
        write_tsv(tmp_path / "STS-B" / "train.tsv", [["0", "a", "b", "1.0"], ["1", "a", "b", bad]], cols)
        with pytest.raises(UserError, match=rf"train.tsv line 3: score '{bad}' is not a number from 0 to 5") as e:
            read_split(task, tmp_path / "STS-B", task.train)
        assert "\n" not in str(e.value)
    write_tsv(tmp_path / "STS-B" / "train.tsv", [["0", "a", "b", "0"], ["1", "a", "b", "5.000"]], cols)
    assert [ex.label for ex in read_split(task, tmp_path / "STS-B", task.train)] == [0.0, 5.0]  # the ends are in


def test_a_dev_file_without_examples_is_refused(tmp_path: Path) -> None:
    cols = ["index", "sentence1", "sentence2", "label"]
    write_tsv(tmp_path / "RTE" / "train.tsv", [["0", "a", "b", "entailment"]], cols)
    write_tsv(tmp_path / "RTE" / "dev.tsv", [], cols)  # a header only
    with pytest.raises(UserError, match=r"RTE/dev.tsv has no examples; give the task's labelled dev file$"):
        load_glue(GLUE_TASKS["rte"], tmp_path)
    from electra.finetune.glue import check_glue
    with pytest.raises(UserError, match="dev.tsv has no examples"):
        check_glue(GLUE_TASKS["rte"], tmp_path)


def test_tsv_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "SST-2" / "train.tsv", [["good", "1"]], ["sentence", "label"])
    path.write_bytes(path.read_bytes() + "caf\u00e9\t0\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"train.tsv line 3 is not UTF-8 text \(invalid continuation byte at byte "
                                        r"\d+\); convert the file to UTF-8"):
        load_glue(GLUE_TASKS["sst2"], tmp_path)


def _cli_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """The one stderr line of a finetune run that must fail with exit status 2."""
    assert electra_main(["finetune"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("electra finetune: error: ")
    return err


def test_out_is_checked_before_the_model_is_loaded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A file, a path under a file, the data or the model folder as --out: refused at once (with no model at
    --model: the check comes first), not with a NotADirectoryError when the results are saved."""
    data = _learnable_sst2(tmp_path / "glue", n=8)
    (tmp_path / "file").write_text("x")
    common = ["--task", "sst2", "--data", str(data), "--model", str(tmp_path / "nomodel")]
    err = _cli_error(capsys, common + ["--out", str(tmp_path / "file")])
    assert f"--out {tmp_path / 'file'} is a file; give a folder" in err
    err = _cli_error(capsys, common + ["--out", str(tmp_path / "file" / "sub" / "out")])
    assert f"is under {tmp_path / 'file'}, which is a file" in err
    assert "is the --data folder" in _cli_error(capsys, common + ["--out", str(data)])
    # several tasks: OUT/<task> must be a folder too
    (tmp_path / "multi").mkdir()
    (tmp_path / "multi" / "sst2").write_text("x")
    err = _cli_error(capsys, ["--task", "sst2,rte", "--data", str(data), "--model", "m",
                              "--out", str(tmp_path / "multi")])
    assert "multi/sst2 is a file" in err
    run = make_run(tmp_path)
    common = ["--task", "sst2", "--data", str(data), "--model", str(run)]
    assert "is the --model folder" in _cli_error(capsys, common + ["--out", str(run)])
    assert "results replace" in _cli_error(capsys, ["--task", "sst2", "--data", str(data), "--model",
                                                    str(tmp_path / "ft" / "model"), "--out", str(tmp_path / "ft")])
    # the pre-training run above a --model checkpoint; the task folder a GLUE root resolves to
    step = next((run / "checkpoints").iterdir())
    err = _cli_error(capsys, ["--task", "sst2", "--data", str(data), "--model", str(step), "--out", str(run)])
    assert f"--out {run} holds --model {step}" in err
    err = _cli_error(capsys, common + ["--out", str(run / "checkpoints")])
    assert f"--out {run / 'checkpoints'} is inside the --model folder" in err
    err = _cli_error(capsys, common + ["--out", str(data / "SST-2")])
    assert f"--out {data / 'SST-2'} is sst2's task folder under --data" in err
    assert not (tmp_path / "ft").exists() and sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "config.json", "tokenizer.json", "vocab.txt"]
    assert sorted(p.name for p in (data / "SST-2").iterdir()) == ["dev.tsv", "test.tsv", "train.tsv"]


def test_every_task_is_checked_before_any_trains(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """sst2,mrpc without MRPC's folder (or with an empty MRPC dev file) fails before SST-2 is trained and
    written; so does a single task with an empty dev file, before its model is loaded."""
    data = _learnable_sst2(tmp_path / "glue", n=8)
    out = tmp_path / "out"
    common = ["--task", "sst2,mrpc", "--data", str(data), "--model", str(tmp_path / "nomodel"), "--out", str(out)]
    assert "MRPC is missing" in _cli_error(capsys, common)
    cols = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(data / "MRPC" / "train.tsv", [["1", "1", "2", "a dog", "the cat"]], cols, bom=True)
    write_tsv(data / "MRPC" / "dev.tsv", [], cols, bom=True)
    assert "MRPC/dev.tsv has no examples" in _cli_error(capsys, common)
    write_tsv(data / "SST-2" / "dev.tsv", [], ["sentence", "label"])
    assert "SST-2/dev.tsv has no examples" in _cli_error(capsys, common[:1] + ["sst2"] + common[2:])
    assert not out.exists()


def test_glue_run_zips_a_leaderboard_submission(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """All eight tasks with test files, GLUE's diagnostic set and WNLI: one zip with the server's eleven files at
    its top level, AX predicted by the MNLI model, WNLI the majority class of its training set."""
    import zipfile

    from electra.finetune.submission import SUBMISSION_FILES
    run = make_run(tmp_path)
    root = write_unavailable_tasks(tmp_path / "glue")
    _learnable_sst2(root, n=8)
    rows = [["src", str(i % 2), "", "the cat sat"] for i in range(6)]
    write_tsv(root / "CoLA" / "train.tsv", rows)
    write_tsv(root / "CoLA" / "dev.tsv", rows)
    write_tsv(root / "CoLA" / "test.tsv", [["0", "the cat"], ["1", "sat the"]], ["index", "sentence"])
    cols = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(root / "MRPC" / "train.tsv", [[str(i % 2), "1", "2", "a dog", "the cat"] for i in range(4)], cols)
    write_tsv(root / "MRPC" / "dev.tsv", [["1", "1", "2", "a dog", "the cat"]], cols)
    write_tsv(root / "MRPC" / "test.tsv", [["0", "1", "2", "a dog", "a cat"]], ["index"] + cols[1:])
    cols = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
    rows = [[str(i), "g", "f", "y", "0", "s", "s", "a man", "the man", f"{i}.000"] for i in range(4)]
    write_tsv(root / "STS-B" / "train.tsv", rows, cols)
    write_tsv(root / "STS-B" / "dev.tsv", rows, cols)
    write_tsv(root / "STS-B" / "test.tsv", [r[:-1] for r in rows[:3]], cols[:-1])
    write_tsv(root / "diagnostic" / "diagnostic.tsv", [[str(i), "A cat.", "An animal."] for i in range(4)],
              ["index", "sentence1", "sentence2"])
    wnli = ["index", "sentence1", "sentence2", "label"]
    write_tsv(root / "WNLI" / "train.tsv", [[str(i), "a", "b", "1" if i % 3 else "0"] for i in range(6)], wnli)
    write_tsv(root / "WNLI" / "test.tsv", [[str(i), "a", "b"] for i in range(3)], wnli[:3])
    out = tmp_path / "out"
    assert electra_main(["finetune", "--task", "glue", "--data", str(root), "--model", str(run), "--out", str(out),
                         "--epochs", "0.01", "--no-save-model"]) == 0
    assert f"GLUE leaderboard submission: {out / 'glue_submission.zip'} (11 of 11 files)" in capsys.readouterr().out
    with zipfile.ZipFile(out / "glue_submission.zip") as z:
        assert sorted(z.namelist()) == sorted(f"{s}.tsv" for s in SUBMISSION_FILES)
        files = {n: z.read(n).decode().splitlines() for n in z.namelist()}
    assert all(lines[0] == "index\tprediction" for lines in files.values())
    assert files["WNLI.tsv"][1:] == ["0\t1", "1\t1", "2\t1"]  # "1" is 4 of WNLI's 6 training labels
    ax = [line.split("\t") for line in files["AX.tsv"][1:]]
    assert [i for i, _ in ax] == ["0", "1", "2", "3"] and {p for _, p in ax} <= set(GLUE_TASKS["mnli"].labels)
    assert files["AX.tsv"] == (out / "mnli" / "test_predictions" / "AX.tsv").read_text().splitlines()
    assert files["SST-2.tsv"] == (out / "sst2" / "test_predictions" / "SST-2.tsv").read_text().splitlines()
    assert len(files["STS-B.tsv"]) == 4 and len(files["QQP.tsv"]) == 3 and len(files["MNLI-mm.tsv"]) == 3
    # a run of two tasks zips what it has, and names what the server would still need
    assert electra_main(["finetune", "--task", "sst2,rte", "--data", str(root), "--model", str(run), "--out",
                         str(out), "--epochs", "0.01", "--no-save-model", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "(3 of 11 files; without AX, CoLA, MNLI-m, MNLI-mm, MRPC, QNLI, QQP, STS-B, which the server needs)" in printed
    with zipfile.ZipFile(out / "glue_submission.zip") as z:
        assert sorted(z.namelist()) == ["RTE.tsv", "SST-2.tsv", "WNLI.tsv"]


def test_a_bad_wnli_file_stops_a_glue_run_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _learnable_sst2(write_unavailable_tasks(tmp_path / "glue"), n=8)
    write_tsv(root / "WNLI" / "train.tsv", [["0", "a", "b", "1"]], ["index", "sentence1", "sentence2", "lable"])
    write_tsv(root / "WNLI" / "test.tsv", [["0", "a", "b"]], ["index", "sentence1", "sentence2"])
    rc = electra_main(["finetune", "--task", "sst2,rte", "--data", str(root), "--model", str(tmp_path / "nomodel"),
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "WNLI/train.tsv: expected a column named 'label'" in err and len(err.splitlines()) == 1
