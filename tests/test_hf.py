"""Hugging Face interoperability (docs/hf.md): export -> transformers, transformers -> import, round trips, and
bad input. Tests that need `transformers` skip cleanly without it (pytest.importorskip); logits are compared
in fp32 on CPU in eval mode over ALL positions, padded ones included (both implementations mask padded keys
only, so even the padded rows agree)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from electra.checkpoint import load_discriminator, save_checkpoint
from electra.cli import main
from electra.config import ModelConfig, ObjectiveConfig, PretrainConfig, TrainConfig
from electra.data.tokenizer import SpecialIds, load_tokenizer, vocab_sha256
from electra.errors import UserError
from electra.hf import export, init_from_hf, is_hf_folder, load_hf_encoder, load_hf_pretraining, load_into
from electra.model import Encoder
from electra.objective import Electra, SpecialTokens

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WIKI = SHARED / "pretrain" / "enwiki-2015-wikiextractor" / "sample" / "wiki_00"
TOL = 1e-5
FALLBACK = ["The quick brown fox jumps over the lazy dog.", "Anarchism is a political philosophy.",
            "It was born in the north of the city, near the river.", "Hi.",
            "The king played music in the church during the war.", "A village station was built."]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared BERT uncased vocab, or a small written one when the shared data is absent."""
    if (SHARED / "vocab" / "vocab.txt").is_file():
        return SHARED / "vocab" / "vocab.txt"
    words = sorted({w.strip(".,").lower() for s in FALLBACK for w in s.split()} | set(".,"))
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return path


def n_tokens(vocab: Path) -> int:
    return len(vocab.read_text(encoding="utf-8").splitlines())


def wiki_lines(n: int) -> list[str]:
    if not WIKI.is_file():
        return []
    out = []
    for line in WIKI.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith(("<doc", "</doc")):
            out.append(line)
            if len(out) == n:
                break
    return out


def batch(vocab: Path, n: int = 6, max_len: int = 48) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real sentences, [CLS] A [SEP], right-padded; the second half of each row's tokens is segment 1."""
    sp = SpecialIds.from_vocab(vocab)
    tok = load_tokenizer(vocab)
    lines = (wiki_lines(n) or FALLBACK)[:n]
    rows = [[sp.cls, *tok.encode(s).ids[: max_len - 2 - 4 * i], sp.sep] for i, s in enumerate(lines)]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), sp.pad)
    seg = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        seg[i, len(r) // 2: len(r)] = 1
    mask = ids != sp.pad
    assert not mask.all(), "the batch must contain padding"
    return ids, seg, mask


def perturb(module: nn.Module, seed: int = 0) -> None:
    """Random biases and LayerNorm parameters too, so that a swapped name cannot hide behind zeros and ones."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def tiny_cfg(E: int = 32, sharing: str = "embeddings", frac: float = 0.5, objective: str = "electra") -> PretrainConfig:
    return PretrainConfig(
        model=ModelConfig(vocab_size=30522, hidden_size=64, embedding_size=E, num_layers=2, num_heads=2,
                          intermediate_size=128, max_position_embeddings=128),
        objective=ObjectiveConfig(objective=objective, generator_hidden_fraction=frac, sharing=sharing,
                                  generator_layers_fraction=1.0 if sharing == "all" else 0.5),
        train=TrainConfig(seq_len=64))


def electra_model(cfg: PretrainConfig, vocab: Path, seed: int = 0) -> Electra:
    sp = SpecialIds.from_vocab(vocab)
    n = n_tokens(vocab)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=n))
    torch.manual_seed(seed)
    model = Electra(cfg, SpecialTokens(sp.pad, sp.cls, sp.sep, sp.mask))
    perturb(model, seed)
    return model.eval()


def write_run(run: Path, model: Electra, vocab: Path, step: int = 7) -> Path:
    run.mkdir(parents=True)
    (run / "config.json").write_text(model.cfg.to_json())
    (run / "tokenizer.json").write_text(json.dumps({"lowercase": True, "vocab_sha256": vocab_sha256(vocab)}))
    shutil.copyfile(vocab, run / "vocab.txt")
    save_checkpoint(run, step, model.weights(), torch.optim.SGD(model.parameters(), lr=0.1), {}, keep_last=1)
    return run


@torch.no_grad()
def ours_disc(encoder: Encoder, head_weights: dict, cfg: ModelConfig, ids, seg, mask) -> torch.Tensor:
    from electra.model import DiscriminatorHead

    head = DiscriminatorHead(cfg)
    head.load_state_dict({k.split(".", 1)[1]: v for k, v in head_weights.items() if k.startswith("discriminator_head.")})
    return head(encoder.eval()(ids, seg, mask))


@torch.no_grad()
def electra_logits(model: Electra, ids, seg, mask) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(discriminator logits (B, T) or None, generator logits (B, T, V)) of our model on every position."""
    d = model.discriminator_head(model.discriminator(ids, seg, mask)) if model.discriminator_head is not None else None
    g = model.generator_head(model.generator(ids, seg, mask), model.generator.embeddings.word.weight)
    return d, g


@torch.no_grad()
def hf_logits(hf_model: nn.Module, ids, seg, mask) -> torch.Tensor:
    return hf_model.eval()(input_ids=ids, token_type_ids=seg, attention_mask=mask.long()).logits


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a - b).abs().max())


