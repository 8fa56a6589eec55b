"""`electra finetune` resumes by seed: a stopped run re-run trains only the missing seeds and ends as an
uninterrupted run does; more --seeds go on from a finished run; another recipe, model or data starts over.

    python -m pytest tests/test_finetune_progress.py -q
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from test_finetune_fixtures import make_run
from test_finetune_glue import _cli_error, _learnable_sst2

import electra.finetune.seeds as finetune_seeds
from electra.cli import main as electra_main
from electra.finetune.progress import fingerprint, fingerprint_facts, model_digest

FAST = ["--epochs", "3", "--batch-size", "8", "--threads", "1", "--max-seq-len", "32"]


class Trainings:
    """Counts the fine-tunings `electra finetune` runs; `stop_at`: raise KeyboardInterrupt in that one (1-based)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_at: int = 0):
        self.count, self.stop_at, real = 0, stop_at, finetune_seeds.train

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if self.count == self.stop_at:
                raise KeyboardInterrupt  # Ctrl-C (or a killed job) in the middle of a seed
            return real(*args, **kwargs)
        monkeypatch.setattr(finetune_seeds, "train", counted)


def results(out: Path) -> dict[str, Any]:
    r = json.loads((out / "results.json").read_text())
    return {"runs": [(run["seed"], run["metrics"], run["train"]["steps"], run["train"]["final_loss"])
                     for run in r["runs"]], "summary": r["summary"], "best_seed": r["best_seed"]}


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def command(tmp: Path, n: int, lr: str) -> list[str]:
    """A fine-tuning whose seeds score differently: with n=64, lr 2e-3 seeds 1-4 score 87.5, 50, 93.75, 100 (the
    best moves to each later seed that beats it); with n=96, lr 1e-3 100, 96.9, 93.8, 81.3 (seed 1 stays best)."""
    run = make_run(tmp)
    data = _learnable_sst2(tmp / "glue", n=n)
    return ["finetune", "--task", "sst2", "--data", str(data), "--model", str(run), *FAST, "--lr", lr]


def test_a_stopped_run_trains_only_the_missing_seeds_and_ends_as_an_uninterrupted_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    common, tmp = command(tmp_path, 64, "2e-3"), tmp_path
    whole, resumed = tmp / "whole", tmp / "resumed"
    assert electra_main([*common, "--out", str(whole), "--seeds", "3"]) == 0
    assert not (whole / "progress").exists()  # gone once results.json is written
    from electra.config import PretrainConfig
    from electra.flops import train_flops
    run_cfg = PretrainConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    pretraining = json.loads((whole / "results.json").read_text())["pretraining"]  # what went into the model
    assert pretraining["step"] == 10 and pretraining["flops"] == train_flops(run_cfg, steps=10) > 0

    Trainings(monkeypatch, stop_at=3)
    assert electra_main([*common, "--out", str(resumed), "--seeds", "3"]) == 130  # "interrupted"
    progress = resumed / "progress"
    assert sorted(p.name for p in progress.glob("*_seed*.json")) == ["lr0.002_ld0.8_seed1.json", "lr0.002_ld0.8_seed2.json"]
    assert [p.name for p in progress.glob("*.safetensors")] == ["lr0.002_ld0.8_seed1.safetensors"]  # the best's only
    assert not (resumed / "results.json").exists()

    trainings = Trainings(monkeypatch)
    capsys.readouterr()
    assert electra_main([*common, "--out", str(resumed), "--seeds", "3"]) == 0
    assert trainings.count == 1  # seed 3 only
    assert capsys.readouterr().out.count("(trained earlier)") == 2
    assert results(resumed) == results(whole) and same_weights(resumed, whole)
    assert [r[1]["accuracy"] for r in results(whole)["runs"]] == [87.5, 50.0, 93.75] and results(whole)["best_seed"] == 3
    assert (resumed / "test_predictions" / "SST-2.tsv").read_bytes() == (whole / "test_predictions" / "SST-2.tsv").read_bytes()
    assert not progress.exists()

    assert electra_main([*common, "--out", str(resumed), "--seeds", "3"]) == 0  # all done: nothing trained
    assert trainings.count == 1 and results(resumed) == results(whole) and same_weights(resumed, whole)


