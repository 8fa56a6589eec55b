"""The pre-training loop on a tiny model: an end-to-end run, exact resume after SIGKILL, Ctrl-C and
--max-time stop cleanly, non-finite losses stop the run, and bad input gets one-line errors.

    python -m pytest tests/test_pretrain.py -q
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from safetensors.torch import load_file

from electra.cli import main


def run_cli(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "electra", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, check=False, **kw)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "checkpoints" / "LATEST").read_text().strip()
    return load_file(str(run / "checkpoints" / latest / "model.safetensors"))


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_end_to_end_tiny_run(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides()]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["hidden_size"] == 32 and cfg["train"]["seq_len"] == 32  # seq_len taken from the dataset
    assert json.loads((run / "tokenizer.json").read_text())["dataset"] == str(tiny_dataset)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    evals = [r for r in records if "eval/disc_auc" in r]
    assert len(evals) == 2 and all(0.0 <= r["eval/disc_auc"] <= 1.0 for r in evals)
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_00000004", "step_00000006"]  # keep_last=2
    state = json.loads((run / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["step"] == 6 and state["data"]["step"] == 6 and state["config"] == cfg
    assert (run / "curves.png").stat().st_size > 0 and (run / "tb").is_dir()
    # tokens_per_s counts every slot, real_tokens_per_s the non-padding ones: their ratio in each log row is the
    # share of real tokens in that step's batch, which the same stream rebuilt here gives
    from electra.data.dataset import BatchStream, PretrainData
    stream, shares = BatchStream(PretrainData(tiny_dataset).train, 8, 8, cfg["train"]["seed"]), []
    for r in (r for r in records if "train/loss" in r):
        (batch,) = stream.next_step()
        shares.append(float(batch.attention_mask.sum()) / batch.attention_mask.numel())
        assert r["train/real_tokens_per_s"] / r["train/tokens_per_s"] == pytest.approx(shares[-1], rel=1e-9), r["step"]
    assert min(shares) < 1.0  # the tiny corpus has short examples
    out = capsys.readouterr().out
    assert "eval @ 6" in out and "saved" in out
    # a new run from this one's config.json: the same config but for what the command line changes
    again = tmp_path / "again"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(again), "--config", str(run / "config.json"),
                 "--max-steps", "1", "--no-tensorboard"]) == 0
    cfg["train"]["max_steps"] = 1
    assert json.loads((again / "config.json").read_text()) == cfg


def test_unpadded_encoders_train_the_same_model(tiny_dataset, tmp_path):
    """--unpad on (the CUDA default) runs the encoders on real tokens only; without dropout it is the same
    computation as the padded batch, so the loss curves agree to rounding."""
    args = ["pretrain", "--data", str(tiny_dataset), *tiny_overrides(max_steps=4, eval_every=0, hidden_dropout=0,
                                                                     attention_dropout=0)]
    curves = {}
    for unpad in ("off", "on"):
        run = tmp_path / unpad
        assert main([*args, "--out", str(run), "--unpad", unpad, "--no-tensorboard"]) == 0
        curves[unpad] = losses(run)
    assert curves["on"].keys() == curves["off"].keys()
    for step, loss in curves["off"].items():
        assert abs(curves["on"][step] - loss) < 1e-4 * abs(loss), step


def test_bf16_residual_stream_trains_like_the_fp32_one(tiny_dataset, tmp_path, capsys):
    """--precision bf16 --residual bf16 runs, says so, saves it in config.json, and follows the fp32-residual
    run's loss curve to bf16 rounding (same seeds: same data, masks, samples and dropout)."""
    args = ["pretrain", "--data", str(tiny_dataset), *tiny_overrides(max_steps=4, eval_every=0, precision="bf16"),
            "--no-tensorboard"]
    curves = {}
    for residual in ("fp32", "bf16"):
        run = tmp_path / residual
        assert main([*args, "--out", str(run), "--residual", residual]) == 0
        curves[residual] = losses(run)
        assert json.loads((run / "config.json").read_text())["train"]["residual"] == residual
        assert ("precision bf16 (bf16 residual stream)" in capsys.readouterr().out) == (residual == "bf16")
    assert curves["bf16"].keys() == curves["fp32"].keys() == {1, 2, 3, 4}
    for step, loss in curves["fp32"].items():
        assert abs(curves["bf16"][step] - loss) < 2e-3 * abs(loss), step
    assert curves["bf16"] != curves["fp32"]  # the stream was rounded: the option did something


