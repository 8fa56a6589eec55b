"""Replaced-token detection against the spec (electra-spec 1.2-1.6, checklist 7): mask counts and
candidates on real tokenized rows, no random-token replacement, sampling, labels, gradient paths,
sharing modes, loss weights.

    python -m pytest tests/test_objective.py -q
"""
from __future__ import annotations

import math

import pytest
import torch
from conftest import SHARED

from electra.config import build_config
from electra.heldout import auc
from electra.meter import summarize
from electra.objective import (
    Electra,
    SpecialTokens,
    mask_tokens,
    mlm_loss,
    rtd_loss,
    sample_tokens,
)

SP = SpecialTokens(pad=0, cls=101, sep=102, mask=103)


def real_rows(n_rows: int = 64, T: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] A [SEP] rows of varying length from the Wikipedia sample, tokenized with the BERT vocab."""
    vocab = SHARED / "vocab" / "vocab.txt"
    wiki = SHARED / "pretrain" / "enwiki-2015-wikiextractor" / "sample" / "wiki_00"
    if not (vocab.exists() and wiki.exists()):
        pytest.skip("shared data not present")
    from electra.data.tokenizer import load_tokenizer
    tok = load_tokenizer(vocab)
    lines = [ln for ln in wiki.read_text(encoding="utf-8").splitlines() if len(ln) > 40 and not ln.startswith("<")]
    ids = torch.zeros(n_rows, T, dtype=torch.long)
    for i, line in enumerate(lines[:n_rows]):
        pieces = tok.encode(line, add_special_tokens=False).ids[: T - 2]
        row = [SP.cls, *pieces, SP.sep]
        ids[i, : len(row)] = torch.tensor(row)
    return ids, ids != SP.pad


def test_mask_counts_and_candidates_on_real_rows():
    ids, am = real_rows()
    N, p = 19, 0.15
    g = torch.Generator().manual_seed(0)
    m = mask_tokens(ids, am, SP, N, p, 0.85, g)
    n_nonpad = am.sum(1)
    for b in range(ids.shape[0]):
        k = max(1, min(N, round(float(n_nonpad[b]) * p)))
        assert m.weights[b].sum() == k  # the first k slots, exactly
        assert (m.weights[b, :k] == 1).all() and (m.weights[b, k:] == 0).all()
        chosen = m.positions[b, :k]
        assert am[b, chosen].all()  # never padding
        assert not torch.isin(ids[b, chosen], torch.tensor([SP.cls, SP.sep, SP.mask])).any()
        assert (m.positions[b, k:] == 0).all()
    assert (m.targets == ids.gather(1, m.positions)).all()


def test_no_random_token_replacement_and_85_percent_mask():
    ids, am = real_rows()
    changed = kept = 0
    for seed in range(20):
        m = mask_tokens(ids, am, SP, 19, 0.15, 0.85, torch.Generator().manual_seed(seed))
        diff = m.input_ids != ids
        assert (m.input_ids[diff] == SP.mask).all()  # a changed token is always [MASK], never a random one
        chosen = torch.zeros_like(am).scatter(1, m.positions, m.weights.bool())
        assert not (diff & ~chosen).any()  # nothing outside the chosen positions changes
        changed += int(diff.sum())
        kept += int((chosen & ~diff).sum())
    frac = changed / (changed + kept)
    assert abs(frac - 0.85) < 0.03, frac  # per slot 85%, slightly more per position (duplicates)


def test_special_and_pad_never_masked_even_in_short_rows():
    ids = torch.tensor([[SP.cls, 5, SP.sep, 0, 0], [SP.cls, SP.sep, 0, 0, 0]])
    m = mask_tokens(ids, ids != 0, SP, 3, 0.5, 1.0, torch.Generator().manual_seed(1))
    assert m.weights[0].sum() == 2 and (m.positions[0, :2] == 1).all()  # with replacement: duplicates allowed
    assert m.weights[1].sum() == 0  # no candidate at all: nothing masked, nothing counted
    assert m.input_ids[1].tolist() == ids[1].tolist()


def test_sample_equal_to_original_is_labelled_original():
    ids, am = real_rows(8)
    m = mask_tokens(ids, am, SP, 19, 0.15, 0.85, torch.Generator().manual_seed(0))
    V = 30522
    logits = torch.full((*m.positions.shape, V), -20.0)
    logits.scatter_(-1, m.targets[..., None], 20.0)  # the generator is (nearly) certain and right
    s = sample_tokens(logits, m, ids, 1.0, False)
    assert (s.corrupted_ids == ids).all() and not s.labels.any()
    s = sample_tokens(logits, m, ids, 1.0, True)  # disallow_correct: every chosen position becomes fake
    chosen = torch.zeros_like(am).scatter(1, m.positions, m.weights.bool())
    assert (s.labels == chosen).all()


def test_gumbel_max_samples_follow_the_softmax():
    logits = torch.tensor([[[2.0, 1.0, 0.0, -1.0]]]).expand(1, 4000, 4).contiguous()
    ids = torch.zeros(1, 4001, dtype=torch.long)
    positions = torch.arange(1, 4001)[None]
    from electra.objective import Masked
    m = Masked(ids, positions, torch.ones(1, 4000), torch.zeros(1, 4000, dtype=torch.long))
    for method in ("gumbel", "multinomial"):
        s = sample_tokens(logits, m, ids, 1.0, False, torch.Generator().manual_seed(0), method=method)
        freq = torch.bincount(s.tokens.flatten(), minlength=4).float() / 4000
        assert torch.allclose(freq, torch.softmax(logits[0, 0], -1), atol=0.03), method
        s2 = sample_tokens(logits, m, ids, 0.05, False, torch.Generator().manual_seed(0), method=method)  # cold
        assert (s2.tokens == 0).float().mean() > 0.99, method


def tiny_cfg(**over: str):
    base = dict(vocab_size="300", hidden_size="32", embedding_size="16", num_layers="2", num_heads="2",
                intermediate_size="64", seq_len="16", hidden_dropout="0", attention_dropout="0")
    base.update(over)
    return build_config(None, base)


def batch(B: int = 4, T: int = 16, V: int = 300):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(110, V, (B, T), generator=g)
    ids[:, 0] = SP.cls
    ids[:, -1] = SP.sep
    ids[1, 10:] = 0
    ids[1, 9] = SP.sep
    return ids, torch.zeros_like(ids), ids != 0


def test_discriminator_loss_sends_no_gradient_into_the_generator():
    model = Electra(tiny_cfg(generator_hidden_fraction="0.5"), SP)
    out = model(*batch())
    out.losses.rtd.backward()
    for name, p in model.generator.named_parameters():
        if name.startswith("embeddings."):
            assert p.grad is not None and p.grad.abs().sum() > 0, name  # shared: D's loss trains them
        else:
            assert p.grad is None or p.grad.abs().sum() == 0, name
    for p in model.generator_head.parameters():
        assert p.grad is None or p.grad.abs().sum() == 0
    assert all(p.grad is not None for p in model.discriminator.blocks.parameters())


def test_sharing_modes_share_the_same_tensors():
    emb = Electra(tiny_cfg(), SP)
    assert emb.generator.embeddings is emb.discriminator.embeddings
    assert emb.generator.embeddings.norm.weight is emb.discriminator.embeddings.norm.weight
    assert emb.generator.project is not emb.discriminator.project  # each model projects on its own
    assert emb.generator.blocks[0].attn.qkv.weight.shape[0] == 3 * 8  # 1/4 width generator
    none = Electra(tiny_cfg(sharing="none"), SP)
    assert none.generator.embeddings.word.weight is not none.discriminator.embeddings.word.weight
    full = Electra(tiny_cfg(sharing="all", generator_hidden_fraction="1"), SP)
    assert full.generator is full.discriminator and full.generator_head is not full.discriminator_head
    for model in (emb, none, full):  # the saved weights hold every tensor once and load back
        w = model.weights()
        ptrs = [v.data_ptr() for v in w.values()]
        assert len(ptrs) == len(set(ptrs))
        model.load_weights(w)
    # the generator's output layer is the (shared) word-embedding table
    out = emb(*batch())
    assert out.losses.mlm.requires_grad


def test_gdes_disentangles_the_two_losses_on_shared_embeddings():
    """sharing=gdes (DeBERTa-v3): the discriminator reads sg(E_G) + delta. The MLM loss trains E_G and never the
    residual; the RTD loss trains the residual and never E_G (with sharing=embeddings it trains E: checked above).
    The residual starts at zero, so the discriminator starts from the generator's tables, and it reads the sum."""
    torch.manual_seed(0)
    model = Electra(tiny_cfg(sharing="gdes", generator_hidden_fraction="0.5"), SP)
    base, delta = model.generator.embeddings, model.discriminator.embeddings.delta
    assert all(float(p.detach().abs().sum()) == 0.0 for p in delta.parameters())
    assert all(torch.equal(a, b) for a, b in zip(model.discriminator.embeddings.tables(), base.tables()))
    assert base.word.weight.detach().abs().sum() > 0
    torch.manual_seed(1)
    out = model(*batch())
    grads = {}
    for name, loss in (("mlm", out.losses.mlm), ("rtd", out.losses.rtd)):
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        grads[name] = ([p.grad for p in base.parameters()], [p.grad for p in delta.parameters()])
    def trained(gs: list) -> list[bool]:
        return [g is not None and float(g.abs().sum()) > 0 for g in gs]

    assert all(trained(grads["mlm"][0])) and not any(trained(grads["mlm"][1]))
    assert not any(trained(grads["rtd"][0])) and all(trained(grads["rtd"][1]))
    # every tensor saved once: the generator owns the tables, the discriminator its residual
    w = model.weights()
    assert "generator.embeddings.word.weight" in w and "discriminator.embeddings.delta.word.weight" in w
    assert not any(k.startswith("discriminator.embeddings.word") for k in w)
    model.load_weights(w)
    # the discriminator reads the sum: a residual changes what it computes, the generator's output not at all
    ids, seg, am = batch()
    model.eval()
    before_d, before_g = model.discriminator(ids, seg, am), model.generator(ids, seg, am)
    with torch.no_grad():
        delta.word.weight.normal_(0, 0.1)
    assert (model.discriminator(ids, seg, am) - before_d).abs().max() > 1e-3
    assert torch.equal(model.generator(ids, seg, am), before_g)


