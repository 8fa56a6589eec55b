"""Electric (`--objective electric`, the original code's electric_objective): a two-tower cloze generator that never
sees the token it predicts, the noise-contrastive logit, labels on every sampled slot, gradient paths, and a run
from the command line.

    python -m pytest tests/test_electric.py -q
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import tiny_overrides
from test_objective import SP, batch, tiny_cfg

from electra.cli import main
from electra.config import ModelConfig
from electra.errors import UserError
from electra.flops import model_flops_per_token, train_flops
from electra.model import Encoder, TwoTowerGenerator
from electra.objective import Electra, mask_tokens, maskable
from electra.variants import cloze_loss, electric_logits

CFG = ModelConfig(vocab_size=50, hidden_size=16, embedding_size=8, num_layers=2, num_heads=2, intermediate_size=32,
                  max_position_embeddings=16, hidden_dropout=0.0, attention_dropout=0.0)


def rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50, (2, 10), generator=g)
    ids[1, 7:] = 0  # padding at the end of the second row
    return ids, torch.zeros_like(ids), ids != 0


@pytest.mark.parametrize("direction", ["ltr", "rtl"])
def test_a_tower_reads_only_one_side(direction):
    torch.manual_seed(0)
    tower = Encoder(CFG, direction=direction).eval()
    ids, seg, am = rows()
    base = tower(ids, seg, am)
    assert torch.isfinite(base).all()  # pad queries of the right-to-left tower see no real key: still finite
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % 50
    after = tower(changed, seg, am)
    same = slice(0, 5) if direction == "ltr" else slice(6, 10)  # the side that cannot see position 5
    torch.testing.assert_close(after[0, same], base[0, same])
    moved = slice(5, 10) if direction == "ltr" else slice(0, 6)
    assert (after[0, moved] - base[0, moved]).abs().amax(-1).min() > 1e-6  # every position that can see it moves


def test_the_cloze_generator_never_sees_the_token_it_predicts():
    """q(x_t | ...) at position t is the same whatever x_t is, and changes with every other real token."""
    torch.manual_seed(0)
    gen = TwoTowerGenerator(CFG, CFG.embedding_size).eval()
    ids, seg, am = rows()
    word = gen.embeddings.word.weight
    base = gen(ids, seg, am, word)
    assert base.shape == (2, 10, 50)
    for t in range(1, 9):
        changed = ids.clone()
        changed[0, t] = (ids[0, t] + 7) % 50
        after = gen(changed, seg, am, word)
        torch.testing.assert_close(after[0, t], base[0, t])  # blind to its own token
        others = [s for s in range(1, 10) if s != t]
        assert (after[0, others] - base[0, others]).abs().amax(-1).min() > 1e-6  # and sees every other one
    assert gen.embeddings is gen.rtl.embeddings  # one embedding block for both towers
    assert not any(k.startswith("rtl.embeddings") for k in dict(gen.named_parameters()))


def test_noise_logit_and_cloze_loss_against_hand_computation():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 5, generator=g)
    energy = torch.tensor([[0.3, -1.2, 2.0]])
    corrupted = torch.tensor([[4, 0, 2]])
    got = electric_logits(energy, logits, corrupted, 0.15)
    for t in range(3):
        log_q = float(torch.log_softmax(logits[0, t].double(), -1)[corrupted[0, t]])
        assert abs(float(got[0, t]) - (float(energy[0, t]) + log_q + math.log(0.15 / 0.85))) < 1e-5
    original = torch.tensor([[1, 3, 2]])
    candidates = torch.tensor([[False, True, True]])
    ce = [-float(torch.log_softmax(logits[0, t], -1)[original[0, t]]) for t in (1, 2)]
    assert abs(float(cloze_loss(logits, original, candidates)) - sum(ce) / 2) < 1e-5


def test_electric_step_labels_gradients_and_weights():
    model = Electra(tiny_cfg(objective="electric", generator_hidden_fraction="0.5"), SP)
    assert model.generator_head is None and isinstance(model.generator, TwoTowerGenerator)
    assert model.generator.embeddings is model.discriminator.embeddings  # shared, as the original's default
    ids, seg, am = batch()
    torch.manual_seed(0)
    out = model(ids, seg, am)
    torch.manual_seed(0)  # the step's first draws are the masking's
    m = mask_tokens(ids, am, SP, model.cfg.max_predictions, 0.15, 0.85)
    updated = torch.zeros_like(am).scatter(1, m.positions, m.weights.bool())
    assert torch.equal(out.labels, updated)  # every sampled slot is noise, a correct sample too
    # the generator trains on every candidate, with the discriminator's loss at the paper's weight
    word = model.generator.embeddings.word.weight
    with torch.no_grad():
        cloze = cloze_loss(model.generator(ids, seg, am, word), ids, maskable(ids, am, SP))
    torch.testing.assert_close(out.losses.total, cloze + 50 * out.losses.rtd)
    # the noise logit holds q through a stop-gradient: the RTD loss trains the towers' embeddings only (shared)
    model.zero_grad()
    out.losses.rtd.backward(retain_graph=True)
    for name, p in model.generator.named_parameters():
        assert name.startswith("ltr.embeddings.") or p.grad is None or p.grad.abs().sum() == 0, name
    assert model.discriminator_head.out.weight.grad.abs().sum() > 0
    w = model.weights()  # every tensor once: the towers' shared block is saved as the discriminator's
    assert not any(".ltr.embeddings." in k or ".rtl.embeddings." in k for k in w)
    model.load_weights(w)
    own = Electra(tiny_cfg(objective="electric", sharing="none"), SP)
    assert own.generator.embeddings is not own.discriminator.embeddings
    assert "generator.ltr.embeddings.word.weight" in own.weights()
    own.load_weights(own.weights())
    for sharing in ("all", "gdes"):
        with pytest.raises(UserError, match="two-tower generator"):
            tiny_cfg(objective="electric", sharing=sharing, generator_hidden_fraction="1")
    assert train_flops(tiny_cfg(objective="electric")) > train_flops(tiny_cfg())
    assert model_flops_per_token(tiny_cfg(objective="electric")) > model_flops_per_token(tiny_cfg())


def test_electric_runs_resumes_and_exports_its_discriminator(tiny_dataset, tmp_path):
    from electra.checkpoint import load_discriminator
    from electra.detect import Detector
    from electra.hf_export import export
    run = tmp_path / "electric"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard"]
    assert main([*args, *tiny_overrides(max_steps=4, objective="electric")]) == 0
    assert main([*args, "--max-steps", "6"]) == 0
    assert "resuming from" in (run / "train.log").read_text()
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/disc_auc" in r]
    assert [r["step"] for r in evals] == [3, 4, 6]  # every --eval-every, and at each run's end
    assert all(0 <= r["eval/disc_auc"] <= 1 and r["eval/replaced_rate"] > 0 for r in evals)
    _encoder, pre = load_discriminator(run)  # what fine-tuning starts from
    assert pre.step == 6 and pre.cfg.objective.objective == "electric"
    result = export(run, tmp_path / "hf")
    assert [a for _, a in result.folders] == ["ElectraForPreTraining"] and "two-tower" in result.notes[0]
    card = (tmp_path / "hf" / "discriminator" / "README.md").read_text()
    assert "discriminator of an Electric run" in card and "noise-contrastive estimation" in card
    # detect: P(noise) with the towers' q, and each sentence's score, the sum of -energy over its tokens; the energy
    # is what the exported discriminator's head computes in transformers
    texts = ["the cat sat on the mat", "mat the on sat cat the"]
    detector = Detector(run)
    dets = detector(texts)
    assert all(0 <= p <= 1 for d in dets for p in d.probs) and all(isinstance(d.score, float) for d in dets)
    tf = pytest.importorskip("transformers")
    disc = tf.ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").eval()
    sp = detector.special
    for text, det in zip(texts, dets):
        ids = torch.tensor([[sp.cls, *detector.tokenizer.encode(text, add_special_tokens=False).ids, sp.sep]])
        with torch.no_grad():
            energy = disc(input_ids=ids).logits[0, 1:-1]
        assert abs(det.score + float(energy.sum())) < 1e-4
    # continued pre-training from the exported discriminator: the towers start fresh, the discriminator does not
    again = tmp_path / "again"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(again), "--init", str(tmp_path / "hf"),
                 "--no-tensorboard", *tiny_overrides(max_steps=1, eval_every=0, objective="electric")]) == 0
    assert "initialised from" in (again / "train.log").read_text() and "(discriminator, discriminator_head)" in \
        (again / "train.log").read_text()
    # the export is marked Electric: detect refuses to show sigmoid(energy) as P(replaced), and an ELECTRA run
    # takes the body but not the energy head
    assert json.loads((tmp_path / "hf" / "discriminator" / "config.json").read_text())["electra_objective"] == "electric"
    with pytest.raises(UserError, match="exported Electric discriminator"):
        Detector(tmp_path / "hf")
    electra_run = tmp_path / "electra_run"
    with pytest.warns(UserWarning, match="Electric energy head does not fit objective electra"):
        assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(electra_run), "--init", str(tmp_path / "hf"),
                     "--no-tensorboard", *tiny_overrides(max_steps=1, eval_every=0)]) == 0
    assert "initialised from" in (electra_run / "train.log").read_text() and "(discriminator)" in \
        (electra_run / "train.log").read_text()