def test_more_seeds_go_on_from_a_finished_run_and_fresh_retrains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    common, tmp = command(tmp_path, 96, "1e-3"), tmp_path
    four, out = tmp / "four", tmp / "out"
    assert electra_main([*common, "--out", str(four), "--seeds", "4"]) == 0
    assert electra_main([*common, "--out", str(out), "--seeds", "2"]) == 0
    trainings = Trainings(monkeypatch)
    assert electra_main([*common, "--out", str(out), "--seeds", "4"]) == 0
    assert trainings.count == 2  # seeds 3 and 4; seed 1, still the best, read back from model/
    assert results(out) == results(four) and results(out)["best_seed"] == 1 and same_weights(out, four)
    assert electra_main([*common, "--out", str(out), "--seeds", "4", "--fresh"]) == 0
    assert trainings.count == 6 and results(out) == results(four)

    # another recipe: nothing of the earlier seeds counts
    assert electra_main([*common, "--out", str(out), "--seeds", "2", "--weight-decay", "0.01"]) == 0
    assert trainings.count == 8

    # a finished run whose model/ was not kept: the best seed is trained again for its weights
    capsys.readouterr()
    assert electra_main([*common, "--out", str(out), "--seeds", "2", "--no-save-model"]) == 0
    assert trainings.count == 10 and not (out / "model").exists()
    assert electra_main([*common, "--out", str(out), "--seeds", "2"]) == 0
    assert trainings.count == 11 and "its weights are not at hand" in capsys.readouterr().out
    assert (out / "model" / "model.safetensors").is_file()