def hf_load(cls, folder: Path):
    model, info = cls.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not info.get("mismatched_keys") and not info.get("error_msgs"), info
    return model.eval()


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("transformers")


# ---------------------------------------------------------------------------------------------------
# transformers -> electra


def save_hf_pair(tf, root: Path, vocab: Path, E: int, g_hidden: int, g_heads: int, g_layers: int, g_ffn: int,
                 tie_embeddings: bool = True) -> tuple[nn.Module, nn.Module]:
    """Random ElectraForPreTraining + ElectraForMaskedLM saved with save_pretrained into root/{discriminator,generator}."""
    V = n_tokens(vocab)
    common = {"vocab_size": V, "embedding_size": E, "max_position_embeddings": 128, "pad_token_id": 0}
    torch.manual_seed(1)
    disc = tf.ElectraForPreTraining(tf.ElectraConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                     intermediate_size=128, **common))
    gen = tf.ElectraForMaskedLM(tf.ElectraConfig(hidden_size=g_hidden, num_hidden_layers=g_layers,
                                                 num_attention_heads=g_heads, intermediate_size=g_ffn, **common))
    perturb(disc, 1)
    perturb(gen, 2)
    if tie_embeddings:
        gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    for name, m in (("discriminator", disc), ("generator", gen)):
        m.save_pretrained(root / name)
        shutil.copyfile(vocab, root / name / "vocab.txt")
        (root / name / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return disc.eval(), gen.eval()


@pytest.mark.parametrize("E", [32, 64])
def test_import_random_hf_models_gives_same_logits(tf, vocab, tmp_path, E):
    disc, gen = save_hf_pair(tf, tmp_path, vocab, E, g_hidden=32, g_heads=1, g_layers=1, g_ffn=128)
    ids, seg, mask = batch(vocab)
    assert is_hf_folder(tmp_path) and is_hf_folder(tmp_path / "discriminator")

    encoder, pre = load_hf_encoder(tmp_path)  # finetune / detect: the discriminator alone
    assert pre.cfg.model.embedding_size == E and (encoder.project is None) == (E == 64)
    d1 = maxdiff(ours_disc(encoder, pre.weights, pre.cfg.model, ids, seg, mask), hf_logits(disc, ids, seg, mask))
    assert d1 < TOL
    encoder2, _ = load_discriminator(tmp_path)  # the checkpoint dispatch
    assert all(torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), encoder2.state_dict().values()))
    with pytest.warns(UserWarning, match="the model to fine-tune is its discriminator"):
        _, gen_pre = load_hf_encoder(tmp_path / "generator")  # the generator beside it: read, with a pointer
    assert gen_pre.cfg.objective.objective == "mlm"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # equal embedding blocks: no warning
        init = load_hf_pretraining(tmp_path)
    assert init.loaded == ("discriminator", "discriminator_head", "generator", "generator_head")
    o = init.cfg["objective"]
    assert (o["generator_hidden_fraction"], o["generator_layers_fraction"]) == (0.5, 0.5)
    cfg = PretrainConfig.from_dict({**init.cfg, "train": {"seq_len": 64}})
    model = Electra(cfg, SpecialTokens(0, 101, 102, 103)).eval()
    load_into(model, init)
    d, g = electra_logits(model, ids, seg, mask)
    d2, g2 = maxdiff(d, hf_logits(disc, ids, seg, mask)), maxdiff(g, hf_logits(gen, ids, seg, mask))
    print(f"import E={E}: max |dlogit| discriminator {max(d1, d2):.2e}, generator {g2:.2e}")
    assert d2 < TOL and g2 < TOL