def test_resume_after_sigkill_is_exact(tiny_dataset, tmp_path):
    args = ["pretrain", "--data", str(tiny_dataset), *tiny_overrides(max_steps=8, eval_every=0, save_every=2)]
    straight = tmp_path / "straight"
    assert run_cli([*args, "--out", str(straight)]).returncode == 0
    crashed = tmp_path / "crashed"
    r = run_cli([*args, "--out", str(crashed)], env={"ELECTRA_FAULT_AT_STEP": "5"})
    assert r.returncode == -signal.SIGKILL, r.stderr  # died after step 5; the last checkpoint is step 4
    assert (crashed / "checkpoints" / "LATEST").read_text() == "step_00000004"
    r = run_cli([*args, "--out", str(crashed)])
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout
    a, b = final_weights(straight), final_weights(crashed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical on CPU
    la, lb = losses(straight), losses(crashed)
    assert all(la[s] == lb[s] for s in range(5, 9))


def test_a_resume_between_log_lines_logs_what_one_run_would(tiny_dataset, tmp_path):
    """Checkpoints every 2 steps, a log line every 3: the run killed after step 5 resumes from step 4, in the middle
    of the line for steps 4-6. The checkpoint carries that line's sums, and the records logged after the last
    checkpoint are dropped, so metrics.jsonl equals the uninterrupted run's, value for value."""
    args = ["pretrain", "--data", str(tiny_dataset), "--no-tensorboard",
            *tiny_overrides(max_steps=8, eval_every=0, save_every=2, log_every=3)]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert run_cli([*args, "--out", str(straight)]).returncode == 0
    assert run_cli([*args, "--out", str(crashed)], env={"ELECTRA_FAULT_AT_STEP": "5"}).returncode == -signal.SIGKILL
    assert run_cli([*args, "--out", str(crashed)]).returncode == 0

    def records(run: Path) -> list[dict]:
        timing = ("time", "train/tokens_per_s", "train/real_tokens_per_s")
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in timing} for r in rows]
    got, want = records(crashed), records(straight)
    assert [r["step"] for r in got if "train/loss" in r] == [3, 6, 8]
    assert got == want
    # resumed with smaller micro-batches, the line counts the carried step's one loss term and the new steps' two
    halves = tmp_path / "halves"
    assert run_cli([*args, "--out", str(halves)], env={"ELECTRA_FAULT_AT_STEP": "5"}).returncode == -signal.SIGKILL
    r = run_cli([*args, "--out", str(halves), "--micro-batch-size", "4"])
    assert r.returncode == 0 and "trained in micro-batches of 8, this run uses 4" in r.stdout, r.stdout[-2000:]
    assert "micro-batches of" not in run_cli([*args, "--out", str(crashed), "--max-steps", "9"]).stdout
    line = next(r for r in records(halves) if r["step"] == 6)
    state = json.loads((halves / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert "log_interval" not in state  # saved right after its log line: nothing in progress
    assert abs(line["train/loss"] / next(r for r in want if r["step"] == 6)["train/loss"] - 1) < 0.08


@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGINT, "interrupted (Ctrl-C)"),
                                             (signal.SIGTERM, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_saves_and_exits_cleanly(tiny_dataset, tmp_path, sig, reason):
    """Ctrl-C, or a scheduler's SIGTERM (preemption, time limit): finish the step, save, exit 0."""
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "electra", "pretrain", "--data", str(tiny_dataset), "--out", str(run),
                          *tiny_overrides(max_steps=100000, save_every=100000, eval_every=0)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("step"):
            break
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert reason in out
    step = json.loads((run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text() / "state.json").read_text())["step"]
    assert 1 <= step < 100000


def test_logged_learning_rate_follows_the_schedule(tiny_dataset, tmp_path):
    """Each logged train/lr is the rate of that step's update: linear warmup times (1 - t/T)^power, power 2.
    (--threads holds for the run, is recorded in its checkpoints and given back to an in-process caller.)"""
    from electra.optim import lr_at
    run = tmp_path / "run"
    threads = torch.get_num_threads()
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
                 *tiny_overrides(max_steps=6, warmup_steps=3, lr=2e-3, eval_every=0, save_every=6),
                 "--lr-decay-power", "2", "--threads", "1"]) == 0
    state = json.loads((run / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["threads"] == 1 and state["torch"] == torch.__version__ and torch.get_num_threads() == threads
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["train/lr"] for r in rows if "train/lr" in r}
    assert sorted(logged) == [1, 2, 3, 4, 5, 6]
    for step, lr in logged.items():
        t = step - 1  # the update that took the run to `step`
        assert lr == pytest.approx(2e-3 * min(1.0, t / 3) * (1 - t / 6) ** 2), step
        assert lr == pytest.approx(lr_at(t, 2e-3, 6, 3, 2.0))


def test_logged_learning_rate_follows_a_warmup_stable_decay_schedule(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
                 *tiny_overrides(max_steps=10, warmup_steps=2, lr=1e-3, eval_every=0, save_every=10),
                 "--lr-schedule", "wsd", "--decay-fraction", "0.4"]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [r["train/lr"] for r in rows if "train/lr" in r]
    # updates 0..9: warmup 0, 0.5; flat at 1e-3 for 2..5; then 1e-3 x (1 - (t - 6) / 4) for 6..9
    assert logged == pytest.approx([0.0, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_max_time_stops_with_a_checkpoint(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run),
                 *tiny_overrides(max_steps=100000, save_every=100000, eval_every=0, max_time=1.5)]) == 0
    assert "max_time 1.5s reached" in capsys.readouterr().out
    assert (run / "checkpoints" / "LATEST").exists()


def test_non_finite_loss_stops_naming_the_step(tiny_dataset, tmp_path, monkeypatch, capsys):
    from electra import objective
    real, calls = objective.mlm_loss, {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        loss = real(*a, **k)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(objective, "mlm_loss", poisoned)
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides(eval_every=0)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite loss at step 2" in err[0]
    assert (run / "checkpoints" / "LATEST").read_text() == "step_00000002"  # the bad step was never saved


def test_a_diverging_run_stops_with_the_one_line_error(tiny_dataset, tmp_path, capsys):
    """A learning rate far too high: the weights go non-finite, the next step's sampling sees NaN
    probabilities, and the run must still end with the non-finite-loss message, not a crash inside sampling.
    The caller's signal handlers are back afterwards, although the run ended in an error."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    run = tmp_path / "run"
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(run),
                            *tiny_overrides(eval_every=0, lr=1e9, warmup_steps=0)], "non-finite loss at step")
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


def one_line_error(capsys, args: list[str], needle: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_bad_input_gets_one_line_errors(tiny_dataset, tmp_path, capsys):
    base = ["pretrain", "--out", str(tmp_path / "r")]
    one_line_error(capsys, [*base, "--data", str(tmp_path / "nope")], "nope")
    one_line_error(capsys, [*base, "--data", str(tiny_dataset), *tiny_overrides(sharing="all")],
                   "generator_hidden_fraction=1")
    one_line_error(capsys, [*base, "--data", str(tiny_dataset), *tiny_overrides(max_position_embeddings=16)],
                   "position table")
    one_line_error(capsys, [*base, "--data", str(tiny_dataset), "--hiden-size", "3"], "did you mean --hidden-size")
    one_line_error(capsys, [*base, "--data", str(tiny_dataset), "--resume"], "has no checkpoint to resume from")
    one_line_error(capsys, [*base, "--data", str(tiny_dataset), "--threads", "-1"], "--threads -1 must be")
    assert not (tmp_path / "r").exists()
    # a fresh run never writes among other files: into the dataset itself, or a file's path
    before = sorted(p.name for p in tiny_dataset.iterdir())
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(tiny_dataset)],
                   "that are not a run's")
    assert sorted(p.name for p in tiny_dataset.iterdir()) == before
    (tmp_path / "afile").write_text("x")
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "afile")], "is a file")
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "afile" / "sub")],
                   "Not a directory")


def test_resume_with_another_vocab_or_a_corrupt_checkpoint(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides(max_steps=2, eval_every=0)]) == 0
    corpus = tiny_dataset.parent / "corpus.txt"  # the same text, tokenized with a smaller vocabulary
    assert main(["vocab", str(corpus), "--vocab-size", "150", "--out", str(tmp_path / "v2")]) == 0
    other = tmp_path / "other"
    assert main(["prepare", str(corpus), "--vocab", str(tmp_path / "v2" / "vocab.txt"), "--seq-len", "32",
                 "--out", str(other), "--workers", "1", "--quiet"]) == 0
    one_line_error(capsys, ["pretrain", "--data", str(other), "--out", str(run), "--max-steps", "4"], "different vocabulary")
    shorter = tmp_path / "shorter"  # the run's own vocabulary, prepared again with shorter examples
    assert main(["prepare", str(corpus), "--vocab", str(tiny_dataset / "vocab.txt"), "--seq-len", "16",
                 "--out", str(shorter), "--workers", "1", "--quiet"]) == 0
    one_line_error(capsys, ["pretrain", "--data", str(shorter), "--out", str(run), "--max-steps", "4"],
                   "trains on 32-token examples but")
    one_line_error(capsys, ["pretrain", "--data", str(shorter), "--out", str(tmp_path / "fresh32"), "--seq-len", "32"],
                   "train.seq_len=32 but")  # a fresh run told another length than its dataset's
    hf = tmp_path / "hf"  # --init names the dataset's vocabulary, not a --vocab-size nobody gave
    assert main(["export", str(run), str(hf)]) == 0
    one_line_error(capsys, ["pretrain", "--data", str(other), "--out", str(tmp_path / "fresh"), "--init", str(hf)],
                   "was prepared with another vocabulary than")
    # a flag that would change a tensor's shape cannot apply to a run that resumes: named, not a size-mismatch dump
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--num-layers", "3"],
                   "has model.num_layers=2, but this command asks for 3")
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--sharing", "none"],
                   "objective.sharing=embeddings")
    weights = run / "checkpoints" / "step_00000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--max-steps", "4"], "model.safetensors is damaged")
    for name in ("config.json", "tokenizer.json"):  # a damaged run file: named, with what to do
        saved = (run / name).read_text()
        (run / name).write_text(saved[: len(saved) // 2])
        one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(run)], f"its {name} is missing or damaged")
        (run / name).write_text(saved)
    saved = (run / "tokenizer.json").read_text()  # valid JSON without the vocabulary's hash
    (run / "tokenizer.json").write_text(json.dumps({k: v for k, v in json.loads(saved).items() if k != "vocab_sha256"}))
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(run)], "its tokenizer.json is missing or damaged")


def test_resume_applies_optimizer_overrides_and_refuses_a_misfit_in_one_line(tiny_dataset, tmp_path, capsys):
    """The saved config with this command's overrides on top is what a resumed run uses: torch's
    load_state_dict would silently bring back the checkpoint's eps / betas / weight decay, and a state that
    cannot fit (decay switched off: one parameter group instead of two) must be a one-line error that leaves
    the run's config.json untouched, so that the run still resumes as before."""
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard"]
    assert main([*args, *tiny_overrides(max_steps=2, eval_every=0)]) == 0
    config_before = (run / "config.json").read_text()
    one_line_error(capsys, [*args, "--max-steps", "3", "--weight-decay", "0"], "optimizer state does not fit")
    assert (run / "config.json").read_text() == config_before
    assert main([*args, "--max-steps", "3"]) == 0  # resumes as if the refused attempt had never happened
    assert main([*args, "--max-steps", "4", "--adam-eps", "0.25", "--adam-beta2", "0.5", "--weight-decay", "0.125"]) == 0
    groups = json.loads((run / "checkpoints" / "step_00000004" / "state.json").read_text())["optimizer"]["param_groups"]
    assert all(g["eps"] == 0.25 and g["betas"] == [0.9, 0.5] for g in groups)
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.125]  # biases and LayerNorm still undecayed


def test_continue_pretraining_from_a_hugging_face_folder(tiny_dataset, tmp_path, capsys):
    run, hf, cont = tmp_path / "run", tmp_path / "hf", tmp_path / "cont"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides(max_steps=2, eval_every=0)]) == 0
    assert main(["export", str(run), str(hf)]) == 0
    # one step at the schedule's first learning rate (0 during warmup) leaves the imported weights untouched
    # the folder fixes the architecture: a flag that contradicts it is refused by name, one that agrees is fine
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(cont), "--init", str(hf),
                            *tiny_overrides(max_steps=1, eval_every=0, hidden_size=8)], "has model.hidden_size=32")
    assert not cont.exists()
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(cont), "--init", str(hf),
                 *tiny_overrides(max_steps=1, eval_every=0)]) == 0
    assert "initialised from" in capsys.readouterr().out
    a, b = final_weights(run), final_weights(cont)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    one_line_error(capsys, ["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "x"),
                            "--init", str(tmp_path / "nothing")], "nothing")
    # re-running the line resumes the run: --init only starts one, which the log says
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(cont), "--init", str(hf),
                 *tiny_overrides(max_steps=2, eval_every=0)]) == 0
    captured = capsys.readouterr()
    assert "resuming from" in captured.out and "--init" in captured.err and "only starts a fresh run" in captured.err


