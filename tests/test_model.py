"""The encoder: shapes, padding invariance, post-LN, init, head widths.

    python -m pytest tests/test_model.py -q
"""
import torch

from electra.config import ModelConfig
from electra.model import DiscriminatorHead, Encoder, GeneratorHead, count_params

CFG = ModelConfig(vocab_size=120, hidden_size=32, embedding_size=16, num_layers=2, num_heads=4,
                  intermediate_size=64, max_position_embeddings=40, hidden_dropout=0.0, attention_dropout=0.0)


def test_shapes_and_projection():
    enc = Encoder(CFG)
    ids = torch.randint(5, 120, (3, 11))
    h = enc(ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool))
    assert h.shape == (3, 11, 32)
    assert enc.project is not None and enc.project.weight.shape == (32, 16)
    assert Encoder(ModelConfig(vocab_size=50, hidden_size=16, embedding_size=16, num_layers=1, num_heads=1,
                               intermediate_size=8)).project is None
    logits = GeneratorHead(CFG, 16)(h, enc.embeddings.word.weight)
    assert logits.shape == (3, 11, 120)
    assert DiscriminatorHead(CFG)(h).shape == (3, 11)


def test_padding_does_not_change_real_positions():
    enc = Encoder(CFG).eval()
    ids = torch.randint(5, 120, (2, 9))
    seg = torch.zeros_like(ids)
    seg[:, 5:] = 1
    short = enc(ids, seg, torch.ones_like(ids, dtype=torch.bool))
    padded_ids = torch.cat([ids, torch.zeros(2, 6, dtype=torch.long)], 1)
    mask = padded_ids != 0
    mask[:, :9] = True
    long = enc(padded_ids, torch.cat([seg, torch.zeros(2, 6, dtype=torch.long)], 1), mask)
    assert torch.allclose(short, long[:, :9], atol=1e-5)


def test_post_layernorm_outputs_are_normalised():
    enc = Encoder(CFG).eval()
    ids = torch.randint(5, 120, (2, 9))
    h = enc(ids, torch.zeros_like(ids), None)
    assert torch.allclose(h.mean(-1), torch.zeros(2, 9), atol=1e-5)  # LayerNorm last (post-LN), unit gain at init
    assert torch.allclose(h.var(-1, unbiased=False), torch.ones(2, 9), atol=1e-3)


def test_init_statistics_and_param_count():
    from electra.model import init_weights
    enc = Encoder(ModelConfig(vocab_size=3000, hidden_size=64, embedding_size=64, num_layers=1, num_heads=1,
                              intermediate_size=256))
    init_weights(enc)
    w = enc.embeddings.word.weight
    assert abs(float(w.detach().std()) - 0.02 * 0.88) < 0.002  # truncated at 2 std: std shrinks by ~0.88
    assert float(w.detach().abs().max()) <= 0.04 + 1e-6
    assert float(enc.blocks[0].mlp.fc.bias.detach().abs().sum()) == 0.0
    # word + position + segment + LN; per block: qkv, proj, 2 LN, fc, proj
    expected = 3000 * 64 + 512 * 64 + 2 * 64 + 128 + (64 * 192 + 192 + 64 * 64 + 64 + 4 * 64 + 64 * 256 + 256 + 256 * 64 + 64)
    assert count_params(enc) == expected
