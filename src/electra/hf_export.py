"""`electra export`: write `save_pretrained`-style Hugging Face folders with safetensors + json only.

A pre-training run (folder or one checkpoint folder) becomes
    OUT/discriminator/   ElectraForPreTraining  (the model to fine-tune)
    OUT/generator/       ElectraForMaskedLM     (its MLM head tied to the word embeddings, as HF expects)
each with config.json, model.safetensors, vocab.txt, tokenizer_config.json, special_tokens_map.json,
tokenizer.json and a README.md model card (model_card.py). The shared embedding block is written into both. An MLM-objective run (the BERT baseline)
has no discriminator: only OUT/generator/ is written.

A fine-tuned model (`electra finetune` output: OUT/model/{model.safetensors, finetune.json, vocab.txt}) becomes
one folder OUT_DIR/: tagging -> ElectraForTokenClassification, qa_simple -> ElectraForQuestionAnswering;
classification / regression / qa_electra heads have no transformers equivalent (HF's sequence-classification
head adds a dense + GELU layer; its QA head is the simple one), so their body is exported as ElectraModel.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from electra import model_card
from electra.checkpoint import (
    Pretrained,
    encoder_weights,
    load_pretrained,
    read_weights,
    resolve_checkpoint,
    save_tensors,
    strip_prefix,
)
from electra.config import ModelConfig, generator_config
from electra.data.shards import fsync_dir
from electra.errors import UserError
from electra.hf import DISC_HEAD, GEN_HEAD, check_encoder, encoder_to_hf, hf_config, is_hf_folder, rename
from electra.hf_modern import check_exportable, modern_hf_config, modern_to_hf

SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]"}


class ExportResult(NamedTuple):
    folders: list[tuple[Path, str]]  # (folder, transformers class)
    notes: list[str]  # one-line notices (what was not exported and why)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder; choose another OUT_DIR")
    if out.is_dir():
        _drop_dead_stages(out)
        if any(out.iterdir()) and not overwrite:
            raise UserError(f"output folder {out} is not empty; choose another OUT_DIR or pass --overwrite")


def _drop_dead_stages(folder: Path, pattern: str = ".export-*") -> None:
    """Remove the staging folders (`.export-PID` inside OUT, `.OUT.export-PID` beside a new OUT) that killed
    exports left behind."""
    for stage in folder.glob(pattern):
        try:
            os.kill(int(stage.name.rsplit("-", 1)[1]), 0)  # still running: an export in progress, leave it
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(stage, ignore_errors=True)
        except OSError:  # exists, but another user's: leave it
            continue


def _staged(out: Path, write: Callable[[Path], ExportResult]) -> ExportResult:
    """Run `write` into a hidden staging folder and move what it wrote into OUT only when it all succeeded, so
    that a failed export leaves OUT as it was (entries it replaces under --overwrite are swapped one by one).
    The staging folder is on OUT's own filesystem, where a rename works: inside OUT when OUT exists (whether OUT
    is a symlink, a mount point, or in a folder this user cannot write), entries then moved in one by one; beside
    OUT when OUT is new, then renamed to OUT whole."""
    real = out.resolve()  # a symlinked OUT: stage where its files will live
    try:
        if real.is_dir():
            stage = real / f".export-{os.getpid()}"
        else:
            real.parent.mkdir(parents=True, exist_ok=True)
            _drop_dead_stages(real.parent, f".{glob.escape(real.name)}.export-*")
            stage = real.parent / f".{real.name}.export-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
    except OSError as e:
        raise UserError(f"cannot write the export into {out} ({e.strerror or e}); choose another OUT_DIR") from None
    try:
        result = write(stage)
        if stage.parent == real:
            for entry in sorted(stage.iterdir()):
                target = real / entry.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(entry, target)
            fsync_dir(real)
        else:
            os.replace(stage, real)
            fsync_dir(real.parent)
    except OSError as e:
        raise UserError(f"export into {out} failed ({e})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult([(out / folder.relative_to(stage), arch) for folder, arch in result.folders], result.notes)


def write_tokenizer_files(folder: Path, vocab_path: Path, lowercase: bool, max_len: int,
                          strip_accents: bool | None = None, segments: bool = True) -> None:
    """vocab.txt, tokenizer_config.json (ElectraTokenizer[Fast], do_lower_case), special_tokens_map.json and a
    fast-tokenizer tokenizer.json ([CLS] A [SEP] / [CLS] A [SEP] B [SEP] templates, as BERT's). segments=False: a
    model without segment embeddings (the modern backbone), whose tokenizer returns no token_type_ids."""
    from tokenizers import processors

    from electra.data.tokenizer import SpecialIds, load_tokenizer

    shutil.copyfile(vocab_path, folder / "vocab.txt")
    ids = SpecialIds.from_vocab(vocab_path)
    tok_cfg = {"tokenizer_class": "ElectraTokenizer", "do_lower_case": lowercase, "strip_accents": strip_accents,
               "tokenize_chinese_chars": True, "model_max_length": max_len, "clean_up_tokenization_spaces": True,
               **SPECIALS}
    if not segments:
        tok_cfg["model_input_names"] = ["input_ids", "attention_mask"]
    _write_json(folder / "tokenizer_config.json", tok_cfg)
    _write_json(folder / "special_tokens_map.json", SPECIALS)
    tok = load_tokenizer(vocab_path, lowercase=lowercase, strip_accents=strip_accents)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids.cls), ("[SEP]", ids.sep)])
    tok.save(str(folder / "tokenizer.json"))


def _write_json(path: Path, d: dict[str, Any]) -> None:
    path.write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")


def write_hf_folder(folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], vocab_path: Path,
                    lowercase: bool, card: str | None = None, strip_accents: bool | None = None,
                    segments: bool = True) -> None:
    """One save_pretrained-style folder (and its model card, when given). Tensors are written contiguous, on
    the CPU, sorted by name, with metadata {"format": "pt"} (what transformers checks), so the same weights
    give the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", config)
    save_tensors({k: tensors[k].detach().cpu().contiguous() for k in sorted(tensors)}, folder / "model.safetensors",
                 metadata={"format": "pt"})
    write_tokenizer_files(folder, vocab_path, lowercase, config["max_position_embeddings"], strip_accents, segments)
    if card is not None:
        model_card.write_card(folder, card)


# ---------------------------------------------------------------------------------------------------


def export(src: Path, out: Path, overwrite: bool = False) -> ExportResult:
    """`electra export SRC OUT`: a run / checkpoint folder, or a fine-tuned model folder. All or nothing: the
    files are written aside and moved into OUT once every one of them was written."""
    src, out = Path(src), Path(out)
    for model_dir in (src, src / "model"):
        if (model_dir / "finetune.json").is_file():
            _check_out(out, overwrite)
            return _staged(out, functools.partial(export_finetuned, model_dir))
    if is_hf_folder(src):
        raise UserError(f"{src} is already a Hugging Face folder; export takes an electra run or fine-tuned model")
    pre = load_pretrained(src)
    facts = model_card.run_facts(*resolve_checkpoint(src), pre.step)
    _check_out(out, overwrite)
    return _staged(out, lambda stage: export_pretrained(pre, stage, facts))


def export_pretrained(pre: Pretrained, out: Path, facts: model_card.RunFacts | None = None) -> ExportResult:
    """discriminator/ and generator/ (generator/ only for an MLM run, discriminator/ only with a fixed generator) from a loaded run, each with a model
    card (`facts`: what the run folder recorded about the checkpoint; by default only its step)."""
    from electra.data.tokenizer import SpecialIds

    cfg, w = pre.cfg, pre.weights
    o = cfg.objective
    pad = SpecialIds.from_vocab(pre.vocab_path).pad
    facts = facts or model_card.RunFacts(pre.step, None, None, None, {})
    folders, notes = [], []

    def card(arch: str, model: ModelConfig, tensors: dict[str, torch.Tensor], what: str | None = None) -> str:
        return model_card.pretrained_card(arch, model, cfg, tensors, facts, what)

    if cfg.model.modern:
        return _export_modern(pre, out, card)
    try:
        if o.joint:
            d_cfg = cfg.model
            g_cfg = generator_config(d_cfg, o.generator_hidden_fraction, o.generator_layers_fraction)
            d_enc = encoder_weights(w, cfg, "discriminator")  # shared tables taken from their owner, gdes summed
            check_encoder(d_enc, d_cfg, "discriminator weights")
            arch, what = "ElectraForPreTraining", None
            if o.objective in ("electra", "electric"):
                head = rename(w, DISC_HEAD, "discriminator_head.")
                if o.objective == "electric":
                    what = ("the discriminator of an Electric run: its head gives each token's energy (an unnormalised "
                            "negative log-probability of the token in its context); the model to fine-tune")
            else:  # Table 5's ablations: the discriminator is a full-size masked LM
                arch, head = "ElectraForMaskedLM", rename(w, GEN_HEAD, "discriminator_lm_head.")
                what = (f"the discriminator of a {o.objective} ablation run (the paper's Table 5): a full-size masked "
                        f"LM trained on the generator's corrupted text; the model to fine-tune")
                if o.objective == "all_tokens_mlm":
                    notes.append("all_tokens_mlm: the copy gate has no transformers counterpart; discriminator/ "
                                 "holds its masked LM (ElectraForMaskedLM)")
            disc = encoder_to_hf(d_enc) | head
            # marked, so that an import never reads Electric's energy head as a replaced-token detector
            extra = {"electra_objective": "electric"} if o.objective == "electric" else {}
            write_hf_folder(out / "discriminator", hf_config(d_cfg, arch, pad, **extra), disc,
                            pre.vocab_path, pre.lowercase, card(arch, d_cfg, disc, what), pre.strip_accents)
            folders.append((out / "discriminator", arch))
        else:
            g_cfg = cfg.model
            notes.append("MLM-objective run: there is no discriminator, only generator/ (ElectraForMaskedLM) is written")
        if not o.trained_generator:
            notes.append(f"generator={o.generator}: the fakes came from a fixed distribution, there is no generator "
                         f"network; only discriminator/ is written")
            return ExportResult(folders, notes)
        if o.objective == "electric":
            notes.append("electric: the two-tower generator has no transformers class, so only discriminator/ is "
                         "written; its head gives the energy, and a noise probability also needs the generator's q")
            return ExportResult(folders, notes)
        g_enc = encoder_weights(w, cfg, "generator")
        check_encoder(g_enc, g_cfg, "generator weights")
        gen = encoder_to_hf(g_enc) | rename(w, GEN_HEAD, "generator_head.")
    except KeyError as e:
        raise UserError(f"checkpoint weights lack {e}; the run folder is incomplete or from another version") from None
    write_hf_folder(out / "generator", hf_config(g_cfg, "ElectraForMaskedLM", pad), gen, pre.vocab_path, pre.lowercase,
                    card("ElectraForMaskedLM", g_cfg, gen), pre.strip_accents)
    folders.append((out / "generator", "ElectraForMaskedLM"))
    return ExportResult(folders, notes)


def _export_modern(pre: Pretrained, out: Path, card: Callable[..., str]) -> ExportResult:
    """A modern-backbone run: its main encoder as a `ModernBertModel` folder, discriminator/ (or generator/ for an
    MLM run). Neither the replaced-token head nor the generator (narrower than the embeddings, with a biased
    head) has a ModernBERT class, so both stay in the run."""
    from electra.data.tokenizer import SpecialIds

    cfg, o = pre.cfg, pre.cfg.objective
    which = "discriminator" if o.joint else "generator"
    check_exportable(cfg.model, f"the {which}")
    try:
        tensors = modern_to_hf(encoder_weights(pre.weights, cfg, which))
    except KeyError as e:
        raise UserError(f"checkpoint weights lack {e}; the run folder is incomplete or from another version") from None
    arch = "ModernBertModel"
    write_hf_folder(out / which, modern_hf_config(cfg.model, arch, SpecialIds.from_vocab(pre.vocab_path)), tensors,
                    pre.vocab_path, pre.lowercase, card(arch, cfg.model, tensors), pre.strip_accents, segments=False)
    rest = "the replaced-token head and the generator have" if o.joint else "the MLM head has"
    notes = [(f"modern backbone: {which}/ holds the encoder as ModernBertModel (ModernBERT's task classes fine-tune "
              f"it); {rest} no ModernBERT class and stay{'' if o.joint else 's'} in the run")]
    return ExportResult([(out / which, arch)], notes)


def export_finetuned(model_dir: Path, out: Path) -> ExportResult:
    """One HF folder from `electra finetune`'s OUT/model/: model.safetensors (encoder.* = our Encoder names,
    head.* = the task head) + finetune.json {task, head, labels, model, lowercase} + vocab.txt."""
    from electra.data.tokenizer import SpecialIds
    from electra.finetune.train import read_finetune_meta

    meta = read_finetune_meta(model_dir)
    where = model_dir / "finetune.json"
    kind = meta.get("head", meta.get("head_kind"))
    model_d = meta.get("model", meta.get("model_config"))
    if not isinstance(model_d, dict) or kind is None:
        raise UserError(f"{where} lacks 'head' or 'model'; it was not written by `electra finetune`")
    try:
        cfg = ModelConfig(**model_d)
    except TypeError as e:
        raise UserError(f"{where}: bad model config ({e})") from None
    vocab = model_dir / "vocab.txt"
    if not vocab.is_file():
        raise UserError(f"{model_dir} has no vocab.txt; copy the vocabulary the model was fine-tuned with there")
    w = read_weights(model_dir / "model.safetensors", fix="restore it, or fine-tune again")
    enc, head = strip_prefix(w, "encoder."), strip_prefix(w, "head.")
    check_encoder(enc, cfg, f"{model_dir / 'model.safetensors'} (encoder)")
    pad = SpecialIds.from_vocab(vocab).pad
    labels = [str(x) for x in meta.get("labels") or []]
    lowercase, strip_accents = bool(meta.get("lowercase", True)), meta.get("strip_accents")
    simple_head = set(head) == {"out.weight", "out.bias"}
    notes = []
    if cfg.modern:
        check_exportable(cfg, str(model_dir))
        arch, extra, tensors = "ModernBertModel", {}, modern_to_hf(enc)
        notes.append(f"modern backbone: the {kind!r} head has no ModernBERT equivalent (ModernBERT's task heads add a "
                     f"dense + GELU + LayerNorm); exported the encoder only, as ModernBertModel")
    elif kind == "tagging" and simple_head:
        n = head["out.weight"].shape[0]
        if not labels:  # none recorded: transformers' default names
            labels = [f"LABEL_{i}" for i in range(n)]
        if len(labels) != n:
            raise UserError(f"{where} lists {len(labels)} labels but the tagging head has {n} outputs; the file "
                            f"and model.safetensors come from different runs: fine-tune again or restore the pair")
        arch, extra = "ElectraForTokenClassification", {"id2label": dict(enumerate(labels)),
                                                         "label2id": {x: i for i, x in enumerate(labels)}}
        tensors = encoder_to_hf(enc) | {"classifier.weight": head["out.weight"], "classifier.bias": head["out.bias"]}
        # our tagger reads every token as segment 1 (the original's tagging task); transformers' tokenizer and
        # pipeline give a single sentence segment 0: the exported segment 0 is segment 1, so both tag alike
        key = "electra.embeddings.token_type_embeddings.weight"
        tensors[key] = tensors[key].clone()
        tensors[key][0] = tensors[key][1]
        notes.append("tagging: segment 0's embedding is set to segment 1's, which the tagger was fine-tuned with, "
                     "so transformers' default token_type_ids (all 0) give the same tags")
    elif kind == "qa_simple" and simple_head:
        if head["out.weight"].shape[0] != 2:
            raise UserError(f"{model_dir}: a qa_simple head must have 2 rows (start, end), got {head['out.weight'].shape[0]}")
        arch, extra = "ElectraForQuestionAnswering", {"id2label": {0: "LABEL_0", 1: "LABEL_1"},
                                                       "label2id": {"LABEL_0": 0, "LABEL_1": 1}}
        tensors = encoder_to_hf(enc) | {"qa_outputs.weight": head["out.weight"], "qa_outputs.bias": head["out.bias"]}
    elif kind in ("classification", "regression") and set(head) == {"dense.weight", "dense.bias", "out.weight", "out.bias"}:
        arch, extra, out_w, out_b = "ElectraForSequenceClassification", {}, head["out.weight"], head["out.bias"]
        n = out_w.shape[0]
        if kind == "regression":  # fold the target scaling into the last layer: transformers' output is the score
            lo, hi = (float(x) for x in meta.get("target_range") or (0.0, 5.0))
            out_w, out_b = out_w * (hi - lo), out_b * (hi - lo) + lo
            extra = {"problem_type": "regression", "id2label": {0: "LABEL_0"}, "label2id": {"LABEL_0": 0}}
        else:
            labels = labels or [f"LABEL_{i}" for i in range(n)]
            if len(labels) != n:
                raise UserError(f"{where} lists {len(labels)} labels but the classifier has {n} outputs; the file and "
                                f"model.safetensors come from different runs: fine-tune again or restore the pair")
            extra = {"problem_type": "single_label_classification", "id2label": dict(enumerate(labels)),
                     "label2id": {x: i for i, x in enumerate(labels)}}
        dropout = (meta.get("config") or {}).get("head_dropout")
        extra["classifier_dropout"] = float(dropout) if isinstance(dropout, (int, float)) else None
        tensors = encoder_to_hf(enc) | {"classifier.dense.weight": head["dense.weight"],
                                        "classifier.dense.bias": head["dense.bias"],
                                        "classifier.out_proj.weight": out_w, "classifier.out_proj.bias": out_b}
    else:
        arch, extra = "ElectraModel", {}
        tensors = encoder_to_hf(enc, prefix="")
        notes.append(f"the {kind!r} head has no transformers equivalent (HF's sequence-classification head adds "
                     f"dense+GELU: fine-tune with --cls-head hf to export one; its QA head is the simple start/end "
                     f"one): exported the encoder only, as ElectraModel")
    # the task's results.json sits beside model/ when the folder came straight from `electra finetune`
    results = model_card.read_json_object(model_dir.parent / "results.json")
    card = model_card.finetuned_card(arch, cfg, meta, tensors, results)
    config = modern_hf_config(cfg, arch, SpecialIds.from_vocab(vocab)) if cfg.modern else hf_config(cfg, arch, pad, **extra)
    write_hf_folder(out, config, tensors, vocab, lowercase, card, strip_accents, segments=not cfg.modern)
    return ExportResult([(out, arch)], notes)


__all__ = ["ExportResult", "export", "export_finetuned", "export_pretrained", "write_hf_folder"]
