"""`electra status RUN`: progress, ETA, the last training and held-out records (as metrics.jsonl has them) and the
health alerts still active in train.log; one-line errors for what is not a run.

    python -m pytest tests/test_status.py -q
"""
from __future__ import annotations

import json

from conftest import tiny_overrides

from electra.cli import main
from electra.status import run_status


def test_status_of_a_run_says_what_its_files_say(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
                 *tiny_overrides(max_steps=4, eval_every=2, save_every=2, log_every=2)]) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    last_train = [r for r in records if "train/loss" in r][-1]
    last_eval = [r for r in records if "eval/loss" in r][-1]
    capsys.readouterr()
    assert main(["status", str(run), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["step"] == s["max_steps"] == 4 and s["checkpoint"] == "step_00000004" and s["eta_seconds"] == 0
    assert s["train"]["loss"] == last_train["train/loss"] and s["train"]["disc_acc"] == last_train["train/disc_acc"]
    assert s["eval"]["step"] == last_eval["step"] and s["eval"]["disc_auc"] == last_eval["eval/disc_auc"]
    assert s["tokens_seen"] == 4 * 8 * 32 and s["data"] == str(tiny_dataset) and s["alerts"] == []
    # halfway: the ETA is the steps left at the logged speed
    assert run_status(run)["eta_seconds"] == 0
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["max_steps"] = 8
    (run / "config.json").write_text(json.dumps(cfg))
    s = run_status(run)
    assert abs(s["eta_seconds"] - 4 * 8 * 32 / last_train["train/tokens_per_s"]) < 1e-9
    # alerts: raised and not cleared since
    with (run / "train.log").open("a") as f:
        f.write("health warning at step 3 (silent_discriminator): the discriminator predicts one class\n")
        f.write("health warning at step 3 (generator_too_strong): the generator is right too often\n")
        f.write("health: silent_discriminator cleared at step 4\n")
    assert run_status(run)["alerts"] == ["health warning at step 3 (generator_too_strong): the generator is right too often"]
    assert main(["status", str(run)]) == 0
    text = capsys.readouterr().out
    assert "step 4 / 8 (50%)" in text and "eta " in text and "alert: health warning at step 3 (generator_too_strong)" in text


def test_status_of_what_is_not_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is neither a pre-training run (no config.json) nor a fine-tuning output" in err[0]
    assert main(["status", str(tmp_path / "nowhere")]) == 2 and "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert main(["status", str(tmp_path / "notes.txt")]) == 2 and "is a file" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{not json")
    assert main(["status", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
