"""--activation-checkpointing: the blocks recompute their activations in the backward pass with the same dropout
masks, so gradients, and a whole pre-training or fine-tuning run, are those without it; only memory changes.

    python -m pytest tests/test_activation_checkpointing.py -q
"""
from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_overrides
from test_pretrain import final_weights

from electra.cli import main
from electra.config import ModelConfig
from electra.model import Encoder, set_activation_checkpointing
from electra.packing import pack


@pytest.mark.parametrize("packed", [False, True])
def test_gradients_equal_with_and_without_recomputation(packed):
    cfg = ModelConfig(vocab_size=50, hidden_size=32, embedding_size=16, num_layers=3, num_heads=2,
                      intermediate_size=64, max_position_embeddings=16)  # dropout 0.1: the masks must be replayed
    ids = torch.randint(5, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 9:], mask[2, 5:] = False, False
    seg = torch.zeros_like(ids)
    grads = []
    for on in (False, True):
        torch.manual_seed(1)
        enc = Encoder(cfg).train()
        set_activation_checkpointing(enc, on)
        torch.manual_seed(2)  # the same dropout draws in both forward passes
        out = enc(ids, seg, mask, pack(mask) if packed else None)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        grads.append({n: p.grad.clone() for n, p in enc.named_parameters()})
        assert enc.checkpointing is on
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0]), "recomputed dropout masks differ"


def test_a_run_with_checkpointing_is_the_run_without(tiny_dataset, tmp_path):
    runs = {}
    for on in ("false", "true"):
        out = tmp_path / on
        assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(out), "--no-tensorboard",
                     *tiny_overrides(max_steps=3, eval_every=0, activation_checkpointing=on)]) == 0
        assert json.loads((out / "config.json").read_text())["train"]["activation_checkpointing"] is (on == "true")
        runs[on] = final_weights(out)
    assert all(torch.equal(runs["false"][k], runs["true"][k]) for k in runs["false"])


def test_fine_tuning_with_checkpointing_saves_the_same_model(tmp_path):
    from safetensors.torch import load_file
    from test_finetune_custom import FAST, sentiment_rows, write_csv
    from test_finetune_fixtures import make_run

    run, data = make_run(tmp_path), tmp_path / "mine"
    write_csv(data / "train.csv", ["id", "text", "label"], sentiment_rows(24, 0))
    write_csv(data / "dev.csv", ["id", "text", "label"], sentiment_rows(8, 1))
    saved = []
    for extra in ([], ["--activation-checkpointing"]):
        out = tmp_path / f"out{len(extra)}"
        assert main(["finetune", "--task", "classify", "--data", str(data), "--model", str(run), "--out", str(out),
                     *FAST, "--epochs", "1", *extra]) == 0
        saved.append(load_file(str(out / "model" / "model.safetensors")))
    assert all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])


def test_out_of_memory_is_a_one_line_error_naming_the_remedies(tiny_dataset, tmp_path, monkeypatch, capsys):
    from electra import pretrain

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(pretrain.Electra, "forward", oom)
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), *tiny_overrides()]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of GPU memory" in err[0] and "--micro-batch-size" in err[0]
    assert "--activation-checkpointing" in err[0] and not (tmp_path / "run").exists()  # nothing half-written


def test_fine_tuning_out_of_memory_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from test_finetune_custom import FAST, sentiment_rows, write_csv
    from test_finetune_fixtures import make_run

    from electra.finetune.heads import FinetuneModel

    run, data = make_run(tmp_path), tmp_path / "mine"
    write_csv(data / "train.csv", ["id", "text", "label"], sentiment_rows(8, 0))
    write_csv(data / "dev.csv", ["id", "text", "label"], sentiment_rows(4, 1))

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")
    monkeypatch.setattr(FinetuneModel, "forward", oom)
    assert main(["finetune", "--task", "classify", "--data", str(data), "--model", str(run),
                 "--out", str(tmp_path / "out"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of GPU memory" in err[0] and "--activation-checkpointing" in err[0]