def test_loss_weighting():
    ids, seg, am = batch()
    a = Electra(tiny_cfg(), SP)
    torch.manual_seed(0)
    out = a(ids, seg, am)
    assert torch.allclose(out.losses.total, 1.0 * out.losses.mlm + 50.0 * out.losses.rtd)
    b = Electra(tiny_cfg(gen_weight="2", disc_weight="10"), SP)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(0)
    out2 = b(ids, seg, am)
    assert torch.allclose(out2.losses.mlm, out.losses.mlm) and torch.allclose(out2.losses.rtd, out.losses.rtd)
    assert torch.allclose(out2.losses.total, 2 * out.losses.mlm + 10 * out.losses.rtd)


def test_losses_against_hand_computation():
    logits = torch.randn(2, 3, 7)
    from electra.objective import Masked
    m = Masked(None, None, torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([[1, 2, 3], [4, 5, 6]]))
    ce = [-torch.log_softmax(logits[b, n], -1)[m.targets[b, n]] for b, n in ((0, 0), (0, 1), (1, 0))]
    assert torch.allclose(mlm_loss(logits, m), sum(ce) / (3 + 1e-6))
    dl = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    lab = torch.tensor([[True, False, False], [False, True, False]])
    am = torch.tensor([[True, True, True], [True, True, False]])
    manual = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(1 + math.exp(0.5)),
              math.log(2), math.log(1 + math.exp(-3))]
    assert abs(float(rtd_loss(dl, lab, am)) - sum(manual) / 5) < 1e-5


