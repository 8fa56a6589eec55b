"""Training options run end to end on CPU: `--compile true` (Inductor's C++ kernels) against the eager step,
`--clip-norm` (0 turns clipping off), `--optimizer adamw` through an exact resume, `--device cpu`, and the
architecture and optimizer fields no other test sets.

    python -m pytest tests/test_train_options.py -q
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from safetensors.torch import load_file

from electra import pretrain
from electra.cli import main
from electra.config import PretrainConfig
from electra.data.dataset import PretrainData
from electra.objective import Electra, SpecialTokens


def train(data: Path, out: Path, *extra: str, **overrides: object) -> Path:
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--no-tensorboard",
                 *tiny_overrides(**{"eval_every": 0, **overrides}), *extra]) == 0
    return out


def weights(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "checkpoints" / "LATEST").read_text().strip()
    return load_file(str(run / "checkpoints" / latest / "model.safetensors"))


def losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


def initial_weights(run: Path, data: Path) -> dict[str, torch.Tensor]:
    """The weights the run started from, built as the loop builds them: seeded from train.seed."""
    cfg = PretrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    s = PretrainData(data).special
    torch.manual_seed(cfg.train.seed)
    return Electra(cfg, SpecialTokens(s.pad, s.cls, s.sep, s.mask)).weights()


def largest_change(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.parametrize("masking", ["token", "whole_word"])
def test_compiled_step_gives_the_eager_steps_losses_on_cpu(tiny_dataset, tmp_path, masking):
    """With dropout off and Inductor drawing its random numbers as eager torch does (`fallback_random`: the
    same masks and samples), `--compile true` trains the eager model: the same losses to float rounding."""
    import torch._inductor.config as inductor

    options = {"max_steps": 3, "hidden_dropout": 0.0, "attention_dropout": 0.0, "masking": masking}
    eager = train(tiny_dataset, tmp_path / "eager", "--device", "cpu", **options)
    with inductor.patch(fallback_random=True):  # the config module's own patching (undone cleanly)
        compiled = train(tiny_dataset, tmp_path / "compiled", "--device", "cpu", "--compile", "true", **options)
    assert losses(compiled) == pytest.approx(losses(eager), rel=1e-5)
    assert largest_change(weights(compiled), weights(eager)) < 1e-5


def test_clip_norm_bounds_the_gradient_and_zero_turns_clipping_off(tiny_dataset, tmp_path):
    """One step from the same start: clipping at a norm far above the gradient's is no clipping, and so is
    --clip-norm 0; clipping at 1e-9 shrinks every gradient below Adam's epsilon, so the weights hardly move."""
    one = {"max_steps": 1, "warmup_steps": 0, "save_every": 1}
    off = train(tiny_dataset, tmp_path / "off", "--clip-norm", "0", **one)
    huge = train(tiny_dataset, tmp_path / "huge", "--clip-norm", "1e9", **one)
    tiny = train(tiny_dataset, tmp_path / "tiny", "--clip-norm", "1e-9", **one)
    start = initial_weights(off, tiny_dataset)
    assert all(torch.equal(weights(off)[k], weights(huge)[k]) for k in start)
    assert largest_change(weights(off), start) > 1e-4  # a real step: lr 1e-3 times Adam's O(1) update
    assert largest_change(weights(tiny), start) < 0.01 * largest_change(weights(off), start)


def test_torch_adamw_trains_and_resumes_exactly(tiny_dataset, tmp_path, monkeypatch):
    """`--optimizer adamw` (torch's, with bias correction, unlike the original's AdamWeightDecay): a run
    interrupted after step 3 (Ctrl-C: it saves) and resumed ends with the uninterrupted run's weights, so the
    optimizer's state (its step counts included) round-trips through the checkpoint."""
    straight = train(tiny_dataset, tmp_path / "straight", "--optimizer", "adamw", max_steps=6, save_every=4)

    def ctrl_c_after_step_3(step: int, rank: int) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with monkeypatch.context() as m:
        m.setattr(pretrain, "inject_fault", ctrl_c_after_step_3)
        split = train(tiny_dataset, tmp_path / "split", "--optimizer", "adamw", max_steps=6, save_every=4)
    assert (split / "checkpoints" / "LATEST").read_text().strip() == "step_00000003"
    train(tiny_dataset, split, "--optimizer", "adamw", max_steps=6, save_every=4)
    a, b = weights(straight), weights(split)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses(split) == losses(straight)
    ours = train(tiny_dataset, tmp_path / "electra", max_steps=6, save_every=4)  # the default: another update rule
    assert largest_change(weights(ours), a) > 1e-5
    state = json.loads((straight / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["config"]["train"]["optimizer"] == "adamw"


def test_architecture_and_optimizer_fields_reach_the_model(tiny_dataset, tmp_path):
    """--type-vocab-size, --layer-norm-eps, --initializer-range and --adam-beta1 change what they name."""
    run = train(tiny_dataset, tmp_path / "run", "--type-vocab-size", "3", "--layer-norm-eps", "1e-5",
                "--initializer-range", "0.2", "--adam-beta1", "0.8", "--hidden-size", "256", "--intermediate-size",
                "512", max_steps=1, save_every=1)
    cfg = PretrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    s = PretrainData(tiny_dataset).special
    model = Electra(cfg, SpecialTokens(s.pad, s.cls, s.sep, s.mask))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-5 for m in norms)
    start = initial_weights(run, tiny_dataset)
    assert start["discriminator.embeddings.segment.weight"].shape[0] == 3
    w = start["discriminator.blocks.0.mlp.fc.weight"]  # (512, 256)
    # BERT's truncated normal (cut at 2 sigma) has a standard deviation of 0.88 sigma
    assert float(w.std()) == pytest.approx(0.88 * 0.2, rel=0.05)
    groups = json.loads((run / "checkpoints" / "step_00000001" / "state.json").read_text())["optimizer"]["param_groups"]
    assert all(g["betas"] == [0.8, 0.999] for g in groups)
