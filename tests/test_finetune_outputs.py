"""`electra finetune`: every file read before any training, --out holding one run's results only, and the
checks of a recipe against the model (issue 5's bad-input rules).

    python -m pytest tests/test_finetune_outputs.py -q
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_finetune_fixtures import make_run, write_tsv
from test_finetune_glue import _cli_error, _learnable_sst2, write_unavailable_tasks

from electra.cli import main as electra_main
from electra.errors import UserError
from electra.finetune.glue import GLUE_TASKS, load_glue

FAST = ["--epochs", "1", "--batch-size", "16", "--threads", "1", "--max-seq-len", "32"]


def test_a_later_tasks_training_or_test_file_stops_the_run_before_any_training(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Not only the dev files: a bad label in MRPC's train.tsv, or a test.tsv without its `index` column, fails
    `--task sst2,mrpc` before SST-2 is trained and written (and before the model is even looked for)."""
    data = _learnable_sst2(tmp_path / "glue", n=8)
    cols = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(data / "MRPC" / "train.tsv", [["1", "1", "2", "a dog", "the cat"], ["7", "3", "4", "a", "b"]], cols)
    write_tsv(data / "MRPC" / "dev.tsv", [["0", "1", "2", "a dog", "the cat"]], cols)
    out = tmp_path / "out"
    common = ["--task", "sst2,mrpc", "--data", str(data), "--model", str(tmp_path / "nomodel"), "--out", str(out)]
    assert "MRPC/train.tsv line 3: label '7' is not one of" in _cli_error(capsys, common)
    write_tsv(data / "MRPC" / "train.tsv", [["1", "1", "2", "a dog", "the cat"]], cols)
    write_tsv(data / "MRPC" / "test.tsv", [["0", "1", "2", "a dog", "the cat"]], ["id", "#1 ID", "#2 ID", "#1 String",
                                                                                 "#2 String"])
    assert "MRPC/test.tsv: expected a column named 'index'" in _cli_error(capsys, common)
    assert not out.exists()


