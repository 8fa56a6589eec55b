"""`electra export` writes a model card per folder, from what the run recorded, and is all or nothing."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import test_hf
import torch
from safetensors.torch import load_file
from test_hf import electra_model, tiny_cfg, write_run

from electra.checkpoint import save_checkpoint
from electra.errors import UserError
from electra.flops import train_flops
from electra.hf import export

vocab = test_hf.vocab  # the module-scoped fixture: a small vocabulary file


def card_metadata(folder: Path) -> dict:
    """The YAML block as the Hugging Face Hub reads it (huggingface_hub's own parser), when installed."""
    hub = pytest.importorskip("huggingface_hub")
    return hub.ModelCard.load(folder / "README.md").data.to_dict()


def test_export_writes_cards_from_the_run_record(vocab, tmp_path):
    model = electra_model(tiny_cfg(), vocab)
    run = write_run(tmp_path / "run", model, vocab, step=7)
    # the checkpoint at step 7 again, now with what the training loop records in its state
    save_checkpoint(run, 7, model.weights(), torch.optim.SGD(model.parameters(), lr=0.1),
                    {"tokens_seen": 7 * 128 * 64, "elapsed": 5400.0}, keep_last=1)
    records = [{"step": 5, "train/loss": 9.0}, {"step": 5, "eval/disc_auc": 0.61, "eval/gen_acc": 0.25},
               {"step": 7, "eval/disc_auc": 0.734, "eval/gen_acc": 0.3125}, {"step": 9, "eval/disc_auc": 0.99}]
    (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n{\"step\": 1")  # a torn last line
    export(run, tmp_path / "out")

    disc = (tmp_path / "out" / "discriminator" / "README.md").read_text()
    gen = (tmp_path / "out" / "generator" / "README.md").read_text()
    assert card_metadata(tmp_path / "out" / "generator")["pipeline_tag"] == "fill-mask"
    meta = card_metadata(tmp_path / "out" / "discriminator")
    assert meta["library_name"] == "transformers" and "electra" in meta["tags"] and "pipeline_tag" not in meta
    assert "discriminator AUC | 0.7340" in disc and "0.99" not in disc  # the evaluation at the exported step
    assert "generator accuracy | 0.3125" in disc and "7 steps, 0.1 M tokens, 1.50 h" in disc
    assert "50 x RTD" in disc and "15% of tokens" in disc and "ElectraForMaskedLM.from_pretrained" in gen
    assert f"| compute | {train_flops(model.cfg, steps=7):.2e} FLOPs" in disc  # spec 1.9, for the steps trained
    for sub, text in (("discriminator", disc), ("generator", gen)):  # the parameters actually written
        n = sum(t.numel() for t in load_file(str(tmp_path / "out" / sub / "model.safetensors")).values())
        assert f"{n / 1e6:.2f} M parameters" in text


def test_card_without_a_run_record(vocab, tmp_path):
    """A checkpoint folder copied alone (no metrics.jsonl, no state facts) still gets a card, minus those."""
    run = write_run(tmp_path / "run", electra_model(tiny_cfg(objective="mlm"), vocab), vocab, step=3)
    export(run, tmp_path / "out")
    text = (tmp_path / "out" / "generator" / "README.md").read_text()
    assert "masked-language model of an MLM" in text and "3 steps |" in text and "Held-out" not in text


def test_failed_export_leaves_the_output_as_it_was(vocab, tmp_path):
    model = electra_model(tiny_cfg(), vocab)
    good = write_run(tmp_path / "good", model, vocab)
    export(good, tmp_path / "out")
    before = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}

    weights = {k: v for k, v in model.weights().items() if not k.startswith("generator.blocks.0.")}
    broken = tmp_path / "broken"  # the discriminator converts; the generator, written second, fails
    write_run(broken, model, vocab)
    save_checkpoint(broken, 7, weights, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), {}, 1)
    with pytest.raises(UserError, match="generator"):
        export(broken, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(UserError, match="generator"):
        export(broken, tmp_path / "out", overwrite=True)
    after = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no staging folder left behind
