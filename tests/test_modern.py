"""--backbone modern: ModernBERT's layer (pre-LN, rotary positions, GeGLU, no biases) under the same objective.
The encoder equals transformers' ModernBertModel with copied weights; runs pre-train, resume, fine-tune and export
to a ModernBertModel folder that gives our hidden states.

    python -m pytest tests/test_modern.py -q
"""
from __future__ import annotations

import dataclasses
import json
import types

import pytest
import torch
from conftest import tiny_overrides

from electra.cli import main
from electra.config import ModelConfig, PretrainConfig
from electra.errors import UserError
from electra.flops import (
    Transformer,
    encoder_matmul_flops_per_token,
    keys_per_query,
    local_layers,
    model_flops_per_token,
    train_flops,
)
from electra.hf_modern import modern_hf_config, modern_to_hf
from electra.model import Encoder, count_params, init_weights, set_activation_checkpointing
from electra.packing import pack

transformers = pytest.importorskip("transformers")

CFG = ModelConfig(backbone="modern", vocab_size=90, hidden_size=48, embedding_size=48, num_layers=3, num_heads=4,
                  intermediate_size=80, max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0,
                  layer_norm_eps=1e-5)
IDS = types.SimpleNamespace(pad=0, unk=1, cls=2, sep=3, mask=4)
# ModernBERT's layout: layers 0 and 2 global, 1 and 3 within +-4 tokens, each kind with its own rotary base
LOCAL = dataclasses.replace(CFG, num_layers=4, local_attention=8, global_every=2, local_rope_theta=500.0)