def test_held_out_metrics_do_not_depend_on_the_micro_batch(tiny_dataset):
    """Each held-out row is masked and sampled by its own seed, and losses are token means over all rows: cutting
    the same rows into micro-batches of 3 or of 16 gives the same metrics (before, masks were drawn per batch)."""
    import contextlib

    from electra.config import build_config
    from electra.data.dataset import PretrainData
    from electra.dist import Dist
    from electra.heldout import evaluate
    from electra.objective import Electra, SpecialTokens
    data = PretrainData(tiny_dataset)
    flags = tiny_overrides()
    overrides = {name[2:].replace("-", "_"): value for name, value in zip(flags[::2], flags[1::2])}
    sp = data.special
    values = {}
    variants = {"electra": {}, "mlm": {"objective": "mlm"}, "electra15": {"rtd_tokens": "masked"},
                "uniform": {"generator": "uniform"}, "replace_mlm": {"objective": "replace_mlm"},
                "all_tokens_mlm": {"objective": "all_tokens_mlm"}, "electric": {"objective": "electric"}}
    for o, extra in variants.items():
        cfg = build_config(None, {**overrides, "seq_len": "32", "vocab_size": str(data.vocab_size), **extra})
        torch.manual_seed(0)
        model = Electra(cfg, SpecialTokens(sp.pad, sp.cls, sp.sep, sp.mask))
        one = Dist(0, 0, 1, torch.device("cpu"))
        a, b = (evaluate(model, data, cfg, micro, one, contextlib.nullcontext()) for micro in (3, 16))
        assert a.keys() == b.keys() and len(a) >= 9
        assert all(abs(a[k] - b[k]) < 1e-5 * max(1.0, abs(a[k])) for k in a), (o, a, b)
        values[o] = a
    assert values["mlm"]["eval/rtd_loss"] == 0.0 and "eval/disc_auc" not in values["mlm"]
    assert 0 < values["electra"]["eval/replaced_rate"] < 0.2


