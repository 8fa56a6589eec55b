"""README.md model cards for the folders `electra export` writes, so that a published model says what it is.

A card opens with the YAML block the Hugging Face Hub reads (`library_name`, `pipeline_tag`, `tags`), then
states facts the export already has, never claims: the architecture and parameter count of the tensors
written, how the run was trained (objective, mask rate, generator size, schedule, steps, tokens seen) and,
when the run logged them, its held-out metrics at the exported step (`metrics.jsonl`); for a fine-tuned
model, the task, its labels and the dev scores over seeds from `results.json`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch

from electra.config import ModelConfig, PretrainConfig
from electra.errors import UserError
from electra.flops import train_flops
from electra.logs import read_metrics

PROJECT = "electra"
PAPER = "[ELECTRA](https://arxiv.org/abs/2003.10555) (Clark et al., ICLR 2020)"
ELECTRIC = "[Electric](https://arxiv.org/abs/2012.08561) (Clark et al., EMNLP 2020)"
TAGS = {"electra": "replaced-token-detection", "electric": "energy-based-cloze", "mlm": "masked-language-modeling",
        "replace_mlm": "replace-mlm", "all_tokens_mlm": "all-tokens-mlm"}
ROLE = {  # transformers class -> (pipeline tag, one line on what the folder is for)
    "ElectraForPreTraining": (None, ("the discriminator: the model to fine-tune (it predicts, for every token, "
                                     "whether the generator replaced it)")),
    "ElectraForMaskedLM": ("fill-mask", ("the generator: the small masked-language model that corrupted the "
                                         "discriminator's input during pre-training; usually discarded")),
    "ElectraForTokenClassification": ("token-classification", "a fine-tuned token tagger"),
    "ElectraForQuestionAnswering": ("question-answering", "a fine-tuned extractive question-answering model"),
    "ElectraForSequenceClassification": ("text-classification", "a fine-tuned sentence (or sentence-pair) classifier"),
    "ElectraModel": ("feature-extraction", "the fine-tuned encoder (its task head has no transformers class)"),
    "ModernBertModel": ("feature-extraction", ("an encoder with ModernBERT's layer (this project's modern backbone): "
                                               "the model to fine-tune; its pre-training or task head has no "
                                               "transformers class")),
}


class RunFacts(NamedTuple):
    """What a pre-training run recorded about the exported checkpoint."""
    step: int
    tokens_seen: int | None
    seconds: float | None
    dataset: str | None  # the prepared dataset's folder name (never a full local path)
    eval: dict[str, float]  # eval/* metrics of the last evaluation at or before `step`
    # the config the checkpoint was saved with (its state.json), not the run's config.json, which a later resume
    # rewrites with its own overrides (--lr, --max-steps, ...) whether or not it saves a checkpoint
    config: PretrainConfig | None = None
    init: str | None = None  # the folder name of the model a continued pre-training run started from (--init)
    mixture: list[tuple[str, float]] | None = None  # several datasets mixed: (folder name, share of the rows)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing, unreadable or not an object: a card leaves that fact out."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def run_facts(run_dir: Path, ckpt: Path, step: int) -> RunFacts:
    """Read what a run folder says about checkpoint `ckpt`; whatever is missing or unreadable is left out."""
    state, tok = read_json_object(ckpt / "state.json"), read_json_object(run_dir / "tokenizer.json")
    metrics = run_dir / "metrics.jsonl"
    last_eval: dict[str, float] = {}
    for rec in read_metrics(metrics) if metrics.is_file() else []:
        if rec.get("step", step + 1) <= step and any(k.startswith("eval/") for k in rec):
            last_eval = {k: float(v) for k, v in rec.items() if k.startswith("eval/")} | {"step": rec["step"]}
    dataset = Path(tok["dataset"]).name if tok.get("dataset") else None
    try:
        config = PretrainConfig.from_dict(state["config"]) if isinstance(state.get("config"), dict) else None
    except (UserError, TypeError, ValueError):  # from another version: the run's config.json then
        config = None
    init = Path(state["init"]).name if isinstance(state.get("init"), str) else None
    mixture = None
    if isinstance(tok.get("mixture"), list):
        mixture = [(Path(m["dataset"]).name, float(m["share"])) for m in tok["mixture"]
                   if isinstance(m, dict) and "dataset" in m and "share" in m] or None
    return RunFacts(step, state.get("tokens_seen"), state.get("elapsed"), dataset, last_eval, config, init, mixture)


def pretraining_summary(path: Path, pre: Any) -> dict[str, Any] | None:
    """What went into the model at `path` (a run or checkpoint folder, loaded as `pre`: checkpoint.Pretrained), for
    fine-tuning results: steps, tokens, seconds, FLOPs by the paper's method (so that scores can be set against
    pre-training compute), dataset, and the model a continued run started from. None for anything else (a
    Hugging Face folder)."""
    from electra.checkpoint import folder_kind, resolve_checkpoint

    if folder_kind(path) not in ("run", "checkpoint"):
        return None
    facts = run_facts(*resolve_checkpoint(path), pre.step)
    return {"step": pre.step, "tokens_seen": facts.tokens_seen, "seconds": facts.seconds,
            "flops": train_flops(facts.config or pre.cfg, steps=pre.step), "dataset": facts.dataset,
            "init": facts.init}


def pretrained_card(arch: str, model: ModelConfig, cfg: PretrainConfig, tensors: dict[str, torch.Tensor],
                    facts: RunFacts, what: str | None = None) -> str:
    """The card of an exported discriminator or generator; `what` says what the folder is when its class does not
    (an ablation's discriminator saved as a masked LM)."""
    cfg = facts.config or cfg
    o, t = cfg.objective, cfg.train
    rows = [("objective", {"electra": "replaced-token detection (generator + discriminator)",
                           "mlm": "masked language modelling (the paper's BERT baseline)",
                           "electric": ("Electric: an energy-based cloze model trained by noise-contrastive estimation "
                                        "against a two-tower generator (Clark et al., EMNLP 2020)")}.get(
                 o.objective, f"{o.objective}, the paper's Table 5 ablation (generator + a masked-LM discriminator)")),
            ("masking", f"{o.mask_prob:.0%} of tokens" + {"token": "", "whole_word": " in whole words",
                                                          "span": f" in spans of whole words (Geo({o.span_p}), at most "
                                                                  f"{o.max_span} words)"}[o.masking]
             + (", replaced by the generator's samples (its towers read the "
                                                           "unmasked text)" if o.objective == "electric" else
                                                           f", {o.mask_token_prob:.0%} of them shown as [MASK]"
                                                           if o.trained_generator else ""))]
    if o.objective == "electra" and not o.trained_generator:
        source = ("uniformly from the vocabulary" if o.generator == "uniform"
                  else "by the training data's token frequencies (unigram)")
        rows += [("generator", f"none: the replacements were drawn {source}"),
                 ("loss", f"{o.disc_weight:g} x RTD" + (" on the masked positions only" if o.rtd_tokens == "masked" else ""))]
    elif o.joint:
        towers = "two towers (left-to-right and right-to-left), each " if o.objective == "electric" else ""
        rows += [("generator", (f"{towers}{o.generator_hidden_fraction:g} x the discriminator's width, "
                                f"{o.generator_layers_fraction:g} x its depth; sharing: {o.sharing}")),
                 ("loss", f"{o.gen_weight:g} x {'cloze' if o.objective == 'electric' else 'MLM'} + {o.disc_loss_weight:g} x "
                          + {"electra": "RTD", "electric": "NCE"}.get(o.objective, "the discriminator's LM loss")
                          + (" on the masked positions only" if o.rtd_tokens == "masked" else ""))]
    trained = [f"{facts.step:,} step{'s' * (facts.step != 1)}"]
    if facts.tokens_seen:
        n = facts.tokens_seen
        trained.append(f"{n / 1e6:,.1f} M tokens" if n >= 100_000 else f"{n:,} tokens")
    if facts.seconds:
        trained.append(f"{facts.seconds / 3600:.2f} h")
    rows += [("batch", f"{t.global_batch_size} sequences x {t.seq_len} tokens"),
             ("schedule", (f"{t.optimizer} optimizer, peak lr {t.lr:g}, {t.warmup_steps:,} warmup "
                           f"step{'s' * (t.warmup_steps != 1)}, "
                           + {"linear": "", "cosine": "cosine ",
                              "wsd": f"flat, then over the last {t.decay_fraction:.0%} "}[t.lr_schedule]
                           + f"decay to 0 at step {t.max_steps:,}"
                           + (f", fitted to a time budget of {t.time_budget / 3600:.3g} h" if t.time_budget else ""))),
             *([("started from", (f"`{facts.init}` (continued pre-training: the steps, tokens and FLOPs here are "
                                  f"this run's only, not those of the model it started from)"))] if facts.init else []),
             ("trained", ", ".join(trained)),
             ("compute", (f"{train_flops(cfg, steps=facts.step):.2e} FLOPs, counted by the paper's method "
                          "(ELECTRA-Small's full 1M-step schedule: 1.29e18 by this count, 1.4e18 in the paper)"))]
    if facts.mixture:
        rows.append(("data", "a mix of " + ", ".join(f"`{name}` ({share:.0%})" for name, share in facts.mixture)
                     + " of the training rows (prepared with `electra prepare`)"))
    elif facts.dataset:
        rows.append(("data", f"`{facts.dataset}` (prepared with `electra prepare`)"))
    body = [_architecture(arch, model, tensors), "## Pre-training", "", *_table(rows)]
    if facts.eval:
        e = facts.eval
        body += ["", (f"Held-out metrics at step {int(e['step']):,} (the run's last evaluation at or before this "
                      "checkpoint):"),
                 "", *_table([(label, f"{e[key]:.4f}") for key, label in card_metrics(cfg) if key in e])]
    tag = TAGS.get(o.objective, "electra")
    if o.objective == "mlm":  # the baseline's one model is the full-size masked LM, not a helper
        return _card(arch, body, "the masked-language model of an MLM (BERT-style) pre-training run",
                     "It was pre-trained", tag)
    how = f"It was pre-trained as {ELECTRIC} describes" if o.objective == "electric" else f"It was pre-trained with {PAPER}"
    return _card(arch, body, what or ROLE.get(arch, (None, "an ELECTRA model"))[1], how, tag)


def card_metrics(cfg: PretrainConfig) -> list[tuple[str, str]]:
    """The held-out metrics that mean something for the run's objective, named for it: no generator accuracy
    without a generator, no detector metrics without a binary head, and each objective's own second loss."""
    o = cfg.objective
    gen = [("eval/gen_acc", "generator accuracy (masked slots)"), ("eval/mlm_loss", "generator MLM loss")]
    if o.objective == "mlm":
        return [("eval/gen_acc", "masked-LM accuracy"), ("eval/mlm_loss", "masked-LM loss")]
    rows = gen if o.trained_generator else []
    rows = rows + [("eval/replaced_rate", "replaced-token rate")]
    detector = {"electra": "discriminator", "all_tokens_mlm": "copy gate", "electric": "noise detector"}
    if o.objective in detector:
        who = detector[o.objective]
        rows += [("eval/disc_auc", f"{who} AUC"), ("eval/disc_precision", f"{who} precision"),
                 ("eval/disc_recall", f"{who} recall")]
    if o.objective in ("replace_mlm", "all_tokens_mlm"):
        rows += [("eval/disc_lm_acc", "discriminator LM accuracy")]
    second = {"electra": "RTD loss", "electric": "NCE loss", "replace_mlm": "discriminator LM loss",
              "all_tokens_mlm": "discriminator LM + copy loss"}[o.objective]
    return rows + [("eval/rtd_loss", second)]


def finetuned_card(arch: str, model: ModelConfig, meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                   results: dict[str, Any]) -> str:
    """The card of an exported fine-tuned model; `results` is the task's results.json ({} when absent)."""
    labels = meta.get("labels") or []
    rows = [("task", str(meta.get("task", "?"))), ("head", str(meta.get("head", meta.get("head_kind", "?"))))]
    if labels:
        rows.append(("labels", ", ".join(map(str, labels[:30])) + (" ..." if len(labels) > 30 else "")))
    body = [_architecture(arch, model, tensors), "## Fine-tuning", "", *_table(rows)]
    kind = rows[1][1]
    if arch in ("ElectraModel", "ModernBertModel"):  # the head stayed behind: say so next to the scores it earned
        what = "" if model.modern else " (dropout and a linear layer on the final [CLS] vector)"
        body += ["", (f"This folder holds the encoder only: the {kind} head{what} has no `transformers` equivalent. "
                      f"The scores below are those of the encoder with that head; `electra predict` runs the whole "
                      f"model from `electra finetune`'s output folder.")]
    if kind == "regression" and meta.get("target_range"):
        lo, hi = meta["target_range"]
        body += ["", f"Regression targets were scaled from [{lo:g}, {hi:g}] to [0, 1] for training"
                 + ("; the exported last layer scales them back, so the model's output is the score itself."
                    if arch == "ElectraForSequenceClassification" else ".")]
    if arch == "ElectraForTokenClassification":
        body += ["", ("Each token is read as segment 1, as in fine-tuning; segment 0's embedding is a copy of segment "
                      "1's, so the default `token_type_ids` give the same tags."
                      + (" The labels are BIOES tags (S- single-word, E- last word of a chunk): the token-classification "
                         "pipeline's `aggregation_strategy` reads only B-/I- prefixes and would join neighbouring S- "
                         "chunks, so group the tags by the BIOES rules yourself."
                         if meta.get("tag_encoding", "bioes") == "bioes" and any(x.startswith(("S-", "E-")) for x in labels)
                         else "")
                      + " Each word's tag is its first word piece's.")]
    summary = results.get("summary") or {}
    if summary:
        n = next(iter(summary.values())).get("n", "?")
        best = next((r for r in results.get("runs") or [] if r.get("seed") == results.get("best_seed")), None)
        main = results.get("main_metric")
        own = (f" ({main} {best['metrics'][main]:.2f})" if best and main in (best.get("metrics") or {}) else "")
        body += ["", (f"Scores over {n} seed(s), as median (mean ± std); the exported weights are seed "
                      f"{results.get('best_seed', '?')}'s{own}, the best on the dev set:"), "",
                 *_table([(m, f"{s['median']:.2f} ({s['mean']:.2f} ± {s['std']:.2f})") for m, s in summary.items()])]
    return _card(arch, body, ROLE.get(arch, (None, "a fine-tuned ELECTRA model"))[1],
                 "It was fine-tuned from an ELECTRA encoder")


def _architecture(arch: str, m: ModelConfig, tensors: dict[str, torch.Tensor]) -> str:
    n = sum(v.numel() for v in tensors.values())
    modern = " (pre-LN, rotary positions, GeGLU MLP, no biases)" if m.modern else ""
    return (f"`{arch}`{modern}: {m.num_layers} layers x {m.hidden_size} hidden, {m.num_heads} head{'s' * (m.num_heads != 1)}, MLP "
            f"{m.intermediate_size}, embeddings {m.embedding_size}, vocabulary {m.vocab_size:,}, up to "
            f"{m.max_position_embeddings} positions; {n / 1e6:.2f} M parameters in this folder.\n")


def _card(arch: str, body: list[str], role: str, how: str, tag: str | None = None) -> str:
    pipeline = ROLE.get(arch, (None, ""))[0]
    head = ["---", "library_name: transformers", *([f"pipeline_tag: {pipeline}"] if pipeline else []),
            "tags:", "- electra", *([f"- {tag}"] if tag else []), "---", "",
            f"# ELECTRA: {role.split(':')[0]}", "",
            (f"This folder is {role}. {how} by `{PROJECT}`, and it loads in `transformers` with no missing or "
             f"unexpected weights."), ""]
    use = ["", "## Use", "", "```python", f"from transformers import AutoTokenizer, {arch}",
           'tok = AutoTokenizer.from_pretrained("PATH")  # this folder, or its Hub id once uploaded',
           f'model = {arch}.from_pretrained("PATH")', "```", ""]
    return "\n".join(head + body + use)


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]


def write_card(folder: Path, text: str) -> None:
    (folder / "README.md").write_text(text, encoding="utf-8")