def test_import_same_size_generator_and_untied_embeddings(tf, vocab, tmp_path):
    """A published-style Small++ pair (generator = discriminator size) loads with fraction 1.0; a generator whose
    embedding copy differs is warned about and the discriminator's block is used."""
    disc, _ = save_hf_pair(tf, tmp_path, vocab, 32, g_hidden=64, g_heads=2, g_layers=2, g_ffn=128,
                             tie_embeddings=False)
    with pytest.warns(UserWarning, match="embeddings differ"):
        init = load_hf_pretraining(tmp_path)
    o = init.cfg["objective"]
    assert (o["generator_hidden_fraction"], o["generator_layers_fraction"]) == (1.0, 1.0)
    assert not any(k.startswith("generator.embeddings.") for k in init.weights)
    model = Electra(PretrainConfig.from_dict({**init.cfg, "train": {"seq_len": 64}}), SpecialTokens(0, 101, 102, 103))
    load_into(model, init)
    assert torch.equal(model.generator.embeddings.word.weight, disc.electra.embeddings.word_embeddings.weight)

    # a discriminator alone: the generator stays fresh, its fractions come from the base config
    shutil.rmtree(tmp_path / "generator")
    base = tiny_cfg(frac=0.25).to_dict()
    init = load_hf_pretraining(tmp_path, base)
    assert init.loaded == ("discriminator", "discriminator_head")
    assert init.cfg["objective"]["generator_hidden_fraction"] == 0.25 and init.cfg["train"] == base["train"]
    model = Electra(PretrainConfig.from_dict(init.cfg), SpecialTokens(0, 101, 102, 103))
    assert init_from_hf(model, tmp_path, vocab).loaded == init.loaded
    assert torch.equal(model.discriminator.blocks[1].mlp.fc.weight, disc.electra.encoder.layer[1].intermediate.dense.weight)
    wrong = Electra(tiny_cfg(E=64), SpecialTokens(0, 101, 102, 103))
    with pytest.raises(UserError, match="differs"):
        init_from_hf(wrong, tmp_path)


# ---------------------------------------------------------------------------------------------------
# electra -> transformers


@pytest.mark.parametrize("E,sharing,frac", [(32, "embeddings", 0.5), (64, "none", 0.5), (32, "all", 1.0), (32, "gdes", 0.5)])
def test_export_loads_in_transformers_and_round_trips(tf, vocab, tmp_path, E, sharing, frac):
    """sharing=gdes: perturb() gives the discriminator's residual embeddings non-zero values, so its exported
    embeddings (the generator's tables plus the residual) differ from the generator's."""
    model = electra_model(tiny_cfg(E, sharing, frac), vocab)
    run = write_run(tmp_path / "run", model, vocab)
    res = export(run, tmp_path / "out")
    assert [a for _, a in res.folders] == ["ElectraForPreTraining", "ElectraForMaskedLM"] and not res.notes
    for sub in ("discriminator", "generator"):
        names = {p.name for p in (tmp_path / "out" / sub).iterdir()}
        assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} <= names
    disc = hf_load(tf.ElectraForPreTraining, tmp_path / "out" / "discriminator")
    gen = hf_load(tf.ElectraForMaskedLM, tmp_path / "out" / "generator")
    ids, seg, mask = batch(vocab)
    d, g = electra_logits(model, ids, seg, mask)
    dd, dg = maxdiff(d, hf_logits(disc, ids, seg, mask)), maxdiff(g, hf_logits(gen, ids, seg, mask))
    print(f"export E={E} sharing={sharing}: max |dlogit| discriminator {dd:.2e}, generator {dg:.2e}")
    assert dd < TOL and dg < TOL

    # export -> import -> export: the same bytes
    init = load_hf_pretraining(tmp_path / "out", model.cfg.to_dict())
    assert PretrainConfig.from_dict(init.cfg) == model.cfg
    again = Electra(PretrainConfig.from_dict(init.cfg), model.special)
    load_into(again, init)
    export(write_run(tmp_path / "run2", again, vocab), tmp_path / "out2")
    for sub in ("discriminator", "generator"):
        assert (tmp_path / "out" / sub / "config.json").read_bytes() == (tmp_path / "out2" / sub / "config.json").read_bytes()
        first, second = (load_file(str(tmp_path / o / sub / "model.safetensors")) for o in ("out", "out2"))
        if sharing == "gdes":  # the residual is re-derived as a difference: (g + d) - g + g is g + d to rounding
            assert first.keys() == second.keys() and all(maxdiff(first[k], second[k]) < 1e-7 for k in first)
        else:
            assert (tmp_path / "out" / sub / "model.safetensors").read_bytes() == \
                (tmp_path / "out2" / sub / "model.safetensors").read_bytes()
    if sharing == "gdes":
        gen_emb, disc_emb = (first_emb(load_file(str(tmp_path / "out" / s / "model.safetensors"))) for s in
                             ("generator", "discriminator"))
        assert maxdiff(gen_emb, disc_emb) > 1e-3  # the discriminator's are its own
        torch.testing.assert_close(again.generator.embeddings.word.weight, model.generator.embeddings.word.weight)