def test_a_file_added_for_another_task_of_a_glue_root_leaves_the_seeds_on_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint stamps the task's own folder (glue/SST-2/), not the whole --data root; `--data` given as
    the task folder itself stamps the same files."""
    common, out = command(tmp_path, 64, "2e-3"), tmp_path / "out"
    glue = Path(common[common.index("--data") + 1])
    assert electra_main([*common, "--out", str(out), "--seeds", "1"]) == 0
    (glue / "RTE").mkdir()
    (glue / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")  # another task's file
    (glue / "README.txt").write_text("notes\n")
    trainings = Trainings(monkeypatch)
    assert electra_main([*common, "--out", str(out), "--seeds", "2"]) == 0
    assert trainings.count == 1  # seed 2 only
    with open(glue / "SST-2" / "dev.tsv", "a") as f:  # this task's file: its seeds are retrained
        f.write("a fine film\t1\n")
    assert electra_main([*common, "--out", str(out), "--seeds", "2"]) == 0
    assert trainings.count == 3


def test_a_run_that_cannot_reuse_its_seeds_says_what_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    common, out = [*command(tmp_path, 64, "2e-3"), "--seeds", "1"], tmp_path / "out"
    glue = Path(common[common.index("--data") + 1])
    assert electra_main([*common, "--out", str(out)]) == 0
    capsys.readouterr()
    assert electra_main([*common, "--out", str(out), "--weight-decay", "0.01", "--epochs", "2"]) == 0
    assert (f"[sst2] {out / 'results.json'} was trained with other recipe (epochs 3.0 -> 2.0, weight_decay 0.0 -> "
            f"0.01): every seed is trained") in capsys.readouterr().out
    (glue / "SST-2" / "notes.txt").write_text("x")
    Trainings(monkeypatch, stop_at=1)  # stopped: its seed's records stay in progress/
    assert electra_main([*common, "--out", str(out), "--weight-decay", "0.01", "--epochs", "2"]) == 130
    assert f"{out / 'results.json'} was trained with other data files: every" in capsys.readouterr().out
    monkeypatch.undo()
    (out / "progress" / "lr0.002_ld0.8_seed1.json").write_text("{}")  # as if the seed had been recorded
    assert electra_main([*common, "--out", str(out), "--threads", "2"]) == 0  # not in the fingerprint
    assert (f"{out / 'progress'} holds seeds trained with other recipe (epochs 2.0 -> 3.0, weight_decay 0.01 -> 0.0)"
            ": every seed is trained") in capsys.readouterr().out


def test_the_fingerprint_follows_data_recipe_model_and_arithmetic_but_not_seed_or_threads(tmp_path: Path) -> None:
    import dataclasses

    from electra.finetune.config import FinetuneConfig
    from electra.model import Encoder
    from electra.model_config import ModelConfig

    data = _learnable_sst2(tmp_path / "glue", n=8)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n")
    enc = Encoder(ModelConfig(vocab_size=6, hidden_size=8, embedding_size=8, num_layers=1, num_heads=2,
                              intermediate_size=16, max_position_embeddings=16))
    cfg = FinetuneConfig().to_dict()

    def fp(recipe: dict = cfg, out: Path = tmp_path / "out", arithmetic: str = "cpu torch.float32") -> str:
        return fingerprint(fingerprint_facts("sst2", recipe, model_digest(enc, vocab), False, True, None, data, out,
                                             arithmetic))

    base = fp()
    assert fp({**cfg, "seed": 9, "threads": 3, "lr": 1e-3, "eval_batch_size": 7}) == base
    assert fp({**cfg, "weight_decay": 0.01}) != base and fp(arithmetic="cuda torch.bfloat16") != base
    (data / "ft" / "rte").mkdir(parents=True)  # OUT inside --data (several tasks: OUT/<task>/): not stamped
    (data / "ft" / "rte" / "results.json").write_text("{}")
    assert fp(out=data / "ft") == base and fp(out=tmp_path / "out") != base
    shutil.rmtree(data / "ft")
    (data / "SST-2" / "train.tsv").write_text("sentence\tlabel\na\t1\n")  # a task file changed
    assert fp() != base
    (data / "SST-2" / "train.tsv").unlink()
    linked = tmp_path / "elsewhere"
    (data / "SST-2").rename(linked)  # a task folder that is a link: its files are stamped through it
    (data / "SST-2").symlink_to(linked)
    before = fp()
    (linked / "dev.tsv").write_text("sentence\tlabel\n")
    assert fp() != before
    before = fp()
    with torch.no_grad():
        next(enc.parameters()).view(-1)[0] += 1  # one weight of the encoder
    assert fp() != before
    before = fp()
    enc.cfg = dataclasses.replace(enc.cfg, hidden_dropout=0.0)  # what the weights do not show
    assert fp() != before
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nb\n")
    assert fp() != before


def test_what_a_stopped_run_left_is_kept_safe_and_damage_retrained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """--overwrite with the same task still resumes; a stray or temporary file in progress/ is no obstacle, a
    damaged or edited record is retrained; another task's command into that OUT is refused (unfinished seeds are named), and
    so is a second run while one holds OUT."""
    from electra.data.shards import lock_folder

    common, out = command(tmp_path, 64, "2e-3"), tmp_path / "out"
    Trainings(monkeypatch, stop_at=4)
    assert electra_main([*common, "--out", str(out), "--seeds", "4"]) == 130
    progress = out / "progress"
    # a score edited by hand, in a record that keeps its shape: seed 3 is trained again, not trusted
    scored = progress / "lr0.002_ld0.8_seed3.json"
    edited = json.loads(scored.read_text())
    scored.write_text(json.dumps({**edited, "metrics": {"accuracy": 99.0}}))
    (progress / ".tmp-lr0.002_ld0.8_seed3.json-4242").write_text("{")  # as a SIGKILL mid-write leaves it
    (progress / ".DS_Store").write_bytes(b"\0")
    record = progress / "lr0.002_ld0.8_seed2.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "metrics": {}}))
    capsys.readouterr()

    err = _cli_error(capsys, [*common[1:], "--task", "mrpc", "--out", str(out)])
    assert f"--out {out} holds the unfinished seeds (re-run it to finish them) of --task sst2" in err
    fd = lock_folder(out, "finetune")
    try:
        assert "another `electra finetune`" in _cli_error(capsys, [*common[1:], "--out", str(out), "--seeds", "3"])
        assert electra_main(["status", str(out)]) == 0
        assert f"{out}: fine-tuning, running (pid {os.getpid()})" in capsys.readouterr().out
    finally:
        os.close(fd)

    trainings = Trainings(monkeypatch)
    assert electra_main([*common, "--out", str(out), "--seeds", "3", "--overwrite"]) == 0
    assert trainings.count == 2  # seeds 2 (its record out of shape) and 3 (its score edited)
    printed = capsys.readouterr().out
    assert "seed 1: accuracy 87.50 (trained earlier)" in printed and "99.00" not in printed
    assert f"{scored} is damaged or was edited: that seed is trained again" in printed
    assert not progress.exists()

    progress.mkdir()
    (progress / "notes.txt").write_text("the user's")
    assert "progress holds 'notes.txt' that is not what `electra finetune` writes there" in _cli_error(
        capsys, [*common[1:], "--out", str(out), "--seeds", "3"])


def test_a_grid_resumes_point_by_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--lr 1e-3,2e-3: the seeds of each point are recorded apart; a run stopped in the second point re-trains
    only that point's missing seed, chooses the same point and keeps the same weights."""
    common = [*command(tmp_path, 64, "2e-3")[:-2], "--lr", "1e-3,2e-3", "--seeds", "2"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert electra_main([*common, "--out", str(whole)]) == 0
    Trainings(monkeypatch, stop_at=4)
    assert electra_main([*common, "--out", str(resumed)]) == 130
    trainings = Trainings(monkeypatch)
    assert electra_main([*common, "--out", str(resumed)]) == 0
    assert trainings.count == 1
    grid = lambda out: [(p["lr"], p["median"], [r["metrics"] for r in p["runs"]])
                        for p in json.loads((out / "results.json").read_text())["grid"]]
    assert grid(resumed) == grid(whole) and results(resumed) == results(whole) and same_weights(resumed, whole)
    assert electra_main([*common[:-1], "3", "--out", str(resumed)]) == 0  # a third seed at both points
    assert trainings.count == 3


def test_a_stopped_task_list_resumes_and_is_kept_from_other_tasks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """--task sst2,rte stopped in rte: the same command trains only rte's missing seed; before that, a command
    for other tasks into that OUT is refused (OUT/sst2/ and OUT/rte/ named), and --overwrite clears them."""
    from test_finetune_glue import write_unavailable_tasks

    common = command(tmp_path, 64, "2e-3")
    write_unavailable_tasks(tmp_path / "glue")
    tasks = [*common, "--task", "sst2,rte", "--seeds", "2"]
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert electra_main([*tasks, "--out", str(whole)]) == 0
    Trainings(monkeypatch, stop_at=4)
    assert electra_main([*tasks, "--out", str(out)]) == 130
    capsys.readouterr()
    err = _cli_error(capsys, [*common[1:], "--task", "rte", "--out", str(out)])
    assert "holds what a stopped run left in sst2/, rte/ (re-run that command to finish it)" in err
    assert electra_main(["status", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        f"{out}: fine-tuning, not running", "  sst2      done: 2 seeds, accuracy median 68.75 (best seed 1)",
        "  rte       lr 0.002 ld 0.8: 1 of 2 seeds done, accuracy median so far 0.00"]
    trainings = Trainings(monkeypatch)
    assert electra_main([*tasks, "--out", str(out)]) == 0
    assert trainings.count == 1
    for task in ("sst2", "rte"):
        assert results(out / task) == results(whole / task) and same_weights(out / task, whole / task)
    assert (out / "glue_submission.zip").read_bytes() == (whole / "glue_submission.zip").read_bytes()
    Trainings(monkeypatch, stop_at=1)
    assert electra_main([*common, "--task", "sst2,rte", "--seeds", "3", "--out", str(out)]) == 130
    (out / "results.json").unlink()  # as if the first run had been stopped before its end too
    assert electra_main([*common, "--task", "qqp", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "sst2").exists() and not (out / "rte").exists() and (out / "model").is_dir()


class StepCalls:
    """Counts the optimizer steps of `electra finetune` (train.set_lr calls); `stop_at`: Ctrl-C before that one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_at: int = 0):
        import electra.finetune.train as loop
        self.count, real = 0, loop.set_lr

        def counted(*args: Any) -> None:
            self.count += 1
            if self.count == stop_at:
                raise KeyboardInterrupt
            real(*args)
        monkeypatch.setattr(loop, "set_lr", counted)


@pytest.mark.parametrize(("stop_at", "optimizer"), [(14, "electra"), (9, "electra"), (14, "adamw")])
def test_a_seed_stopped_mid_way_goes_on_from_its_saved_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture, stop_at: int,
                                                              optimizer: str) -> None:
    """--checkpoint-minutes: a seed saves its state (weights, optimizer, data order, dropout RNG, smoothed loss)
    and a re-run goes on from the saved step, ending bit-identical to a run never stopped; a saved state that
    does not fit is dropped and the seed starts over."""
    # 24 steps a seed: 8 batches x 3 epochs; stopped in the middle of the second epoch, or right after the first
    common = [*command(tmp_path, 64, "2e-3"), "--seeds", "2", "--optimizer", optimizer]
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert electra_main([*common, "--out", str(whole)]) == 0  # saving every 10 minutes: never, here
    every_step = ["--checkpoint-minutes", "1e-9"]
    StepCalls(monkeypatch, stop_at=stop_at)
    assert electra_main([*common, "--out", str(out), *every_step]) == 130
    partial = out / "progress" / "lr0.002_ld0.8_seed1.partial"
    assert json.loads((partial / "state.json").read_text())["step"] == stop_at - 1
    capsys.readouterr()
    assert electra_main(["status", str(out)]) == 0  # what `electra status` makes of it
    head, line = capsys.readouterr().out.splitlines()[-2:]
    assert head == f"{out}: fine-tuning, not running"
    assert line.startswith(f"  sst2      lr 0.002 ld 0.8: 0 of 2 seeds done; seed 1 at step {stop_at - 1} / 24 (saved ")
    calls = StepCalls(monkeypatch)
    assert electra_main([*common, "--out", str(out), *every_step]) == 0
    assert calls.count == 48 - (stop_at - 1)
    assert f"going on from step {stop_at - 1}/24" in capsys.readouterr().out
    assert results(out) == results(whole) and same_weights(out, whole) and not (out / "progress").exists()
    assert electra_main(["status", str(out), "--json"]) == 0
    expect = {"task": "sst2", "state": "done", "seeds": 2, "metric": "accuracy", "best_seed": results(whole)["best_seed"],
              "median": results(whole)["summary"]["accuracy"]["median"]}
    assert json.loads(capsys.readouterr().out)["tasks"] == [expect]

    if stop_at != 14 or optimizer != "electra":
        return
    out2, partial = tmp_path / "out2", tmp_path / "out2" / "progress" / "lr0.002_ld0.8_seed1.partial"
    StepCalls(monkeypatch, stop_at=5)
    assert electra_main([*common, "--out", str(out2), *every_step]) == 130
    state = json.loads((partial / "state.json").read_text())
    (partial / "state.json").write_text(json.dumps({**state, "optimizer": {}}))  # no longer this optimizer's
    calls = StepCalls(monkeypatch)
    assert electra_main([*common, "--out", str(out2), *every_step]) == 0
    assert calls.count == 48 and "its saved state does not fit" in capsys.readouterr().out
    assert results(out2) == results(whole) and same_weights(out2, whole)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "max-time"])
def test_a_signal_or_max_time_saves_the_seed_at_the_end_of_its_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, how: str) -> None:
    """SIGTERM (a job's time limit) or Ctrl-C in the middle of a step: the step ends, the seed's state is saved
    (no --checkpoint-minutes needed) and the command stops (143, 130); --max-time stops the same way with status 0.
    The re-run goes on from that step and ends as a run never stopped."""
    import signal

    import electra.finetune.train as loop
    common = [*command(tmp_path, 64, "2e-3"), "--seeds", "2"]
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert electra_main([*common, "--out", str(whole)]) == 0
    real, calls = loop.set_lr, [0]

    def signalling(*args: Any) -> None:
        calls[0] += 1
        if calls[0] == 30:  # seed 2, step 6: the signal (or the time limit) lands in the middle of the step
            if how == "max-time":
                clock = time.time
                monkeypatch.setattr(time, "time", lambda: clock() + 7200)  # two hours later
            else:
                os.kill(os.getpid(), getattr(signal, how))
        real(*args)
    monkeypatch.setattr(loop, "set_lr", signalling)
    capsys.readouterr()
    code = {"SIGTERM": 143, "SIGINT": 130, "max-time": 0}[how]
    assert electra_main([*common, "--out", str(out), "--max-time", "1h"]) == code
    captured = capsys.readouterr()
    step = 6
    assert f"stopped at step {step}/24, its state saved" in captured.out
    assert ("re-run the same command to go on" in captured.err) == (how == "max-time")
    state = json.loads((out / "progress" / "lr0.002_ld0.8_seed2.partial" / "state.json").read_text())
    assert state["step"] == step
    monkeypatch.undo()
    assert electra_main([*common, "--out", str(out)]) == 0
    assert f"going on from step {step}/24" in capsys.readouterr().out
    assert results(out) == results(whole) and same_weights(out, whole)
    if how == "max-time":  # a deadline passed between seeds: the next one is not started
        assert electra_main([*common[:-1], "3", "--out", str(out), "--max-time", "1e-9"]) == 0
        assert "stopped at --max-time 1e-9 ([sst2] before seed 3)" in capsys.readouterr().err


def test_a_stop_in_the_evaluation_after_a_long_seed_redoes_only_the_evaluation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A seed that trained longer than --checkpoint-minutes saves its state at its last step too: stopped while
    its dev set is scored, the re-run goes on from step 24/24, trains nothing of it and scores it again."""
    from electra.errors import Terminated

    common = [*command(tmp_path, 64, "2e-3"), "--seeds", "2", "--checkpoint-minutes", "1e-9"]
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert electra_main([*common, "--out", str(whole)]) == 0
    real = finetune_seeds.predict

    def terminated(*args: Any, **kwargs: Any) -> Any:
        raise Terminated  # SIGTERM while seed 1's dev set is scored
    monkeypatch.setattr(finetune_seeds, "predict", terminated)
    assert electra_main([*common, "--out", str(out)]) == 143
    monkeypatch.setattr(finetune_seeds, "predict", real)
    capsys.readouterr()
    calls = StepCalls(monkeypatch)
    assert electra_main([*common, "--out", str(out)]) == 0
    assert calls.count == 24 and "going on from step 24/24" in capsys.readouterr().out  # seed 2's steps only
    assert results(out) == results(whole) and same_weights(out, whole)


def test_status_sees_a_fine_tuning_before_its_first_seed_is_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`electra status OUT` while the first seed trains, long before --checkpoint-minutes: the task, its plan and
    the running process, not "not a run"."""
    import electra.finetune.train as loop
    from electra.finetune.status import finetune_status
    out, seen, real = tmp_path / "out", [], loop.set_lr

    def peeking(*args: Any) -> None:
        if not seen:
            seen.append(finetune_status(out))
        real(*args)
    monkeypatch.setattr(loop, "set_lr", peeking)
    assert electra_main([*command(tmp_path, 64, "2e-3"), "--seeds", "2", "--out", str(out)]) == 0
    assert seen[0] == {"out": str(out), "running_pid": os.getpid(), "tasks": [
        {"task": "sst2", "state": "in progress", "metric": "accuracy", "points": [
            {"lr": 0.002, "layer_decay": 0.8, "seeds_done": 0, "seeds": 2, "median": None, "training": None}]}]}
