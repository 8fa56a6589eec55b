"""`electra pretrain` at its edges: a fresh start that fails leaves nothing behind, a stop on an evaluation or
checkpoint step does not repeat them, --print-config shows what the run would use, a finished run re-run keeps
its config, the notes and warnings are one line each, and --keep-every milestones stay loadable.

    python -m pytest tests/test_pretrain_edges.py -q
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

from electra.cli import main


def test_a_fresh_start_that_fails_on_its_data_leaves_no_run_folder(tiny_dataset: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """A token id beyond the vocabulary is found when its shard first opens, after the run folder was set up:
    the one-line error, and no config.json, logs or vocab copy left (a folder that held the user's files before
    keeps exactly those)."""
    data = tmp_path / "ds"
    shutil.copytree(tiny_dataset, data)
    tokens = next(data.glob("shard-*")) / "train.tokens.bin"
    raw = np.fromfile(tokens, dtype=np.uint16)
    raw[5] = 0xFFFF
    raw.tofile(tokens)
    for out, before in ((tmp_path / "run", None), (tmp_path / "mine", ["job.log"])):
        if before:
            out.mkdir()
            (out / "job.log").write_text("the user's scheduler log")
        assert main(["pretrain", "--data", str(data), "--out", str(out), *tiny_overrides(max_steps=2)]) == 2
        err = capsys.readouterr().err.strip()
        assert "is damaged: its train token ids" in err and len(err.splitlines()) == 1, err
        assert (sorted(p.name for p in out.iterdir()) if before else out.exists()) == (before or False)


def test_a_stop_on_an_evaluation_and_checkpoint_step_does_each_once(tiny_dataset: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run),
                 *tiny_overrides(max_steps=100, eval_every=1, save_every=1, max_time=1e-3)]) == 0
    out = capsys.readouterr().out
    assert out.count("eval @ 1:") == 1 and out.count("saved ") == 1 and "max_time" in out
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum("eval/disc_auc" in r for r in rows) == 1


def test_print_config_shows_what_the_run_would_use(tiny_dataset: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """With --data: its sequence length and vocabulary size; the printed file then round-trips through --config.
    With a run's --out: the saved config the run resumes with."""
    assert main(["pretrain", "--preset", "tiny", "--data", str(tiny_dataset), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    vocab = (tiny_dataset / "vocab.txt").read_text().splitlines()
    assert printed["train"]["seq_len"] == 32 and printed["model"]["vocab_size"] == len(vocab) != 30522
    (tmp_path / "c.json").write_text(json.dumps(printed))
    run = tmp_path / "run"
    assert main(["pretrain", "--config", str(tmp_path / "c.json"), "--data", str(tiny_dataset), "--out", str(run),
                 *tiny_overrides(max_steps=2)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((run / "config.json").read_text())


def test_a_finished_run_re_run_keeps_its_config_and_a_preset_is_noted(tiny_dataset: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides(max_steps=2)]) == 0
    saved = (run / "config.json").read_text()
    capsys.readouterr()
    assert main(["pretrain", "--preset", "small", "--data", str(tiny_dataset), "--out", str(run),
                 "--max-steps", "2", "--lr", "1"]) == 0
    captured = capsys.readouterr()
    assert "nothing to train" in captured.out and (run / "config.json").read_text() == saved
    assert "--preset small only sets up a fresh run" in captured.err


def test_the_packages_warnings_are_one_line() -> None:
    """A warning electra raises reads like its errors; another library's keeps Python's format."""
    import warnings

    from electra import cli

    ours = cli.format_warning("pretrain", warnings.formatwarning, UserWarning("fresh MLM head"), UserWarning,
                              str(cli.PACKAGE / "hf_import.py"), 1)
    theirs = cli.format_warning("pretrain", warnings.formatwarning, UserWarning("theirs"), UserWarning,
                                warnings.__file__, 7)
    assert ours == "electra pretrain: warning: fresh MLM head\n"
    assert theirs == warnings.formatwarning(UserWarning("theirs"), UserWarning, warnings.__file__, 7)


def test_keep_every_keeps_milestones_that_fine_tuning_can_start_from(tiny_dataset, tmp_path):
    from electra.checkpoint import load_discriminator

    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run),
                 *tiny_overrides(max_steps=8, save_every=2, keep_last=1, keep_every=4)]) == 0
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_00000004", "step_00000008"]
    early, pre = load_discriminator(run / "checkpoints" / "step_00000004")
    late, _ = load_discriminator(run)
    assert pre.step == 4
    a, b = early.state_dict(), late.state_dict()
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def test_eval_data_swaps_the_held_out_rows_and_nothing_else(tiny_dataset, tmp_path, capsys):
    """--eval-data B: training as without it, evaluation on B's held-out rows (B = the same corpus prepared with
    another seed and split); --eval-data A is the same run as no --eval-data; a resume evaluating elsewhere says so.
    Mismatches are one-line errors."""
    root = tiny_dataset.parent
    other = tmp_path / "other"
    assert main(["prepare", str(root / "corpus.txt"), "--vocab", str(root / "vocab" / "vocab.txt"), "--seq-len", "32",
                 "--out", str(other), "--seed", "9", "--valid-fraction", "0.2", "--quiet"]) == 0

    def run(name, *extra):
        out = tmp_path / name
        assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(out), *tiny_overrides(max_steps=4),
                     "--eval-every", "2", *extra]) == 0
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        train = [{k: v for k, v in r.items() if k.startswith("train/") and "per_s" not in k} for r in rows
                 if "train/loss" in r]
        return train, [{k: v for k, v in r.items() if k.startswith("eval/")} for r in rows if "eval/loss" in r]

    plain, same, swapped = run("plain"), run("same", "--eval-data", str(tiny_dataset)), run("b", "--eval-data", str(other))
    assert plain == same
    assert swapped[0] == plain[0] and swapped[1] != plain[1] and len(swapped[1]) == 2
    assert f"held-out examples (from {other})" in capsys.readouterr().out
    # --also-eval B: the main held-out numbers are the plain run's, and eval_other/ are what --eval-data B logged
    also = run("also", "--also-eval", str(other))
    assert also[0] == plain[0] and [{k: v for k, v in r.items() if k.startswith("eval/")} for r in also[1]] == plain[1]
    rows = [json.loads(x) for x in (tmp_path / "also" / "metrics.jsonl").read_text().splitlines()]
    extra = [{k.replace("eval_other/", "eval/"): v for k, v in r.items() if k.startswith("eval_other/")}
             for r in rows if "eval_other/loss" in r]
    assert extra == swapped[1]
    from electra.logs import curve_panels  # and curves.png draws them beside the main split's
    assert "eval_other/disc_auc" in dict(curve_panels(rows))["discriminator"]
    assert json.loads((tmp_path / "b" / "tokenizer.json").read_text())["eval_dataset"] == str(other)
    # a resume that forgets --eval-data is told that its held-out curves change
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "b"), "--max-steps", "5"]) == 0
    err = capsys.readouterr().err
    assert f"evaluated on {other}'s held-out split and now evaluates on {tiny_dataset}'s" in err
    assert f"pass --eval-data {other} to keep them" in err
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "plain"), "--max-steps", "5"]) == 0
    assert "held-out split and now" not in capsys.readouterr().err  # the same held-out rows: nothing to say
    wrong = tmp_path / "wrong"  # another sequence length
    assert main(["prepare", str(root / "corpus.txt"), "--vocab", str(root / "vocab" / "vocab.txt"), "--seq-len", "24",
                 "--out", str(wrong), "--quiet"]) == 0
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "x"), *tiny_overrides(),
                 "--eval-data", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "holds 24-token examples" in err and "--seq-len 32" in err and not (tmp_path / "x").exists()
    none = tmp_path / "none"  # no held-out split
    assert main(["prepare", str(root / "corpus.txt"), "--vocab", str(root / "vocab" / "vocab.txt"), "--seq-len", "32",
                 "--out", str(none), "--valid-fraction", "0", "--quiet"]) == 0
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "y"), *tiny_overrides(),
                 "--eval-data", str(none)]) == 2
    assert "has no held-out examples; prepare it with --valid-fraction above 0" in capsys.readouterr().err


def test_a_second_pretrain_into_a_running_runs_folder_is_refused(tiny_dataset: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """The run folder's lock: held (here by this test, as a still-training run or an orphaned torchrun worker
    holds it), a second command is refused by name, writing nothing; released, the run starts."""
    import os

    from electra.checkpoint import lock_run
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides(max_steps=2, eval_every=0)]
    held = lock_run(run)
    try:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"another `electra pretrain` (pid {os.getpid()}) is writing {run}; wait for it to end or stop it" in err
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    finally:
        os.close(held)
    assert main(args) == 0 and (run / "checkpoints" / "LATEST").is_file()