def test_gdes_run_continues_from_a_discriminator_alone(vocab, tmp_path):
    """--sharing gdes from a folder with no generator: the generator takes the discriminator's embedding block, the
    residual starts at zero, and the discriminator computes what it computed before the export."""
    model = electra_model(tiny_cfg(32, "gdes", 0.5), vocab)
    export(write_run(tmp_path / "run", model, vocab), tmp_path / "out")
    shutil.rmtree(tmp_path / "out" / "generator")
    init = load_hf_pretraining(tmp_path / "out", model.cfg.to_dict())
    assert init.loaded == ("discriminator", "discriminator_head")
    again = Electra(PretrainConfig.from_dict(init.cfg), model.special)
    load_into(again, init)
    assert all(float(p.detach().abs().max()) == 0.0 for p in again.discriminator.embeddings.delta.parameters())
    exported = load_file(str(tmp_path / "out" / "discriminator" / "model.safetensors"))
    assert torch.equal(again.generator.embeddings.word.weight.detach(), first_emb(exported))
    ids, seg, mask = batch(vocab)
    assert maxdiff(electra_logits(again.eval(), ids, seg, mask)[0], electra_logits(model, ids, seg, mask)[0]) < TOL


def test_sharing_all_from_a_folder_with_a_smaller_generator_names_the_way_out(vocab, tmp_path):
    """The folder's generator sets the fractions, so "set generator_hidden_fraction=1" would be advice already
    followed: the error names the folder's generator and the command that works (its discriminator alone)."""
    model = electra_model(tiny_cfg(32, "embeddings", 0.5), vocab)
    export(write_run(tmp_path / "run", model, vocab), tmp_path / "out")
    asked = model.cfg.to_dict()
    asked["objective"].update(sharing="all", generator_hidden_fraction=1.0)
    with pytest.raises(UserError, match=r"generator of 0.5 x the discriminator's width .*--init .*discriminator "
                                        r"--generator-hidden-fraction 1 --generator-layers-fraction 1"):
        load_hf_pretraining(tmp_path / "out", asked)
    asked["objective"]["generator_layers_fraction"] = 1.0
    init = load_hf_pretraining(tmp_path / "out" / "discriminator", asked)
    assert init.cfg["objective"]["sharing"] == "all" and init.cfg["objective"]["generator_hidden_fraction"] == 1.0


