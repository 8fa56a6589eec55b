"""The paper's ablations of the objective: fixed generators (`--generator uniform`, the original's
uniform_generator; `--generator unigram`, Figure 3's baseline), the discriminator trained on the masked
positions only (`--rtd-tokens masked`, Table 5's "ELECTRA 15%"), and Table 5's discriminators that are masked
LMs on the corrupted text (`--objective replace_mlm`, `--objective all_tokens_mlm`).

    python -m pytest tests/test_ablations.py -q
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_overrides
from test_objective import SP, batch, tiny_cfg
from test_sampling import chi2

from electra.cli import main
from electra.errors import UserError
from electra.flops import model_flops_per_token, train_flops
from electra.objective import Electra, Masked, mask_tokens, rtd_loss, sample_fixed
from electra.variants import all_tokens_mlm_loss

PRIOR = torch.tensor([0.0, 3.0, 1.0, 0.0, 5.0, 1.0, 2.0, 0.5])  # two entries of weight 0


def slots(n: int, target: int = 4) -> tuple[Masked, torch.Tensor]:
    """n masked slots at positions 1..n of one row, every one's original token `target`."""
    ids = torch.full((1, n + 1), target)
    return Masked(ids, torch.arange(1, n + 1)[None], torch.ones(1, n), torch.full((1, n), target)), ids


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_a_fixed_generator_samples_its_prior(temperature):
    n = 40_000
    m, ids = slots(n)
    s = sample_fixed(PRIOR, m, ids, temperature, False, torch.Generator().manual_seed(0))
    counts = torch.bincount(s.tokens.flatten(), minlength=len(PRIOR)).double()
    p = PRIOR.double() ** (1 / temperature)
    assert chi2(counts, p / p.sum()) < 30  # 5 degrees of freedom: P(chi2 > 30) ~ 1.5e-5; zero weights never drawn
    assert (s.argmax == 4).all()  # the prior's most likely token
    assert torch.equal(s.labels[0, 1:], s.tokens[0] != 4)  # a draw of the original token is labelled original


def test_disallow_correct_draws_from_the_rest_of_the_prior():
    n = 40_000
    m, ids = slots(n, target=4)  # the heaviest entry is excluded
    s = sample_fixed(PRIOR, m, ids, 1.0, True, torch.Generator().manual_seed(1))
    counts = torch.bincount(s.tokens.flatten(), minlength=len(PRIOR)).double()
    assert counts[4] == 0 and s.labels[0, 1:].all()  # every slot becomes fake
    rest = PRIOR.double().clone()
    rest[4] = 0
    assert chi2(counts, rest / rest.sum()) < 27  # 4 degrees of freedom
    # the edges of [0, 1): the first and the last entry of positive weight
    u = torch.tensor([[[0.0], [1.0 - 2**-53]]], dtype=torch.float64)
    m2, ids2 = slots(2, target=1)
    assert sample_fixed(PRIOR, m2, ids2, 1.0, True, u=u).tokens.tolist() == [[2, 7]]


def test_uniform_generator_has_no_network_and_trains_the_discriminator_alone():
    model = Electra(tiny_cfg(generator="uniform"), SP)
    assert model.generator is None and model.generator_head is None
    assert torch.equal(model.generator_prior, torch.ones(300))  # uniform over the whole vocabulary, as the original
    ids, seg, am = batch()
    torch.manual_seed(0)
    out = model(ids, seg, am)
    assert out.losses.mlm == 0 and torch.allclose(out.losses.total, 50 * out.losses.rtd)
    assert float(out.stats.replaced) > 0 and out.stats.gen_correct == 0  # argmax of a uniform prior: id 0 ([PAD])
    out.losses.total.backward()
    assert all(p.grad is not None for p in model.parameters())  # every parameter belongs to the discriminator
    w = model.weights()
    assert "generator_prior" in w and not any(k.startswith("generator.") for k in w)
    model.load_weights(w)
    # a unigram prior is saved with the weights, so a resumed run or an evaluation samples the same distribution
    uni = Electra(tiny_cfg(generator="unigram"), SP)
    uni.set_prior(torch.arange(300.0))
    fresh = Electra(tiny_cfg(generator="unigram"), SP)
    fresh.load_weights(uni.weights())
    assert torch.equal(fresh.generator_prior, torch.arange(300.0))


def test_fixed_generator_configs_that_cannot_work_are_one_line_errors():
    with pytest.raises(UserError, match="needs a trained generator"):
        tiny_cfg(generator="uniform", sharing="gdes")
    for objective in ("mlm", "replace_mlm", "all_tokens_mlm", "electric"):  # each needs its trained generator
        with pytest.raises(UserError, match=f"is for objective=electra; objective={objective} needs"):
            tiny_cfg(generator="unigram", objective=objective)
    with pytest.raises(UserError, match="objective.generator must be one of"):
        tiny_cfg(generator="bigram")
    with pytest.raises(UserError, match="rtd_tokens must be all or masked"):
        tiny_cfg(rtd_tokens="some")