def test_a_rerun_leaves_only_its_own_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Re-running into the same --out replaces test_predictions/ and model/ whole, or removes them when this run
    writes none (--no-save-model, no test file), so that nothing contradicts results.json. Results of other
    tasks are refused without --overwrite, which replaces them."""
    run = make_run(tmp_path)
    data = _learnable_sst2(tmp_path / "glue", n=32)
    out = tmp_path / "out"
    common = ["finetune", "--data", str(data), "--model", str(run), "--out", str(out), *FAST]
    assert electra_main([*common, "--task", "sst2"]) == 0
    assert (out / "model" / "model.safetensors").is_file() and (out / "test_predictions" / "SST-2.tsv").is_file()
    (out / "test_predictions" / "CoLA.tsv").write_text("from another run")
    (out / "notes.txt").write_text("the user's")
    assert electra_main([*common, "--task", "sst2"]) == 0
    assert sorted(p.name for p in (out / "test_predictions").iterdir()) == ["SST-2.tsv"]
    (data / "SST-2" / "test.tsv").unlink()
    assert electra_main([*common, "--task", "sst2", "--no-save-model", "--seed", "7"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["notes.txt", "results.json"]
    res = json.loads((out / "results.json").read_text())
    assert res["best_seed"] == 7 and res["test_predictions"] == []
    capsys.readouterr()

    write_unavailable_tasks(data)
    err = _cli_error(capsys, [*common[1:], "--task", "rte"])
    assert "holds the results of --task sst2" in err and "--overwrite" in err
    assert electra_main([*common, "--task", "rte,sst2", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["glue_submission.zip", "notes.txt", "results.json", "rte", "sst2"]
    zipped = (out / "glue_submission.zip").read_bytes()
    assert electra_main([*common, "--task", "sst2,rte"]) == 0  # the same tasks: no --overwrite needed
    assert (out / "glue_submission.zip").read_bytes() == zipped  # the same predictions, the same bytes
    (data / "RTE" / "test.tsv").unlink()  # a run with no leaderboard file to zip: the earlier zip goes
    assert electra_main([*common, "--task", "sst2,rte"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["notes.txt", "results.json", "rte", "sst2"]
    (out / "glue_submission.zip").write_bytes(b"an earlier run's")
    assert electra_main([*common, "--task", "sst2", "--overwrite"]) == 0  # so does --overwrite's clearing
    assert not (out / "glue_submission.zip").exists()


def test_overwrite_and_rerun_never_touch_what_finetune_did_not_write(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """A single-task run writes into OUT itself, so --overwrite leaves an OUT/<task> folder alone (here: the
    user's CoNLL data, given as --data); a model/ without finetune.json, or test_predictions/ with other files,
    is refused rather than replaced."""
    from electra.finetune.outputs import clear_results

    out = tmp_path / "work"
    (out / "conll2003").mkdir(parents=True)
    (out / "conll2003" / "eng.train").write_text("EU B-ORG\n")
    (out / "results.json").write_text(json.dumps({"task": "conll2003"}))
    clear_results(out, keep=[])
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["conll2003"]
    (out / "sst2").mkdir()
    (out / "sst2" / "results.json").write_text("{}")
    (out / "rte").mkdir()
    (out / "rte" / "results.json").write_text("{}")
    (out / "rte" / "train.tsv").write_text("the user's data, given as --data")
    (out / "results.json").write_text(json.dumps({"tasks": {"sst2": {}, "rte": {}}}))
    clear_results(out, keep=[out / "rte"])
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["conll2003", "rte"]

    data = _learnable_sst2(tmp_path / "glue", n=8)
    for sub, make in (("model", "weights.bin"), ("test_predictions", "notes.txt")):
        target = tmp_path / f"o-{sub}" / sub
        target.mkdir(parents=True)
        (target / make).write_text("mine")
        err = _cli_error(capsys, ["--task", "sst2", "--data", str(data), "--model", "m", "--out", str(target.parent)])
        assert "not what `electra finetune` writes there" in err and (target / make).read_text() == "mine"


def test_a_max_seq_len_beyond_the_models_positions_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = make_run(tmp_path)  # 128 positions
    data = _learnable_sst2(tmp_path / "glue", n=8)
    err = _cli_error(capsys, ["--task", "sst2", "--data", str(data), "--model", str(run), "--out",
                              str(tmp_path / "out"), "--max-seq-len", "512"])
    assert "--max-seq-len 512 is longer than the model's 128 positions" in err
    assert not (tmp_path / "out").exists()


def test_an_option_without_its_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _cli_error(capsys, ["--task", "sst2", "--data", "d", "--model", "m", "--out", "o", "--lr", "--epochs", "1"])
    assert "--lr needs a value" in err


def test_qqp_training_rows_that_lost_columns_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """As the reference QQP readers do (the published train.tsv has such rows), with a warning; in the dev file
    such a row is still an error, since skipping it would change the score."""
    root = write_unavailable_tasks(tmp_path)
    cols = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    write_tsv(root / "QQP" / "train.tsv", [["1", "11", "12", "a?", "b?", "1"], ["2", "13", "c?"],
                                           ["3", "15", "16", "d?", "e?", "0"]], cols)
    data = load_glue(GLUE_TASKS["qqp"], root)
    assert [e.texts for e in data.train] == [("a?", "b?"), ("d?", "e?")]
    assert "skipped 1 line(s) with fewer than 6 tab-separated columns (first: line 3)" in capsys.readouterr().out
    write_tsv(root / "QQP" / "dev.tsv", [["7", "1", "2", "a?"]], cols)
    with pytest.raises(UserError, match="dev.tsv line 2: 4 tab-separated columns"):
        load_glue(GLUE_TASKS["qqp"], root)


def test_print_config_is_json_with_every_recipe_field(capsys: pytest.CaptureFixture) -> None:
    import dataclasses

    from electra.finetune.config import FinetuneConfig

    assert electra_main(["finetune", "--print-config", "--lr", "2e-4"]) == 0
    printed = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)  # strict JSON: no NaN
    assert set(printed) == {f.name for f in dataclasses.fields(FinetuneConfig)}
    assert printed["lr"] == 2e-4 and printed["null_threshold"] is None  # the QA head's default