def first_emb(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return tensors["electra.embeddings.word_embeddings.weight"]


def test_export_round_trip_without_transformers(vocab, tmp_path):
    """The byte-identical round trip needs no transformers (export and import use safetensors + json only)."""
    model = electra_model(tiny_cfg(), vocab, seed=3)
    export(write_run(tmp_path / "run", model, vocab), tmp_path / "a")
    init = load_hf_pretraining(tmp_path / "a", model.cfg.to_dict())
    again = Electra(PretrainConfig.from_dict(init.cfg), model.special)
    load_into(again, init)
    export(write_run(tmp_path / "run2", again, vocab), tmp_path / "b")
    for sub in ("discriminator", "generator"):
        assert (tmp_path / "a" / sub / "model.safetensors").read_bytes() == \
               (tmp_path / "b" / sub / "model.safetensors").read_bytes()
    keys = set(load_file(str(tmp_path / "a" / "generator" / "model.safetensors")))
    assert "generator_lm_head.bias" in keys and "generator_lm_head.weight" not in keys  # tied, as HF saves it


def test_mlm_run_exports_generator_only(tf, vocab, tmp_path):
    model = electra_model(tiny_cfg(objective="mlm"), vocab)
    res = export(write_run(tmp_path / "run", model, vocab), tmp_path / "out")
    assert [a for _, a in res.folders] == ["ElectraForMaskedLM"] and "MLM" in res.notes[0]
    assert not (tmp_path / "out" / "discriminator").exists()
    gen = hf_load(tf.ElectraForMaskedLM, tmp_path / "out" / "generator")
    ids, seg, mask = batch(vocab)
    assert maxdiff(electra_logits(model, ids, seg, mask)[1], hf_logits(gen, ids, seg, mask)) < TOL
    with pytest.raises(UserError, match="only a generator"):
        load_hf_pretraining(tmp_path / "out")
    init = load_hf_pretraining(tmp_path / "out", {"objective": {"objective": "mlm"}})
    assert init.loaded == ("generator", "generator_head")
    _, pre = load_discriminator(tmp_path / "out")  # an MLM model, as an MLM run's checkpoint
    assert pre.cfg.objective.objective == "mlm" and "generator_head.bias" in pre.weights


@pytest.mark.parametrize("objective", ["replace_mlm", "all_tokens_mlm"])
def test_ablation_discriminator_exports_as_a_masked_lm(tf, vocab, tmp_path, objective):
    """Table 5's ablations train the discriminator as a masked LM: discriminator/ is an ElectraForMaskedLM whose
    logits on every position are our encoder's + LM head's (tied to the discriminator's word table)."""
    model = electra_model(tiny_cfg(objective=objective), vocab)
    res = export(write_run(tmp_path / "run", model, vocab), tmp_path / "out")
    assert [a for _, a in res.folders] == ["ElectraForMaskedLM", "ElectraForMaskedLM"]
    assert ("copy gate" in " ".join(res.notes)) == (objective == "all_tokens_mlm")
    disc = hf_load(tf.ElectraForMaskedLM, tmp_path / "out" / "discriminator")
    ids, seg, mask = batch(vocab)
    with torch.no_grad():
        ours = model.discriminator_lm_head(model.discriminator(ids, seg, mask),
                                           model.discriminator.embeddings.word.weight)
    assert maxdiff(ours, hf_logits(disc, ids, seg, mask)) < TOL
    gen = hf_load(tf.ElectraForMaskedLM, tmp_path / "out" / "generator")
    assert maxdiff(electra_logits(model, ids, seg, mask)[1], hf_logits(gen, ids, seg, mask)) < TOL
    card = (tmp_path / "out" / "discriminator" / "README.md").read_text()
    assert f"discriminator of a {objective} ablation run" in card
    encoder, _pre = load_discriminator(tmp_path / "run")  # what fine-tuning loads: the discriminator's body
    torch.testing.assert_close(encoder.embeddings.word.weight, model.discriminator.embeddings.word.weight)
    # --init into the same objective takes every part back, the discriminator's LM head included
    again = electra_model(tiny_cfg(objective=objective), vocab, seed=123)
    init = load_hf_pretraining(tmp_path / "out", again.cfg.to_dict())
    assert "discriminator_lm_head" in load_into(again, init)
    for k, v in again.discriminator_lm_head.state_dict().items():
        assert torch.equal(v, model.discriminator_lm_head.state_dict()[k]), k


def test_exported_tokenizer_matches_ours(tf, vocab, tmp_path):
    lines = wiki_lines(400)
    if not lines:
        pytest.skip(f"shared data not found at {WIKI}")
    from electra.hf_export import write_tokenizer_files  # what export writes into each folder

    write_tokenizer_files(tmp_path, vocab, lowercase=True, max_len=512)
    hf_tok = tf.AutoTokenizer.from_pretrained(tmp_path)
    ours = load_tokenizer(vocab, lowercase=True)
    sp = SpecialIds.from_vocab(vocab)
    theirs = hf_tok(lines, add_special_tokens=False)["input_ids"]
    mine = [e.ids for e in ours.encode_batch(lines, add_special_tokens=False)]
    assert theirs == mine
    with_special = hf_tok(lines[:50])["input_ids"]
    assert with_special == [[sp.cls, *m, sp.sep] for m in mine[:50]]


# ---------------------------------------------------------------------------------------------------
# fine-tuned models


def write_finetuned(root: Path, vocab: Path, head: str, n_out: int, labels: list[str] | None,
                    extra_head: bool = False) -> tuple[Encoder, nn.Linear]:
    cfg = ModelConfig(vocab_size=n_tokens(vocab), hidden_size=64, embedding_size=32,
                      num_layers=2, num_heads=2, intermediate_size=128, max_position_embeddings=128)
    torch.manual_seed(5)
    encoder, out = Encoder(cfg), nn.Linear(64, n_out)
    perturb(encoder, 5)
    perturb(out, 6)
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors |= {f"head.out.{k}": v for k, v in out.state_dict().items()}
    if extra_head:
        tensors["head.start.weight"] = torch.zeros(1, 64)
    root.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(root / "model.safetensors"))
    (root / "finetune.json").write_text(json.dumps({"task": "t", "head": head, "labels": labels,
                                                    "model_config": dataclasses.asdict(cfg), "lowercase": True}))
    shutil.copyfile(vocab, root / "vocab.txt")
    return encoder.eval(), out


