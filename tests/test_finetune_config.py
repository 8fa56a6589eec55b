"""FinetuneConfig (defaults, per-size resolution, overrides) and the layer-wise learning-rate factors."""
from __future__ import annotations

import math

import pytest

from electra.config import ModelConfig
from electra.errors import UserError
from electra.finetune.config import (
    DEFAULT_NULL_THRESHOLD,
    FinetuneConfig,
    build_config,
    null_threshold,
    split_overrides,
)
from electra.finetune.heads import ClassificationHead, FinetuneModel, encoder_depth
from electra.finetune.train import lr_scales
from electra.model import Encoder
from electra.optim import build_optimizer, set_lr


def test_defaults_are_the_papers() -> None:
    c = FinetuneConfig()
    assert (c.batch_size, c.warmup_proportion, c.adam_eps, c.clip_norm, c.weight_decay) == (32, 0.1, 1e-6, 1.0, 0.0)
    assert c.optimizer == "electra" and c.double_unordered and c.head_dropout == 0.1
    assert c.loss_reduction == "sum" and c.tag_encoding == "bioes"  # run_finetuning.py / tagging_tasks.py
    assert (c.doc_stride, c.max_query_len, c.n_best, c.max_answer_len) == (128, 64, 20, 30)


@pytest.mark.parametrize("hidden,lr,decay", [(256, 3e-4, 0.8), (768, 1e-4, 0.8), (1024, 5e-5, 0.9)])
def test_resolve_by_model_size(hidden: int, lr: float, decay: float) -> None:
    r = FinetuneConfig().resolve(hidden, task_epochs=10, task_max_seq_len=512, max_positions=256)
    assert (r.lr, r.layer_decay, r.epochs, r.max_seq_len) == (lr, decay, 10, 256)
    r = FinetuneConfig(lr=2e-5, epochs=1, max_seq_len=64).resolve(hidden, 3, 128, 512)
    assert (r.lr, r.epochs, r.max_seq_len) == (2e-5, 1, 64)
    assert r.null_threshold == 0.0 and FinetuneConfig(qa_head="electra").resolve(hidden, 2, 512, 512).null_threshold == -2.75
    assert FinetuneConfig(qa_head="electra", null_threshold=1.5).resolve(hidden, 2, 512, 512).null_threshold == 1.5


def test_null_threshold_defaults_come_from_one_table() -> None:
    # resolve() and squad.extract_answers (for an unresolved config) both fall back through this function
    assert null_threshold(math.nan, "electra") == DEFAULT_NULL_THRESHOLD["electra"] == -2.75  # qa_metrics.py
    assert null_threshold(math.nan, "simple") == DEFAULT_NULL_THRESHOLD["simple"] == 0.0
    assert null_threshold(1.5, "electra") == 1.5


def test_overrides_parse_and_reject_unknown_keys() -> None:
    overrides, rest = split_overrides(["--task", "sst2", "--lr", "1e-4", "--weight-decay=0.01",
                                       "--max-train-examples", "100", "--double-unordered", "false",
                                       "--layer-decay-off-by-one", "--seeds", "3"])
    assert rest == ["--task", "sst2", "--seeds", "3"]
    c = build_config(overrides)
    assert (c.lr, c.weight_decay, c.max_train_examples, c.double_unordered, c.layer_decay_off_by_one) == \
        (1e-4, 0.01, 100, False, True)
    with pytest.raises(UserError, match="unknown option --lrr"):
        build_config({"lrr": "1"})
    with pytest.raises(UserError, match="expected int"):
        build_config({"batch-size": "3.5"})
    with pytest.raises(UserError, match="qa_head"):
        build_config({"qa-head": "xlnet"})
    with pytest.raises(UserError, match="cls_head must be electra or hf"):
        build_config({"cls-head": "bert"})


def _model(layers: int) -> FinetuneModel:
    cfg = ModelConfig(vocab_size=20, hidden_size=8, embedding_size=4, num_layers=layers, num_heads=2,
                      intermediate_size=8, max_position_embeddings=16)
    return FinetuneModel(Encoder(cfg), ClassificationHead(8, 2, 0.1))


