"""`electra evaluate`: a checkpoint's held-out numbers on a prepared dataset equal the run's own evaluation of that
checkpoint (same rows, same corruption); another vocabulary or no held-out split is a one-line error.

    python -m pytest tests/test_evaluate_run.py -q
"""
from __future__ import annotations

import json

import pytest
from conftest import tiny_overrides

from electra.cli import main


@pytest.mark.parametrize("extra", [[], ["--masking", "span", "--generator", "unigram"]])
def test_evaluate_equals_the_runs_own_evaluation(tiny_dataset, tmp_path, capsys, extra):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard", *extra,
                 *tiny_overrides(max_steps=4, eval_every=2, save_every=2)]) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    by_step = {r["step"]: {k: v for k, v in r.items() if k.startswith("eval/")} for r in records if "eval/loss" in r}
    capsys.readouterr()
    for target, step in ((run, 4), (run / "checkpoints" / "step_00000002", 2)):
        assert main(["evaluate", str(target), "--data", str(tiny_dataset), "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got.pop("step") == step and got == by_step[step]


def test_evaluate_refuses_what_does_not_fit(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
                 *tiny_overrides(max_steps=1, eval_every=0)]) == 0
    root = tiny_dataset.parent
    none = tmp_path / "none"
    assert main(["prepare", str(root / "corpus.txt"), "--vocab", str(root / "vocab" / "vocab.txt"), "--seq-len", "32",
                 "--out", str(none), "--valid-fraction", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(none)]) == 2
    assert "no held-out examples" in capsys.readouterr().err
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "vocab.txt").write_text("".join(f"{t}\n" for t in
                                                      ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefgh"]))
    other = tmp_path / "other"
    assert main(["prepare", str(root / "corpus.txt"), "--vocab", str(tmp_path / "v" / "vocab.txt"), "--seq-len", "32",
                 "--out", str(other), "--valid-fraction", "0.1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another vocabulary" in err[0]