def test_export_finetuned_tagging_qa_and_body(tf, vocab, tmp_path):
    ids, seg, mask = batch(vocab)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    encoder, out = write_finetuned(tmp_path / "tag" / "model", vocab, "tagging", len(tags), tags)
    res = export(tmp_path / "tag", tmp_path / "tag_hf")  # the finetune OUT folder (its model/ is found)
    assert res.folders[0][1] == "ElectraForTokenClassification" and "segment 0's embedding" in res.notes[0]
    hf = hf_load(tf.ElectraForTokenClassification, tmp_path / "tag_hf")
    assert hf.config.id2label[1] == "B-PER"
    ones = torch.ones_like(seg)  # our tagger reads every token as segment 1
    with torch.no_grad():
        ours = out(encoder(ids, ones, mask))
        default = hf(input_ids=ids, attention_mask=mask.long()).logits  # transformers' default: segment 0
    dt = max(maxdiff(ours, hf_logits(hf, ids, ones, mask)), maxdiff(ours, default))
    assert "segment 0's embedding is a copy of segment 1's" in (tmp_path / "tag_hf" / "README.md").read_text()

    encoder, out = write_finetuned(tmp_path / "qa", vocab, "qa_simple", 2, None)
    assert export(tmp_path / "qa", tmp_path / "qa_hf").folders[0][1] == "ElectraForQuestionAnswering"
    hf = hf_load(tf.ElectraForQuestionAnswering, tmp_path / "qa_hf")
    with torch.no_grad():
        ours = out(encoder(ids, seg, mask))  # the raw start/end logits (our head masks non-context positions later)
        r = hf(input_ids=ids, token_type_ids=seg, attention_mask=mask.long())
    dq = max(maxdiff(ours[..., 0], r.start_logits), maxdiff(ours[..., 1], r.end_logits))
    print(f"fine-tuned export: max |dlogit| tagging {dt:.2e}, qa_simple {dq:.2e}")
    assert dt < TOL and dq < TOL

    encoder, _ = write_finetuned(tmp_path / "cls", vocab, "classification", 3, ["a", "b", "c"])
    res = export(tmp_path / "cls", tmp_path / "cls_hf")
    assert res.folders[0][1] == "ElectraModel" and "no transformers equivalent" in res.notes[0]
    hf = hf_load(tf.ElectraModel, tmp_path / "cls_hf")
    with torch.no_grad():
        h = hf(input_ids=ids, token_type_ids=seg, attention_mask=mask.long()).last_hidden_state
        assert maxdiff(encoder(ids, seg, mask), h) < TOL
    assert load_hf_encoder(tmp_path / "cls_hf")[1].cfg.model.embedding_size == 32  # a body folder imports too
    write_finetuned(tmp_path / "tag2", vocab, "tagging", 3, ["O", "B-PER"])  # labels and head from different runs
    with pytest.raises(UserError, match="lists 2 labels but the tagging head has 3 outputs"):
        export(tmp_path / "tag2", tmp_path / "tag2_hf")
    assert not (tmp_path / "tag2_hf").exists()


