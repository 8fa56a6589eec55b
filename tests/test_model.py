"""The encoder: shapes, padding invariance, post-LN, init, head widths; the CPU dropout and attention math; the
bf16 residual stream.

    python -m pytest tests/test_model.py -q
"""
import pytest
import torch

from electra.config import ModelConfig
from electra.model import DiscriminatorHead, Encoder, GeneratorHead, count_params, set_residual

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


def test_embedding_projection_keeps_tf_default_init():
    """The original builds `embeddings_project` with tf.layers.dense and no initializer: Glorot uniform,
    U(+-sqrt(6 / (E + D))), not the truncated normal of the other dense layers."""
    from electra.model import init_weights
    torch.manual_seed(0)
    enc = Encoder(ModelConfig(vocab_size=100, hidden_size=256, embedding_size=128, num_layers=1, num_heads=4,
                              intermediate_size=64))
    init_weights(enc)
    w, bound = enc.project.weight.detach(), (6 / (128 + 256)) ** 0.5
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.95 * bound  # uniform up to the bound
    assert abs(float(w.std()) - bound / 3 ** 0.5) < 0.003 and float(enc.project.bias.detach().abs().sum()) == 0.0
    assert float(enc.blocks[0].attn.qkv.weight.detach().abs().max()) <= 0.04 + 1e-6  # the rest: truncated normal

# ---------------------------------------------------------------------------------------------------
# The step's other random draws: CPU dropout (electra.dropout.dropout) keeps F.dropout's distribution, and
# the spelled-out CPU attention equals SDPA.


def test_keep_mask_is_bernoulli_with_the_exact_probability():
    from electra.dropout import keep_mask
    torch.manual_seed(0)
    n = 1 << 22
    for q in (0.9, 0.5, 1 - 1e-4, 0.123456):
        m = keep_mask((n,), q, torch.device("cpu"))
        rate = float(m.double().mean())
        sd = (q * (1 - q) / n) ** 0.5
        assert abs(rate - q) < 5 * sd, (q, rate)
    # q = 0.9 sits at 58982.4 / 65536: the 16-bit draws equal to 58982 (1 in 65536) are kept with
    # probability 0.4, so with a tiny q resolution the ties decide almost everything
    q = 2.5 / 65536
    m = torch.cat([keep_mask((n,), q, torch.device("cpu")) for _ in range(8)])
    rate, sd = float(m.double().mean()), (q / m.numel()) ** 0.5
    assert abs(rate - q) < 4 * sd, (rate, q)  # ignoring the tie would give 2/65536, 7 sd away
    m = torch.cat([keep_mask((n,), 0.9, torch.device("cpu")) for _ in range(4)])
    # independence between neighbours (the 16-bit draws come from one 64-bit word): pair frequencies
    pairs = (m[:-1:2].long() * 2 + m[1::2].long()).bincount(minlength=4).double() / (m.numel() // 2)
    expect = torch.tensor([0.01, 0.09, 0.09, 0.81], dtype=torch.float64)
    assert (pairs - expect).abs().max() < 5 * (0.25 / (m.numel() // 2)) ** 0.5


def test_dropout_forward_backward_and_seeding():
    from electra.dropout import dropout
    x = torch.randn(64, 300, requires_grad=True)
    torch.manual_seed(3)
    y = dropout(x, 0.1, True)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.9)
    (g,) = torch.autograd.grad((y * 2).sum(), x)
    assert torch.allclose(g, kept.float() * 2 / 0.9)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.1, True), y)  # the seeded torch generator decides: resumable runs
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x
    yb = dropout(x.detach().bfloat16(), 0.25, True)
    assert yb.dtype == torch.bfloat16 and 0.70 < float((yb != 0).float().mean()) < 0.80


def test_cpu_attention_math_equals_sdpa():
    import torch.nn.functional as F

    from electra.model import _attention_math
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 1, 1, 10, dtype=torch.bool)
    mask[1, ..., 6:] = False
    a = _attention_math(q, k, v, mask, 1e-12)  # dropout that keeps everything
    b = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(a, b, atol=1e-5)
    for ga, gb in zip(torch.autograd.grad(a.sum(), (q, k, v)), torch.autograd.grad(b.sum(), (q, k, v))):
        assert torch.allclose(ga, gb, atol=1e-5)


def test_bf16_residual_stream_stores_block_outputs_in_bf16_and_changes_only_rounding():
    """--residual bf16: under bf16 autocast every block's output (the residual stream) is bf16 instead of
    autocast's fp32; the function and its gradients are the same to bf16 rounding, and without autocast nothing
    changes at all."""
    torch.manual_seed(0)
    enc = Encoder(ModelConfig(vocab_size=120, hidden_size=64, embedding_size=64, num_layers=3, num_heads=4,
                              intermediate_size=128, max_position_embeddings=40, hidden_dropout=0.0,
                              attention_dropout=0.0))
    ids = torch.randint(5, 120, (4, 16))
    seg, mask = torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool)
    mask[1, 10:] = False
    w = torch.randn(4, 16, 64)
    seen: list[torch.dtype] = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o.dtype)) for b in enc.blocks]

    def run(residual: str, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        set_residual(enc, residual)
        enc.zero_grad()
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            h = enc(ids, seg, mask)
        (h.float() * w)[mask].sum().backward()
        return h.detach().float(), enc.blocks[0].attn.qkv.weight.grad.clone()

    h32, g32 = run("fp32", True)
    assert seen == [torch.float32] * 3  # autocast's LayerNorm returns fp32
    h16, g16 = run("bf16", True)
    assert seen == [torch.bfloat16] * 3
    assert (h16 - h32)[mask].abs().max() < 0.05  # unit-variance outputs: bf16 steps are 2^-8 near 1
    assert torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0) > 0.999
    assert not torch.equal(h16, h32)  # the option did something
    hf, gf = run("fp32", False)
    hb, gb = run("bf16", False)
    assert seen == [torch.float32] * 3 and torch.equal(hf, hb) and torch.equal(gf, gb)
    for h in hooks:
        h.remove()
    with pytest.raises(ValueError, match="fp16"):
        set_residual(enc, "fp16")