def modern_encoder(cfg: ModelConfig = CFG, seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    enc = Encoder(cfg)
    init_weights(enc)
    with torch.no_grad():  # LayerNorm gains away from 1 and sharp attention, so that a misplaced norm or position shows
        for name, p in enc.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif "qkv" in name:
                p.mul_(10.0)
    return enc.eval()


def hf_model(cfg: ModelConfig, attn: str):
    from transformers import ModernBertConfig, ModernBertModel

    d = {k: v for k, v in modern_hf_config(cfg, "ModernBertModel", IDS).items() if k not in ("model_type", "architectures")}
    hcfg = ModernBertConfig(**d)
    hcfg._attn_implementation = attn
    return ModernBertModel(hcfg).eval()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, CFG.vocab_size, (3, 20), generator=g)
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 14:], mask[2, 6:] = False, False
    return ids, mask


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("cfg", [CFG, LOCAL], ids=["global", "sliding"])
def test_encoder_equals_transformers_modernbert_with_copied_weights(attn, cfg):
    enc, (ids, mask) = modern_encoder(cfg), batch()
    hf = hf_model(cfg, attn)
    assert [m.attn.window for m in enc.blocks] == ([None] * 3 if cfg is CFG else [None, 4, None, 4])
    result = hf.load_state_dict(modern_to_hf(enc.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        ours = enc(ids, torch.zeros_like(ids), mask)
        packed = enc(ids, torch.zeros_like(ids), mask, pack(mask))
    torch.testing.assert_close(ours[mask], theirs[mask], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(packed[mask], ours[mask], atol=2e-6, rtol=1e-6)
    # the positions are really rotated: another base gives other states, and so does a shifted row
    other = modern_encoder(dataclasses.replace(cfg, rope_theta=50.0))
    with torch.no_grad():
        assert not torch.allclose(other(ids, torch.zeros_like(ids), mask)[mask], ours[mask], atol=1e-3)
        shifted = enc(torch.cat([ids[:, :1], ids], 1)[:, :20], torch.zeros_like(ids))
    assert not torch.allclose(shifted[0, 2:], ours[0, 1:19], atol=1e-3)


def test_structure_parameters_and_flops_by_hand():
    enc = modern_encoder()
    names = dict(enc.named_parameters())
    assert not [n for n in names if n.endswith(".bias")]  # no biases anywhere
    assert "blocks.0.norm1.weight" not in names and "blocks.1.norm1.weight" in names  # layer 0 reads the embeddings' norm
    assert not any(n.startswith(("embeddings.position", "embeddings.segment")) for n in names)
    V, D, F, L = CFG.vocab_size, CFG.hidden_size, CFG.intermediate_size, CFG.num_layers
    per_block = 3 * D * D + D * D + D * 2 * F + F * D + 2 * D  # qkv, out, GeGLU in (value; gate), out, 2 norms
    assert count_params(enc) == V * D + D + L * per_block - D + D  # embeddings + norm, blocks less one norm, final norm
    electra = dataclasses.replace(CFG, backbone="electra")
    # GeGLU: one more D x F matmul per layer, forward; training counts 3 x
    assert encoder_matmul_flops_per_token(CFG, 32) - encoder_matmul_flops_per_token(electra, 32) == L * 2 * D * F
    cfg = PretrainConfig.from_dict({"model": dataclasses.asdict(CFG), "train": {"seq_len": 32}})
    cfg_e = PretrainConfig.from_dict({"model": dataclasses.asdict(electra), "train": {"seq_len": 32}})
    g_layers, g_d = L, max(1, round(D * 0.25))
    extra = L * 2 * D * F + g_layers * 2 * g_d * (4 * g_d)  # discriminator and generator (F = 4 x its width)
    assert model_flops_per_token(cfg) - model_flops_per_token(cfg_e) == pytest.approx(3 * extra)


def test_sliding_window_layers_count_the_keys_in_their_window():
    """W = 8 over T = 32: a query sees itself and up to 4 neighbours either side, 9 keys mid-row and 5 to 8 near
    the row's ends (the count of the padded path's band mask); layers 1 and 3 of LOCAL are the sliding ones."""
    T = 32
    band = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).abs() <= LOCAL.local_attention // 2
    assert keys_per_query(T, 8) == band.sum().item() / T == (9 * (T - 8) + 2 * (5 + 6 + 7 + 8)) / T
    assert keys_per_query(T, 0) == keys_per_query(T, 64) == T
    assert local_layers(LOCAL) == 2 and local_layers(CFG) == 0
    D = LOCAL.hidden_size
    full = dataclasses.replace(LOCAL, local_attention=0, global_every=3, local_rope_theta=10000.0)
    saved = 2 * (2 * 2 * D * (T - keys_per_query(T, 8)))  # two layers' score and mix products, per token
    assert encoder_matmul_flops_per_token(full, T) - encoder_matmul_flops_per_token(LOCAL, T) == pytest.approx(saved)
    # the paper's method: scores, mix, softmax/dropout/scale on fewer keys, over every token of the row
    gap = Transformer(D, 4, s=T, i=80, heads=4, modern=True).infer_flops() - \
        Transformer(D, 4, s=T, i=80, heads=4, modern=True, local=2, window=8).infer_flops()
    per_key = 2 * D + 2 * D + (5 + 4 + 1) * 4  # score, mix, softmax + dropout + scale per head
    assert gap == pytest.approx(2 * T * per_key * (T - keys_per_query(T, 8)))
    cfg = PretrainConfig.from_dict({"model": dataclasses.asdict(LOCAL), "train": {"seq_len": T}})
    cfg_full = PretrainConfig.from_dict({"model": dataclasses.asdict(full), "train": {"seq_len": T}})
    assert train_flops(cfg) < train_flops(cfg_full) and model_flops_per_token(cfg) < model_flops_per_token(cfg_full)


def test_config_checks():
    with pytest.raises(UserError, match="rope_theta"):
        ModelConfig(rope_theta=500.0)
    with pytest.raises(UserError, match="even"):
        ModelConfig(backbone="modern", hidden_size=36, num_heads=4)  # head width 9
    with pytest.raises(UserError, match="backbone"):
        ModelConfig(backbone="roberta")
    with pytest.raises(UserError, match="even number"):
        ModelConfig(backbone="modern", local_attention=7)
    with pytest.raises(UserError, match="add --local-attention"):
        ModelConfig(backbone="modern", global_every=2)
    with pytest.raises(UserError, match="local_attention shape --backbone modern"):
        ModelConfig(local_attention=128)
    with pytest.raises(UserError, match="adds no weights"):
        PretrainConfig.from_dict({"model": {"backbone": "modern", "max_position_embeddings": 256},
                                  "train": {"seq_len": 512}})


def test_sliding_window_layers_pack_and_train_on_padded_rows():
    """Packed equals padded, forward and backward, with sliding-window layers, and the gradients are finite: pad
    slots beyond the window of every real token (row 2 from position 10 on) attend to themselves (torch's CPU
    SDPA gives such keyless rows zeros anyway; other kernels need not)."""
    ids, mask = batch()
    outs, grads = [], []
    for packed in (False, True):
        enc = modern_encoder(LOCAL).train()
        out = enc(ids, torch.zeros_like(ids), mask, pack(mask) if packed else None)
        (out[mask] * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        outs.append(out[mask])
        grads.append({n: p.grad for n, p in enc.named_parameters()})
    assert all(torch.isfinite(g).all() for g in grads[0].values())
    torch.testing.assert_close(outs[1], outs[0], atol=2e-6, rtol=1e-6)
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("packed", [False, True])
def test_activation_checkpointing_gradients_equal(packed):
    cfg = dataclasses.replace(LOCAL, hidden_dropout=0.1, attention_dropout=0.1, embedding_size=24)
    ids, mask = batch()
    grads = []
    for on in (False, True):
        enc = modern_encoder(cfg).train()
        set_activation_checkpointing(enc, on)
        torch.manual_seed(2)
        out = enc(ids, torch.zeros_like(ids), mask, pack(mask) if packed else None)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        grads.append({n: p.grad.clone() for n, p in enc.named_parameters()})
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])


def test_bf16_autocast_keeps_an_fp32_residual_stream():
    """The E -> D projection returns bf16 under autocast; the pre-LN sums are still kept in fp32."""
    enc, (ids, mask) = modern_encoder(dataclasses.replace(CFG, embedding_size=24)), batch()
    seen = []
    for block in enc.blocks:
        block.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = enc(ids, torch.zeros_like(ids), mask)
    assert seen == [torch.float32] * CFG.num_layers
    with torch.no_grad():
        ref = enc(ids, torch.zeros_like(ids), mask)
    torch.testing.assert_close(out.float()[mask], ref[mask], atol=0.1, rtol=0.05)


@pytest.mark.parametrize("sharing", ["embeddings", "gdes"])
def test_pretrain_resume_and_export_to_modernbert(tiny_dataset, tmp_path, sharing, capsys):
    from transformers import AutoModel, AutoTokenizer

    from electra.checkpoint import encoder_weights, load_pretrained

    run, hf_dir = tmp_path / "run", tmp_path / "hf"
    args = ["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
            *tiny_overrides(backbone="modern", embedding_size=32, sharing=sharing, max_steps=4, eval_every=0)]
    assert main(args) == 0
    assert json.loads((run / "config.json").read_text())["model"]["backbone"] == "modern"
    # the architecture is fixed by the weights: a resume that asks for the other backbone is refused by name
    assert main([*args, "--backbone", "electra", "--max-steps", "6"]) == 2
    assert "model.backbone=modern" in capsys.readouterr().err
    assert main(["export", str(run), str(hf_dir)]) == 0
    assert sorted(p.name for p in hf_dir.iterdir()) == ["discriminator"]  # no ModernBERT class for the generator
    folder = hf_dir / "discriminator"
    assert json.loads((folder / "config.json").read_text())["model_type"] == "modernbert"
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    enc_in = tok(["the cat sat on the mat", "a longer sentence about the weather and the sea"], padding=True,
                 return_tensors="pt")
    assert set(enc_in) == {"input_ids", "attention_mask"}  # no segments: the backbone has none
    pre = load_pretrained(run)
    ours = Encoder(pre.cfg.model)
    ours.load_state_dict(encoder_weights(pre.weights, pre.cfg, "discriminator"))
    mask = enc_in["attention_mask"].bool()
    with torch.no_grad():
        theirs = model(**enc_in).last_hidden_state
        mine = ours.eval()(enc_in["input_ids"], torch.zeros_like(enc_in["input_ids"]), mask)
    torch.testing.assert_close(mine[mask], theirs[mask], atol=2e-5, rtol=1e-5)
    assert "ModernBertModel" in (folder / "README.md").read_text()


def test_export_needs_embeddings_as_wide_as_the_layers(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
                 *tiny_overrides(backbone="modern", max_steps=1, eval_every=0)]) == 0  # E 16, D 32
    assert "will not export as ModernBertModel" in capsys.readouterr().err  # told when the run starts, with the fix
    assert main(["export", str(run), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--embedding-size 32" in err[0] and not (tmp_path / "hf").exists()


def test_fine_tune_and_export_a_modern_encoder(tmp_path):
    from test_finetune_custom import FAST, sentiment_rows, write_csv
    from test_finetune_fixtures import make_run
    from transformers import AutoModel

    run, data, out = make_run(tmp_path, backbone="modern"), tmp_path / "mine", tmp_path / "ft"
    write_csv(data / "train.csv", ["id", "text", "label"], sentiment_rows(24, 0))
    write_csv(data / "dev.csv", ["id", "text", "label"], sentiment_rows(8, 1))
    # layer-wise decay places the final norm at the top, with the head
    assert main(["finetune", "--task", "classify", "--data", str(data), "--model", str(run), "--out", str(out),
                 *FAST[:4], "--layer-decay", "0.8", *FAST[6:], "--epochs", "1"]) == 0
    assert main(["export", str(out), str(tmp_path / "hf")]) == 0
    model = AutoModel.from_pretrained(tmp_path / "hf")
    assert type(model).__name__ == "ModernBertModel"


def test_an_exported_modern_folder_imports_back(tiny_dataset, tmp_path, capsys):
    """finetune / detect --model and pretrain --init take the ModernBertModel folder the export wrote."""
    from electra.hf_import import load_hf_encoder
    from electra.hf_read import read_hf_model

    run, hf_dir = tmp_path / "run", tmp_path / "hf"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), "--no-tensorboard",
                 *tiny_overrides(backbone="modern", embedding_size=32, rope_theta=500, local_attention=8, global_every=2,
                                 local_rope_theta=300, max_steps=2, eval_every=0)]) == 0
    assert main(["export", str(run), str(hf_dir)]) == 0
    folder = hf_dir / "discriminator"
    encoder, pre = load_hf_encoder(folder)
    m = pre.cfg.model
    assert m.modern and (m.rope_theta, m.local_attention, m.global_every, m.local_rope_theta) == (500.0, 8, 2, 300.0)
    from electra.checkpoint import encoder_weights, load_pretrained

    own = load_pretrained(run)
    expected = encoder_weights(own.weights, own.cfg, "discriminator")
    assert encoder.state_dict().keys() == expected.keys()
    assert all(torch.equal(encoder.state_dict()[k], expected[k]) for k in expected)
    # continued pre-training from it: the discriminator's body is loaded, the heads and generator start fresh
    again = tmp_path / "again"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(again), "--init", str(hf_dir), "--no-tensorboard",
                 *tiny_overrides(embedding_size=32, max_steps=1, eval_every=0)]) == 0
    cfg = json.loads((again / "config.json").read_text())["model"]
    assert cfg["backbone"] == "modern" and cfg["rope_theta"] == 500.0 and cfg["local_attention"] == 8
    # a layout other than ModernBERT's (global every N layers from layer 0) is refused by name
    config = json.loads((folder / "config.json").read_text())
    assert config["layer_types"] == ["full_attention", "sliding_attention"]
    config["layer_types"] = ["sliding_attention", "full_attention"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="global attention every N layers"):
        read_hf_model(folder)