# ---------------------------------------------------------------------------------------------------
# bad input


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_input_is_one_line_user_error(vocab, tmp_path):
    model = electra_model(tiny_cfg(), vocab)
    export(write_run(tmp_path / "run", model, vocab), tmp_path / "out")
    disc = tmp_path / "out" / "discriminator"

    bert = tmp_path / "bert"  # another architecture
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    shutil.copyfile(disc / "model.safetensors", bert / "model.safetensors")
    assert not is_hf_folder(bert)
    for load in (load_hf_encoder, load_hf_pretraining, load_discriminator):
        with pytest.raises(UserError) as e:
            load(bert)
        assert "'bert'" in one_line(e)

    bad = tmp_path / "bad"  # config / weights shape mismatch
    shutil.copytree(disc, bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(dict(cfg, intermediate_size=96)))
    with pytest.raises(UserError) as e:
        load_hf_encoder(bad)
    assert "shape" in one_line(e) and "intermediate.dense" in str(e.value)
    (bad / "config.json").write_text(json.dumps(dict(cfg, num_hidden_layers=3)))
    with pytest.raises(UserError) as e:
        load_hf_encoder(bad)
    assert "missing" in one_line(e)

    (bad / "config.json").write_text(json.dumps(dict(cfg, hidden_size="big")))
    with pytest.raises(UserError, match="hidden_size is 'big', not an integer"):
        load_hf_encoder(bad)
    for text, needle in (('{"model_type": "electra",', "is not readable JSON"), ("[1]", "is not a JSON object")):
        (bad / "config.json").write_text(text)  # a damaged config.json is named, not taken for a missing model
        assert is_hf_folder(bad)
        for load in (load_hf_encoder, load_hf_pretraining, load_discriminator):
            with pytest.raises(UserError, match=needle) as e:
                load(bad)
            assert "config.json" in one_line(e)
    ours = write_run(tmp_path / "ours", model, vocab)  # a run whose config.json no longer fits its weights
    cfg = json.loads((ours / "config.json").read_text())
    cfg["model"]["intermediate_size"] *= 2
    (ours / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="has shape") as e:
        load_discriminator(ours)
    assert "config.json" in one_line(e)

    pkl = tmp_path / "pickle"  # a pytorch_model.bin
    shutil.copytree(disc, pkl)
    torch.save(load_file(str(pkl / "model.safetensors")), pkl / "pytorch_model.bin")
    (pkl / "model.safetensors").unlink()
    with pytest.raises(UserError) as e:
        load_hf_encoder(pkl)
    assert "--allow-pickle" in one_line(e)
    with pytest.raises(UserError, match="--allow-pickle"):
        load_hf_pretraining(pkl)
    encoder, _ = load_hf_encoder(pkl, allow_pickle=True)
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, model.discriminator.blocks[0].attn.qkv.weight)
    from electra.cli import main  # detect and finetune pass the flag through load_discriminator
    assert main(["detect", "--model", str(pkl), "the city"]) == 2
    assert main(["detect", "--model", str(pkl), "--allow-pickle", "the city"]) == 0

    with pytest.raises(UserError, match="not empty"):  # export over an existing export
        export(tmp_path / "run", tmp_path / "out")
    with pytest.raises(UserError, match="already a Hugging Face folder"):
        export(tmp_path / "out", tmp_path / "elsewhere")


def test_cli_export(vocab, tmp_path, capsys):
    from electra.cli import main

    run = write_run(tmp_path / "run", electra_model(tiny_cfg(), vocab), vocab)
    assert main(["export", str(run), str(tmp_path / "out")]) == 0
    assert "ElectraForPreTraining" in capsys.readouterr().out
    assert main(["export", str(run), str(tmp_path / "out")]) == 2  # not empty
    err = capsys.readouterr().err.strip()
    assert err.startswith("electra export: error:") and "--overwrite" in err and "\n" not in err
    # --overwrite replaces the export whole: another run's weights, nothing of the old one left behind
    other = write_run(tmp_path / "other", electra_model(tiny_cfg(), vocab, seed=7), vocab)
    (tmp_path / "out" / "discriminator" / "stale.txt").write_text("x")
    assert main(["export", str(other), str(tmp_path / "out"), "--overwrite"]) == 0
    assert main(["export", str(other), str(tmp_path / "fresh")]) == 0
    replaced, fresh = tmp_path / "out", tmp_path / "fresh"
    listing = lambda root: sorted(p.relative_to(root) for p in root.rglob("*"))
    assert listing(replaced) == listing(fresh)
    for part in ("discriminator", "generator"):
        assert (replaced / part / "model.safetensors").read_bytes() == (fresh / part / "model.safetensors").read_bytes()


