"""FLOP accounting against the spec (electra-spec 1.9: numbers of the original flops_computation.py) and the
MFU convention against torch's own FLOP counter.

    python -m pytest tests/test_flops.py -q
"""
from __future__ import annotations

import pytest
import torch

from electra.config import build_config
from electra.flops import (
    Transformer,
    electra_train_flops,
    inference_flops,
    model_flops_per_token,
    train_flops,
)


def close(x: float, ref: float, rel: float = 5e-3) -> bool:
    """Equal to the spec's printed value (3 significant digits)."""
    return abs(x - ref) <= rel * ref


def test_spec_table_by_the_script_method():
    assert close(electra_train_flops(256, 12, 64, 12, 128, 1e6, True, s=128, e=128), 1.29e18)  # ELECTRA-Small
    assert close(Transformer(256, 12, e=128, s=128).train_flops(128, 1.45e6), 1.42e18)  # BERT-Small
    # ELECTRA-Base: the script gives 6.4245e19; the spec prints 6.43e19 (within 0.1%), the paper 6.4e19
    assert close(electra_train_flops(768, 12, 256, 12, 256, 766000, True), 6.43e19, rel=1e-3)
    assert close(Transformer(768, 12).train_flops(256, 1e6), 6.43e19)  # BERT-Base
    assert close(Transformer(1024, 24).train_flops(256, 1e6), 1.92e20)  # BERT-Large
    assert close(electra_train_flops(1024, 24, 256, 24, 2048, 400_000, True), 7.12e20)
    assert close(electra_train_flops(1024, 24, 256, 24, 2048, 1_750_000, True), 3.11e21)
    assert close(Transformer(1024, 24, v=50265).train_flops(8000, 500_000), 3.19e21)  # RoBERTa
    assert close(Transformer(4096, 12, v=30000, e=128).train_flops(4096, 1.5e6), 3.11e22)  # ALBERT
    assert close(Transformer(768, 12, v=40000, output_frac=1.0).train_flops(128, 960_800), 3.97e19)  # GPT
    assert close(electra_train_flops(256, 12, 256, 12, 128, 1e6, True, s=128, e=128), 1.9e18, rel=0.02)  # same-size G


def test_train_flops_from_the_presets():
    assert close(train_flops(build_config("small", {})), 1.29e18)  # max_steps 1M, batch 128, seq 128
    assert close(train_flops(build_config("base", {})), 6.43e19, rel=1e-3)
    assert close(train_flops(build_config("large", {})), 7.12e20)
    assert close(train_flops(build_config("small", {}), steps=500_000), 1.29e18 / 2)
    # the BERT baselines are the MLM objective on the discriminator-size model
    assert close(train_flops(build_config("small", {"objective": "mlm"}), steps=1.45e6), 1.42e18)
    assert close(train_flops(build_config("base", {"objective": "mlm"}), steps=1e6), 6.43e19)


def test_untied_generator_is_counted_at_the_width_it_has():
    """sharing=none keeps the discriminator's embedding width in the generator (fidelity.md difference 4): its
    lookup, E -> D_gen projection and E x V output layer are those of the tied model, so the count is the same,
    the script's tied_embeddings=True case (not its untied one, embeddings as wide as the generator)."""
    from electra.objective import Electra, SpecialTokens
    small = build_config("small", {})
    untied = build_config("small", {"sharing": "none"})
    ref = electra_train_flops(256, 12, 64, 12, 128, 1e6, True, s=128, e=128)
    assert close(train_flops(untied), ref, rel=1e-12) and close(train_flops(small), ref, rel=1e-12)
    model = Electra(untied, SpecialTokens(0, 101, 102, 103))  # the model really has 128-wide generator embeddings
    assert model.generator.embeddings.word.weight.shape == (30522, 128)
    assert model.generator.project.weight.shape == (64, 128)


def test_inference_flops_at_128_tokens():
    assert close(inference_flops(build_config("small", {})), 3.7e9, rel=0.02)
    assert close(inference_flops(build_config("base", {})), 2.9e10, rel=0.02)


def test_model_flops_per_token_matches_the_peer_table():
    """peer-baseline.md section 3 (verified there with FlopCounterMode): small L=128 90.2M as executed by HF
    (head on every position), tiny 29.6M; the head on masked slots only saves the difference."""
    small = build_config("small", {})
    assert abs(model_flops_per_token(small, lm_head="all") / 1e6 - 90.2) < 0.05
    assert abs(model_flops_per_token(build_config("small", {"seq_len": "512"}), lm_head="all") / 1e6 - 107.9) < 0.05
    assert abs(model_flops_per_token(build_config("tiny", {}), lm_head="all") / 1e6 - 29.6) < 0.05
    masked = model_flops_per_token(small)
    assert 69.5e6 < masked < 70.5e6  # 19 of 128 positions through the 128 x 30522 head
    with pytest.raises(ValueError):
        model_flops_per_token(small, lm_head="some")


def test_model_flops_per_token_against_torch_flop_counter():
    """Our Electra step, fwd + bwd, counted by torch (SDPA's math path, which the counter sees): the matmul
    FLOPs per token equal the formula exactly, generator head on the masked slots included."""
    from torch.utils.flop_counter import FlopCounterMode

    from electra.objective import Electra, SpecialTokens
    cfg = build_config(None, dict(vocab_size="500", hidden_size="64", embedding_size="32", num_layers="2",
                                  num_heads="2", intermediate_size="128", seq_len="32", hidden_dropout="0",
                                  attention_dropout="0"))
    sp = SpecialTokens(0, 101, 102, 103)
    model = Electra(cfg, sp)
    B, T = 4, 32
    ids = torch.randint(110, 500, (B, T), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1] = sp.cls, sp.sep
    am = torch.ones(B, T, dtype=torch.bool)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with FlopCounterMode(display=False) as fc, sdpa_kernel(SDPBackend.MATH):  # the counter skips fused CPU SDPA
        out = model(ids, torch.zeros_like(ids), am)
        out.losses.total.backward()
    counted = fc.get_total_flops() / (B * T)
    expected = model_flops_per_token(cfg)
    assert counted == expected, (counted, expected)  # every matmul of the step, to the FLOP