def test_layerwise_factors_12_layers() -> None:
    model = _model(12)
    s = lr_scales(model, FinetuneConfig(layer_decay=0.8, layer_decay_off_by_one=True))
    assert s["head.out.weight"] == 1.0
    assert s["encoder.blocks.11.attn.qkv.weight"] == pytest.approx(0.64)  # the original's top block: decay^2
    assert s["encoder.blocks.0.mlp.fc.bias"] == pytest.approx(0.8 ** 13)
    assert s["encoder.embeddings.word.weight"] == pytest.approx(0.8 ** 14)
    assert s["encoder.project.weight"] == pytest.approx(0.8 ** 14)  # embeddings_project: depth 0 too
    s = lr_scales(model, FinetuneConfig(layer_decay=0.8, layer_decay_off_by_one=False))
    assert s["encoder.blocks.11.norm2.weight"] == pytest.approx(0.8)
    assert s["encoder.blocks.0.norm2.weight"] == pytest.approx(0.8 ** 12)
    assert s["encoder.embeddings.norm.weight"] == pytest.approx(0.8 ** 13)
    assert lr_scales(model, FinetuneConfig(layer_decay=1.0)) is None


def test_layerwise_factors_24_layers_reach_the_optimizer() -> None:
    model = _model(24)
    cfg = FinetuneConfig(layer_decay=0.9, layer_decay_off_by_one=True)
    s = lr_scales(model, cfg)
    assert s["encoder.blocks.23.attn.proj.weight"] == pytest.approx(0.81)
    assert s["encoder.embeddings.word.weight"] == pytest.approx(0.9 ** 26)
    opt = build_optimizer(model, "electra", 1e-4, 0.0, (0.9, 0.999), 1e-6, s)
    set_lr(opt, 1e-4)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(model.encoder.embeddings.word.weight)] == pytest.approx(1e-4 * 0.9 ** 26)
    assert lrs[id(model.head.out.weight)] == pytest.approx(1e-4)


def test_encoder_depth_rejects_unknown_names() -> None:
    assert encoder_depth("encoder.blocks.3.attn.qkv.weight") == 4
    assert encoder_depth("head.out.bias") is None
    with pytest.raises(ValueError):
        encoder_depth("encoder.pooler.weight")


def test_loss_reduction_sum_is_batch_times_mean() -> None:
    import torch

    from electra.finetune.heads import RegressionHead, TaggingHead
    from electra.finetune.train import reduce_loss

    torch.manual_seed(0)
    h = torch.randn(4, 5, 8)
    batch = {"label": torch.tensor([0, 1, 1, 0]), "labels": torch.tensor([[-100, 0, 1, -100, -100]] * 4)}
    for head in (ClassificationHead(8, 2, 0.0), TaggingHead(8, 2, 0.0)):
        with torch.no_grad():
            terms = head.losses(head(h, batch), batch)
        n = 8 if isinstance(head, TaggingHead) else 4  # tagging: one term per labelled word, 2 per row
        if isinstance(head, TaggingHead):  # a term per token, the unlabelled ones 0: no boolean index
            labelled = batch["labels"].flatten() != -100
            assert terms.values.shape == (20,) and int(terms.count) == n and not terms.values[~labelled].any()
            assert bool((terms.values[labelled] > 0).all())
        else:
            assert terms.shape == (n,)
        mean = float(reduce_loss(terms, "mean"))
        assert float(reduce_loss(terms, "sum")) == pytest.approx(n * mean, rel=1e-5)
    reg = RegressionHead(8, 0.0)
    batch = {"label": torch.tensor([5.0, 0.0, 2.5, 1.0])}
    pred = torch.tensor([1.0, 0.0, 0.5, 0.2])  # exactly label / 5: zero squared error
    assert float(reduce_loss(reg.losses(pred, batch), "mean")) == pytest.approx(0.0)
    assert float(reduce_loss(reg.losses(torch.zeros(4), batch), "mean")) == pytest.approx((1 + 0 + 0.25 + 0.04) / 4)