def test_rtd_on_masked_positions_only_against_hand_computation():
    """ELECTRA 15%: the BCE on the masked slots (a position drawn twice counts twice), nothing elsewhere."""
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.5], [0.0, 3.0, -2.0, 0.7]], requires_grad=True)
    labels = torch.tensor([[True, False, True, False], [False, True, False, False]])
    am = torch.ones(2, 4, dtype=torch.bool)
    m = Masked(None, torch.tensor([[1, 2, 2], [3, 0, 0]]), torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), None)
    bce = lambda x, y: math.log(1 + math.exp(-x if y else x))
    manual = (bce(-1.0, False) + 2 * bce(0.5, True) + bce(0.7, False)) / 4
    loss = rtd_loss(logits, labels, am, m)
    assert abs(float(loss.detach()) - manual) < 1e-6
    loss.backward()
    touched = logits.grad != 0
    assert touched.tolist() == [[False, True, True, False], [False, False, False, True]]


def test_electra_15_model_step():
    """In the model, the RTD loss covers the masked slots only: it equals the hand-gathered BCE over them."""
    cfg = tiny_cfg(rtd_tokens="masked")
    model = Electra(cfg, SP)
    ids, seg, am = batch()
    torch.manual_seed(0)
    out = model(ids, seg, am)
    torch.manual_seed(0)  # the same draws: the masking is the step's first use of the generator
    m = mask_tokens(ids, am, SP, cfg.max_predictions, 0.15, 0.85)
    lg, lb = out.disc_logits.gather(1, m.positions), out.labels.gather(1, m.positions).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(lg, lb, reduction="none")
    torch.testing.assert_close(out.losses.rtd, (bce * m.weights).sum() / (m.weights.sum() + 1e-6))


def test_fixed_generator_flops_are_the_discriminator_alone():
    electra, uniform = tiny_cfg(), tiny_cfg(generator="uniform")
    mlm = tiny_cfg(objective="mlm")
    assert train_flops(uniform) < train_flops(electra)
    assert model_flops_per_token(uniform) < model_flops_per_token(electra)
    # the discriminator's share: ELECTRA minus its generator (the full-size MLM model minus its own head is
    # not that, so compare to an independent sum instead)
    gen_only = train_flops(electra) - train_flops(uniform)
    assert 0 < gen_only < train_flops(mlm)


def test_token_counts_match_a_count_over_the_examples(tiny_dataset):
    from electra.data.dataset import PretrainData
    data = PretrainData(tiny_dataset)
    expected = np.bincount(np.concatenate([data.train[i] for i in range(len(data.train))]), minlength=data.vocab_size)
    got = data.train.token_counts(data.vocab_size, chunk=97)  # chunks that cut through examples
    assert np.array_equal(got, expected) and got.sum() > 0


def test_unigram_and_electra_15_run_resume_and_export(tiny_dataset, tmp_path, capsys):
    """CLI end to end: the prior is the training split's counts with the special tokens removed, it survives a
    resume, held-out metrics are logged, no generator alert fires, and the export writes the discriminator only."""
    from test_pretrain import final_weights

    from electra.data.dataset import PretrainData
    from electra.hf_export import export
    run = tmp_path / "unigram"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard"]
    assert main([*args, *tiny_overrides(max_steps=4, generator="unigram", rtd_tokens="masked")]) == 0
    assert main([*args, "--max-steps", "6"]) == 0
    assert "resuming from" in (run / "train.log").read_text()
    data = PretrainData(tiny_dataset)
    expected = torch.from_numpy(data.train.token_counts(data.vocab_size)).float()
    sp = data.special
    expected[[sp.pad, sp.cls, sp.sep, sp.mask]] = 0
    torch.testing.assert_close(final_weights(run)["generator_prior"], expected)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/disc_auc" in r]
    assert evals and all(r["eval/mlm_loss"] == 0 and r["eval/replaced_rate"] > 0 for r in evals)
    assert "(generator_" not in capsys.readouterr().out  # no alert about a generator that does not exist
    result = export(run, tmp_path / "hf")
    assert [f.name for f, _ in result.folders] == ["discriminator"] and "no generator network" in result.notes[0]
    assert not (tmp_path / "hf" / "generator").exists()
    # the exported discriminator starts a uniform-generator run (continued pre-training, generator-free)
    again = tmp_path / "again"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(again), "--init", str(tmp_path / "hf"),
                 "--no-tensorboard", *tiny_overrides(max_steps=1, eval_every=0, generator="uniform")]) == 0
    assert "initialised from" in (again / "train.log").read_text()
    loaded = final_weights(again)
    assert "generator_prior" in loaded and not any(k.startswith("generator.") for k in loaded)