def test_a_folder_resaved_by_transformers_gets_its_vocab_back(tf, vocab, tmp_path, capsys):
    """transformers 5's save_pretrained writes tokenizer.json and no vocab.txt: the import names the command that
    writes it back, and `electra vocab --from-tokenizer` gives the same vocabulary the model was exported with."""
    from electra.cli import main
    model = electra_model(tiny_cfg(), vocab)
    export(write_run(tmp_path / "run", model, vocab), tmp_path / "out")
    resaved = tmp_path / "resaved"
    hf_load(tf.ElectraForPreTraining, tmp_path / "out" / "discriminator").save_pretrained(resaved)
    tf.AutoTokenizer.from_pretrained(tmp_path / "out" / "discriminator").save_pretrained(resaved)
    (resaved / "vocab.txt").unlink(missing_ok=True)  # whatever this transformers version writes, as v5 does
    assert main(["detect", "--model", str(resaved), "the city"]) == 2
    assert "electra vocab --from-tokenizer" in capsys.readouterr().err
    assert main(["vocab", "--from-tokenizer", str(resaved / "tokenizer.json"), "--out", str(resaved)]) == 0
    assert (resaved / "vocab.txt").read_bytes() == (tmp_path / "out" / "discriminator" / "vocab.txt").read_bytes()
    assert main(["detect", "--model", str(resaved), "the city"]) == 0
    (tmp_path / "bpe.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}}}))
    assert main(["vocab", "--from-tokenizer", str(tmp_path / "bpe.json"), "--out", str(tmp_path / "v")]) == 2
    assert "not WordPiece" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["classify", "regress"])
def test_cls_head_hf_exports_the_whole_fine_tuned_model(tf, tmp_path, task):
    """`--cls-head hf` trains transformers' sequence-classification head layer for layer, so the export is the whole
    model: ElectraForSequenceClassification on transformers' own tokenizer gives `electra predict`'s probabilities
    (classify) or scores, the target scaling folded into its last layer (regress)."""
    from test_finetune_custom import FAST, sentiment_rows, write_csv
    from test_finetune_fixtures import make_run

    run, data, out = make_run(tmp_path), tmp_path / "mine", tmp_path / "out"
    if task == "classify":
        write_csv(data / "train.csv", ["id", "text", "label"], sentiment_rows(32, 0))
        write_csv(data / "dev.csv", ["id", "text", "label"], sentiment_rows(8, 1))
        extra = []
    else:
        rows = [[t, s] for t, s in [("good film", 90), ("bad film", 10), ("awful film", 20), ("great movie", 80)] * 6]
        write_csv(data / "train.csv", ["sentence", "score"], rows)
        write_csv(data / "dev.csv", ["sentence", "score"], rows[:8])
        extra = ["--label-name", "score"]
    assert main(["finetune", "--task", task, "--data", str(data), "--model", str(run), "--out", str(out),
                 "--cls-head", "hf", *FAST, "--epochs", "2", *extra]) == 0
    res = export(out, tmp_path / "hf")
    assert res.folders[0][1] == "ElectraForSequenceClassification" and not res.notes
    hf = hf_load(tf.ElectraForSequenceClassification, tmp_path / "hf")
    tok = tf.AutoTokenizer.from_pretrained(tmp_path / "hf")
    texts = ["good movie", "very bad film , the man", "great film"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    assert main(["predict", "--model", str(out), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "p.jsonl")]) == 0
    ours = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    with torch.no_grad():
        logits = hf(**tok(texts, return_tensors="pt", padding=True)).logits
    if task == "classify":
        assert hf.config.id2label == {0: "negative", 1: "positive"}
        probs = logits.softmax(-1)
        for o, p in zip(ours, probs):
            assert o["probs"]["negative"] == pytest.approx(float(p[0]), abs=1e-5)
            assert o["label"] == hf.config.id2label[int(p.argmax())]
    else:
        assert hf.config.problem_type == "regression"
        assert [o["score"] for o in ours] == pytest.approx(logits[:, 0].tolist(), abs=1e-4)  # on the 10-90 scale
        assert "scales them back" in (tmp_path / "hf" / "README.md").read_text()