def test_gdes_run_trains_resumes_and_its_discriminator_loads_as_the_sum(tiny_dataset, tmp_path):
    """--sharing gdes end to end: the residual leaves zero, a resume continues, and what fine-tuning, `detect` and
    the export load is the embedding the discriminator read: the generator's tables plus the residual."""
    from electra.checkpoint import load_discriminator
    run = tmp_path / "gdes"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard"]
    assert main([*args, *tiny_overrides(max_steps=4, sharing="gdes")]) == 0
    assert main([*args, "--max-steps", "6"]) == 0
    assert "resuming from" in (run / "train.log").read_text()
    w = final_weights(run)
    delta = w["discriminator.embeddings.delta.word.weight"]
    assert float(delta.abs().max()) > 0
    encoder, pre = load_discriminator(run)
    assert pre.step == 6 and pre.cfg.objective.sharing == "gdes"
    torch.testing.assert_close(encoder.embeddings.word.weight.detach(), w["generator.embeddings.word.weight"] + delta)
    # a checkpoint without the generator's table that the residual adds to: a one-line error, not a KeyError
    from safetensors.torch import save_file

    from electra.errors import UserError
    ckpt = run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip() / "model.safetensors"
    save_file({k: v for k, v in w.items() if k != "generator.embeddings.word.weight"}, str(ckpt))
    with pytest.raises(UserError, match="do not match the sha256"):  # the checksum saved with it tells first
        load_discriminator(run)
    state = json.loads((ckpt.parent / "state.json").read_text())
    (ckpt.parent / "state.json").write_text(json.dumps({k: v for k, v in state.items() if k != "sha256"}))
    with pytest.raises(UserError, match="lacks 'embeddings.word.weight'"):
        load_discriminator(run)
