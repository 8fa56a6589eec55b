"""Unpadded encoders (`packing.Packing`): the same function as the padded batch, forward and backward.

On CPU the packed attention goes through its padded reference; on CUDA (bf16) through flash attention's
variable-length kernel, compared with the padded SDPA path by the tests marked `cuda` (skipped here).

    python -m pytest tests/test_unpad.py -q
"""
from __future__ import annotations

import pytest
import torch
from test_objective import SP, tiny_cfg

from electra.config import ModelConfig
from electra.model import Encoder
from electra.objective import Electra
from electra.packing import pack

CFG = ModelConfig(vocab_size=120, hidden_size=32, embedding_size=16, num_layers=2, num_heads=4,
                  intermediate_size=64, max_position_embeddings=40, hidden_dropout=0.0, attention_dropout=0.0)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def ragged(B: int = 5, T: int = 24, V: int = 120, seed: int = 0, device: str = "cpu"):
    """Rows of lengths T, T, 7, 2 (just [CLS] [SEP]) and 13, padded at the end; segment B after 4 tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    lengths = [T, T, 7, 2, 13][:B]
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    ids[:, 0] = SP.cls
    ids[torch.arange(B), torch.tensor(lengths) - 1] = SP.sep
    ids = ids.masked_fill(~mask, SP.pad)
    seg = ((torch.arange(T)[None, :] >= 4) & mask).long()
    return ids.to(device), seg.to(device), mask.to(device)


def test_pack_layout():
    ids, _seg, mask = ragged()
    p = pack(mask)
    assert p.cu_seqlens.tolist() == [0, 24, 48, 55, 57, 70] and p.cu_seqlens.dtype == torch.int32
    assert p.seq_len == 24 and p.index.shape == (70,)
    assert torch.equal(ids.flatten()[p.index], ids[mask])  # row by row, in order
    assert torch.equal(p.index % 24, torch.cat([torch.arange(n) for n in (24, 24, 7, 2, 13)]))


def test_encoder_unpadded_equals_padded_forward_and_backward():
    enc = Encoder(CFG).eval()
    ids, seg, mask = ragged()
    ref = enc(ids, seg, mask)
    (ref * mask[..., None]).square().sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in enc.named_parameters()}
    enc.zero_grad()
    out = enc(ids, seg, mask, pack(mask))
    assert torch.allclose(out[mask], ref[mask], atol=1e-5)
    assert (out[~mask] == 0).all()  # pad slots are zero, not garbage
    (out * mask[..., None]).square().sum().backward()
    for n, p in enc.named_parameters():
        assert torch.allclose(p.grad, ref_grads[n], atol=1e-4, rtol=1e-4), n


def test_row_with_holes_attends_like_a_key_mask():
    enc = Encoder(CFG).eval()
    ids, seg, mask = ragged()
    mask[0, 5:9] = False  # a hole inside a full row: keys masked out, positions of the rest unchanged
    ref, out = enc(ids, seg, mask), enc(ids, seg, mask, pack(mask))
    assert torch.allclose(out[mask], ref[mask], atol=1e-5)


@pytest.mark.parametrize("sharing", ["embeddings", "all"])
def test_electra_step_unpadded_equals_padded(sharing):
    over = {"sharing": sharing, "seq_len": "24"}
    if sharing == "all":
        over["generator_hidden_fraction"] = "1"
    torch.manual_seed(0)
    model = Electra(tiny_cfg(**over), SP)
    ids, seg, mask = ragged(V=300)
    torch.manual_seed(1)
    a = model(ids, seg, mask)
    a.losses.total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    torch.manual_seed(1)  # same masks and samples: the packing changes no random draw
    b = model(ids, seg, mask, packing=pack(mask))
    b.losses.total.backward()
    for x, y in zip(a.losses, b.losses):
        assert torch.allclose(x, y, atol=1e-5)
    for x, y in zip(a.stats, b.stats):
        assert torch.equal(x, y)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], atol=1e-4, rtol=1e-3), n


def test_dropout_in_packed_mode_trains():
    cfg = tiny_cfg(seq_len="24", hidden_dropout="0.1", attention_dropout="0.1")
    model = Electra(cfg, SP).train()
    ids, seg, mask = ragged(V=300)
    torch.manual_seed(0)
    out = model(ids, seg, mask, packing=pack(mask))
    out.losses.total.backward()
    assert torch.isfinite(out.losses.total)
    assert all(p.grad is not None for p in model.discriminator.blocks.parameters())
    with torch.no_grad():  # the same draws with dropout off: dropout did act on the packed tokens
        torch.manual_seed(0)
        off = model.eval()(ids, seg, mask, packing=pack(mask))
        torch.manual_seed(0)
        padded = model(ids, seg, mask)
    assert not torch.allclose(out.losses.rtd, off.losses.rtd)
    assert torch.allclose(off.losses.rtd, padded.losses.rtd, atol=1e-5)


@cuda
@pytest.mark.parametrize("backbone", [{}, {"backbone": "modern", "local_attention": "8", "global_every": "2"}],
                         ids=["electra", "modern-sliding"])
def test_flash_varlen_matches_padded_sdpa_on_cuda(backbone):
    """Flash attention's variable-length kernel (its window for sliding-window layers) = SDPA on the padded batch."""
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = Electra(tiny_cfg(seq_len="24", hidden_size="128", num_heads="2", embedding_size="64", **backbone), SP).to(dev)
    ids, seg, mask = ragged(V=300, device="cuda")
    packing = pack(mask.cpu()).to(dev)
    outs, grads = [], []
    for p in (None, packing):
        model.zero_grad()
        torch.manual_seed(1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(ids, seg, mask, packing=p)
        out.losses.total.backward()
        outs.append(out)
        grads.append(torch.cat([q.grad.flatten().float() for q in model.parameters() if q.grad is not None]))
    a, b = outs
    assert torch.equal(a.labels, b.labels)  # same samples
    assert abs(float(a.losses.total - b.losses.total)) < 2e-2 * abs(float(a.losses.total))
    ka = a.disc_logits[mask].float()
    kb = b.disc_logits[mask].float()
    assert float((ka - kb).norm() / ka.norm()) < 2e-2  # bf16 operands
    assert float((grads[0] - grads[1]).norm() / grads[0].norm()) < 3e-2