def test_generator_projects_only_masked_positions():
    model = Electra(tiny_cfg(), SP)
    seen = {}
    model.generator_head.register_forward_hook(lambda mod, inp, out: seen.update(shape=tuple(out.shape)))
    model(*batch())
    assert seen["shape"] == (4, model.cfg.max_predictions, 300)  # (B, N, V), never (B, T, V)


def test_mlm_objective_has_no_discriminator():
    model = Electra(tiny_cfg(objective="mlm"), SP)
    assert model.discriminator is None and model.generator.cfg.hidden_size == 32  # full-size generator
    out = model(*batch())
    assert out.losses.rtd == 0 and torch.allclose(out.losses.total, out.losses.mlm)


def test_logged_metrics_against_sklearn(monkeypatch):
    """summarize(stats) against sklearn on the step's own labels and logits, and the generator's accuracy
    against the argmax of its logits at the masked slots (hooked), counted by hand."""
    sk = pytest.importorskip("sklearn.metrics")
    from electra import objective
    model = Electra(tiny_cfg(max_predictions="6"), SP)
    captured, seen = {}, {}
    monkeypatch.setattr(objective, "mask_tokens",
                        lambda *a, **k: captured.setdefault("masked", mask_tokens(*a, **k)))

    def right_at_even_slots(mod, inp, out):  # an untrained generator is right nowhere: make it right at half
        t = captured["masked"].targets
        boost = (torch.arange(t.shape[1]) % 2 == 0).float().expand_as(t)[..., None] * 50
        out = out.scatter_add(-1, t[..., None], boost)
        seen["logits"] = out.detach()
        return out
    model.generator_head.register_forward_hook(right_at_even_slots)
    ids, seg, am = batch(B=16)
    torch.manual_seed(0)
    out = model(ids, seg, am)
    got = summarize(out.stats)
    y, pred = out.labels[am].numpy(), (out.disc_logits[am] > 0).numpy()
    assert got["replaced_rate"] == pytest.approx(y.mean())
    assert got["disc_acc"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["disc_precision"] == pytest.approx(sk.precision_score(y, pred, zero_division=0))
    assert got["disc_recall"] == pytest.approx(sk.recall_score(y, pred, zero_division=0))
    m = captured["masked"]
    hits = (seen["logits"].argmax(-1) == m.targets).float() * m.weights
    assert got["gen_acc"] == pytest.approx(float(hits.sum() / m.weights.sum())) and 0.4 < got["gen_acc"] < 0.9
    assert 0 < got["disc_precision"] < 1 and 0 < got["disc_recall"] < 1, got


@pytest.mark.parametrize("share", ["0.5", "0.85"])
def test_mask_token_prob_reaches_the_step(share, monkeypatch):
    """--mask-token-prob: the share of chosen slots a training step shows as [MASK] (the rest keep their token)."""
    from electra import objective
    captured = {}
    monkeypatch.setattr(objective, "mask_tokens", lambda *a, **k: captured.setdefault("m", mask_tokens(*a, **k)))
    torch.manual_seed(0)
    Electra(tiny_cfg(mask_token_prob=share), SP)(*batch(B=256))
    m = captured["m"]
    shown = m.input_ids.gather(1, m.positions)
    frac = float(((shown == SP.mask).float() * m.weights).sum() / m.weights.sum())
    assert abs(frac - float(share)) < 0.06, frac
    assert ((shown == m.targets) | (shown == SP.mask))[m.weights.bool()].all()  # no random replacement


def test_auc_against_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    labels = torch.rand(500, generator=g) < 0.2
    scores = torch.randn(500, generator=g) + labels.float()
    scores[:50] = torch.round(scores[:50])  # ties
    assert abs(auc(scores, labels) - sk.roc_auc_score(labels.numpy(), scores.numpy())) < 1e-9