def test_all_tokens_mlm_loss_against_the_explicit_mixture():
    """p(v) = D 1[v = input] + (1 - D) softmax(logits)[v], D = sigmoid(-gate), built as a full (V,) vector per token."""
    g = torch.Generator().manual_seed(0)
    B, T, V = 2, 5, 11
    logits = torch.randn(B, T, V, generator=g) * 2
    gate = torch.randn(B, T, generator=g) * 2
    original = torch.randint(0, V, (B, T), generator=g)
    corrupted = original.clone()
    corrupted[0, 1], corrupted[1, 3] = (original[0, 1] + 1) % V, (original[1, 3] + 2) % V
    am = torch.ones(B, T, dtype=torch.bool)
    am[1, 4] = False
    nll, correct = 0.0, 0
    for b in range(B):
        for t in range(T):
            if not am[b, t]:
                continue
            copy = 1 / (1 + math.exp(float(gate[b, t])))
            p = (1 - copy) * torch.softmax(logits[b, t].double(), -1)
            p[corrupted[b, t]] += copy
            nll -= math.log(float(p[original[b, t]]))
            correct += int(int(p.argmax()) == int(original[b, t]))
    out = all_tokens_mlm_loss(logits, gate, original, corrupted, am)
    assert abs(float(out.loss) - nll / 9) < 1e-5 and int(out.correct) == correct and int(out.count) == 9
    # a gate sure of "original" on an unchanged token costs nothing; on a replaced one the LM must pay
    sure = torch.full((B, T), -30.0)
    assert float(all_tokens_mlm_loss(logits, sure, original, original, am).loss) < 1e-6


@pytest.mark.parametrize("objective", ["replace_mlm", "all_tokens_mlm"])
def test_masked_lm_discriminators_train_on_the_corrupted_text(objective):
    """Replace MLM predicts the originals at the masked slots from the generator's samples, All-Tokens MLM every
    token; both with an LM head tied to the discriminator's word table, weight 1; the generator is ELECTRA's."""
    model = Electra(tiny_cfg(objective=objective, generator_hidden_fraction="0.5"), SP)
    assert (model.discriminator_head is not None) == (objective == "all_tokens_mlm")  # the copy gate
    seen = {}
    model.discriminator_lm_head.register_forward_hook(lambda mod, inp, out: seen.update(shape=tuple(out.shape)))
    ids, seg, am = batch()
    torch.manual_seed(0)
    out = model(ids, seg, am)
    N = model.cfg.max_predictions
    assert seen["shape"] == ((4, N, 300) if objective == "replace_mlm" else (4, 16, 300))
    torch.testing.assert_close(out.losses.total, out.losses.mlm + out.losses.rtd)  # disc_weight 50 is for RTD only
    count = out.stats.masked if objective == "replace_mlm" else am.sum()
    assert float(out.stats.lm_count) == float(count) and 0 <= float(out.stats.lm_correct) <= float(count)
    assert (out.disc_logits is None) == (objective == "replace_mlm")
    model.zero_grad()
    out.losses.rtd.backward()  # the discriminator's loss never reaches the generator but through shared embeddings
    for name, p in model.generator.named_parameters():
        assert name.startswith("embeddings.") or p.grad is None or p.grad.abs().sum() == 0, name
    assert model.discriminator_lm_head.dense.weight.grad.abs().sum() > 0
    with pytest.raises(UserError, match="rtd_tokens=masked restricts the RTD loss"):
        tiny_cfg(objective=objective, rtd_tokens="masked")
    with pytest.raises(UserError, match="masked-LM loss of weight 1"):
        tiny_cfg(objective=objective, disc_weight="10")
    # MFU count: the LM head (D->E dense, E->V projection) replaces the RTD head (D->D, D->1) on N of T slots
    # (replace_mlm) or is added on every token (all_tokens_mlm); 3 x for forward + backward
    D, E, V, T = 32, 16, 300, 16
    lm_head, rtd_head = 2 * (D * E + E * V), 2 * (D * D + D)
    extra = 3 * (N / T * lm_head - rtd_head) if objective == "replace_mlm" else 3 * lm_head
    assert model_flops_per_token(tiny_cfg(objective=objective)) - model_flops_per_token(tiny_cfg()) == pytest.approx(extra)
    # the paper's count: ELECTRA's generator plus a discriminator counted as the MLM baseline's model (Replace MLM)
    generator = train_flops(tiny_cfg()) - train_flops(tiny_cfg(generator="uniform"))
    if objective == "replace_mlm":
        assert train_flops(tiny_cfg(objective=objective)) == pytest.approx(train_flops(tiny_cfg(objective="mlm")) + generator)
    else:
        assert train_flops(tiny_cfg(objective=objective)) > train_flops(tiny_cfg(objective="replace_mlm"))


@pytest.mark.parametrize("objective", ["replace_mlm", "all_tokens_mlm"])
def test_masked_lm_discriminator_runs_from_the_cli(tiny_dataset, tmp_path, objective):
    run = tmp_path / objective
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
                 *tiny_overrides(max_steps=4, objective=objective)]) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train/loss" in r]
    assert all(0 <= r["train/disc_lm_acc"] <= 1 for r in train)
    evals = [r for r in records if "eval/disc_lm_acc" in r]
    assert evals and all(("eval/disc_auc" in r) == (objective == "all_tokens_mlm") for r in evals)
    e = evals[-1]
    assert abs(e["eval/loss"] - (e["eval/mlm_loss"] + e["eval/rtd_loss"])) < 1e-4
    assert "disc_lm_acc" in (run / "train.log").read_text()
