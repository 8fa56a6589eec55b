"""SQuAD 1.1 / 2.0: reading, windowed features, n-best span extraction and official EM/F1 (spec 3.2/3.3).

Features (spec 3.2): [CLS] question (<= max_query_len pieces) [SEP] context window [SEP]; windows of
max_seq_len - len(question) - 3 pieces, each starting doc_stride pieces after the previous one. The
answer may only be in segment B (context + final [SEP]) or [CLS] (the others get -1000 added to their
logits: the original's answer_mask); predictions are taken from context pieces only. A training
window that does not contain the whole answer (or any window of an unanswerable question) is labelled
start = end = 0 ([CLS]), as the original and Hugging Face do.

Character <-> piece alignment uses the tokenizer's offsets into the raw context, so a predicted span is
cut straight out of the original context string (no whitespace re-tokenisation as in BERT's script).

Inference: for each question, over all its windows, the top n_best starts x top n_best ends with
end >= start, length <= max_answer_len, both in the context and the start in its "max context" window
(BERT's rule for pieces that appear in two windows). `simple` head: score = start + end logit, SQuAD 2.0
null score = start[CLS] + end[CLS] (lowest over windows); `electra` head: score = start + end
log-probabilities with the end computed from each of the top starts. SQuAD 2.0 only (qa_metrics.py):
"no answer" when null score - best span score > null_threshold (simple; default 0), or when the lowest
"impossible" logit over the windows > null_threshold (electra; default -2.75, the original's).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from electra.errors import UserError
from electra.finetune.config import null_threshold
from electra.finetune.files import find_task_dir, require_file
from electra.finetune.metrics import squad_scores


@dataclass(frozen=True)
class SquadTask:
    name: str
    folders: tuple[str, ...]  # candidate sub-folders of --data (--data itself is tried last)
    train: str
    dev: str
    version2: bool
    epochs: float = 2.0  # spec 3.3
    max_seq_len: int = 512  # configure_finetuning.py (spec 3.3)


SQUAD_TASKS: dict[str, SquadTask] = {t.name: t for t in [
    SquadTask("squad1", ("squad-v1.1", "squad1", "squad"), "train-v1.1.json", "dev-v1.1.json", version2=False),
    SquadTask("squad2", ("squad-v2.0", "squad2", "squad"), "train-v2.0.json", "dev-v2.0.json", version2=True),
]}


class QAExample(NamedTuple):
    qid: str
    question: str
    context: str
    answers: list[tuple[str, int]]  # (text, character start); empty when unanswerable
    is_impossible: bool


def read_squad(path: Path, limit: int = 0) -> list[QAExample]:
    """Questions of a SQuAD json file (v1.1 or v2.0 layout); a malformed file is a one-line UserError."""
    try:
        data = json.loads(require_file(path).read_text(encoding="utf-8"))["data"]
        out = []
        for article in data:
            for para in article["paragraphs"]:
                context = para["context"]
                for qa in para["qas"]:
                    answers = [(a["text"], int(a["answer_start"])) for a in qa.get("answers", [])]
                    impossible = bool(qa.get("is_impossible", False)) or not answers
                    out.append(QAExample(str(qa["id"]), qa["question"], context, [] if qa.get("is_impossible") else answers,
                                         impossible))
                    if limit and len(out) >= limit:
                        return out
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path} is not a SQuAD json file ({type(e).__name__}: {e})") from None
    return out


def char_span_to_tokens(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """First and last piece overlapping the characters [start, end), or None if no piece does."""
    first = next((t for t, (a, b) in enumerate(offsets) if b > start), None)
    last = next((t for t in range(len(offsets) - 1, -1, -1) if offsets[t][0] < end), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def windows(n_tokens: int, max_doc: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of the context windows (BERT's / ELECTRA's doc_spans)."""
    spans, start = [], 0
    while True:
        length = min(n_tokens - start, max_doc)
        spans.append((start, length))
        if start + length >= n_tokens:
            return spans
        start += min(length, stride)


def max_context_window(spans: list[tuple[int, int]], t: int) -> int:
    """BERT's _check_is_max_context: of the windows holding piece t, the one where it has the most context
    on its shorter side (+ 0.01 x window length to break ties)."""
    def score(j: int) -> float:
        s0, sl = spans[j]
        return min(t - s0, s0 + sl - 1 - t) + 0.01 * sl
    return max((j for j, (s0, sl) in enumerate(spans) if s0 <= t < s0 + sl), key=score)


def encode_contexts(examples: list[QAExample], tokenizer: Any) -> list[Any]:
    """The tokenizer's encoding of each example's context. SQuAD asks several questions about each paragraph:
    each distinct context is tokenized once and its encoding shared by all of its questions."""
    unique = list(dict.fromkeys(ex.context for ex in examples))
    encoded = dict(zip(unique, tokenizer.encode_batch(unique, add_special_tokens=False)))
    return [encoded[ex.context] for ex in examples]


def build_features(examples: list[QAExample], tokenizer: Any, cls_id: int, sep_id: int, cfg: Any,
                   training: bool, contexts: list[Any] | None = None) -> list[dict[str, Any]]:
    """One feature per (question, window). Besides the model inputs each carries `example` (index into
    examples), `ctx_index` (context piece of each position, -1 elsewhere) and `max_context` flags.
    `contexts`: encode_contexts(examples) when the caller needs the context offsets too (tokenize once)."""
    q_enc = tokenizer.encode_batch([ex.question for ex in examples], add_special_tokens=False)
    c_enc = contexts if contexts is not None else encode_contexts(examples, tokenizer)
    feats = []
    for ei, (ex, qe, ce) in enumerate(zip(examples, q_enc, c_enc)):
        q = qe.ids[: cfg.max_query_len]
        ctx_ids = ce.ids  # the binding builds a new list on every access: read it once
        max_doc = cfg.max_seq_len - len(q) - 3
        if max_doc < 1:
            raise UserError(f"max_seq_len {cfg.max_seq_len} leaves no room for the context after a "
                            f"{len(q)}-piece question; raise --max-seq-len or lower --max-query-len")
        gold = None
        if training and not ex.is_impossible:
            text, s = ex.answers[0]
            gold = char_span_to_tokens(ce.offsets, s, s + len(text))
            if gold is None:
                continue  # answer not found in the context (bad offset): skipped, as BERT's script
        spans = windows(len(ctx_ids), max_doc, cfg.doc_stride)
        for wi, (w0, wl) in enumerate(spans):
            prefix = [cls_id] + q + [sep_id]
            ids = prefix + ctx_ids[w0:w0 + wl] + [sep_id]
            seg = [0] * len(prefix) + [1] * (wl + 1)
            ctx_index = [-1] * len(prefix) + list(range(w0, w0 + wl)) + [-1]
            allowed = [1] + [0] * (len(prefix) - 1) + [1] * (wl + 1)  # the original's answer_mask: [CLS] + segment B
            max_context = [False] * len(ids)
            for k in range(wl):
                max_context[len(prefix) + k] = max_context_window(spans, w0 + k) == wi
            f = {"input_ids": ids, "segment_ids": seg, "allowed": allowed, "example": ei,
                 "ctx_index": ctx_index, "max_context": max_context, "start": 0, "end": 0,
                 "is_impossible": int(ex.is_impossible)}  # per question, as the original (not per window)
            if gold is not None and w0 <= gold[0] and gold[1] < w0 + wl:
                f.update(start=gold[0] - w0 + len(prefix), end=gold[1] - w0 + len(prefix))
            feats.append(f)
    return feats


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _candidates(f: dict[str, Any], out: dict[str, Any], n_best: int) -> list[tuple[float, int, int]]:
    """(score, start, end) of the spans worth checking in one window, before the validity rules."""
    if "end_beam" in out:  # electra head: ends conditioned on each of the top starts
        start_lp = _log_softmax(out["start"])
        cands = []
        for k, s in enumerate(out["top_start"][:n_best]):
            end_lp = _log_softmax(out["end_beam"][k])
            cands += [(float(start_lp[s] + end_lp[e]), int(s), int(e)) for e in np.argsort(-end_lp)[:n_best]]
        return cands
    st, en = out["start"], out["end"]
    ok = [i for i, c in enumerate(f["ctx_index"]) if c >= 0]
    top_s = sorted(ok, key=lambda i: -st[i])[:n_best]
    top_e = sorted(ok, key=lambda i: -en[i])[:n_best]
    return [(float(st[s] + en[e]), s, e) for s in top_s for e in top_e]


def _is_valid(f: dict[str, Any], s: int, e: int, max_answer_len: int) -> bool:
    """Both ends on context pieces, in order, short enough, and the start in its max-context window."""
    ctx = f["ctx_index"]
    return (s < len(ctx) and e < len(ctx) and ctx[s] >= 0 and ctx[e] >= 0 and s <= e
            and e - s + 1 <= max_answer_len and f["max_context"][s])


def _null_score(out: dict[str, Any]) -> float:
    """A window's "no answer" score: the impossible logit (electra head) or the [CLS] span's (simple head)."""
    return float(out["impossible"]) if "end_beam" in out else float(out["start"][0] + out["end"][0])


def extract_answers(examples: list[QAExample], offsets: list[list[tuple[int, int]]], feats: list[dict[str, Any]],
                    outputs: list[dict[str, Any]], cfg: Any, version2: bool) -> dict[str, str]:
    """qid -> predicted answer text ('' = no answer, SQuAD 2.0) from the head outputs of every window;
    `offsets[i]` are the character offsets of example i's context pieces."""
    head = "electra" if outputs and "end_beam" in outputs[0] else "simple"  # one head made all the outputs
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}  # SQuAD 2.0: the lowest "no answer" score over each question's windows
    for f, out in zip(feats, outputs):
        ei, ex = f["example"], examples[f["example"]]
        if version2:
            null[ei] = min(null.get(ei, np.inf), _null_score(out))
        for sc, s, e in _candidates(f, out, cfg.n_best):
            if _is_valid(f, s, e, cfg.max_answer_len) and (ei not in best or sc > best[ei][0]):
                a, b = offsets[ei][f["ctx_index"][s]][0], offsets[ei][f["ctx_index"][e]][1]
                best[ei] = (sc, ex.context[a:b])
    threshold = null_threshold(cfg.null_threshold, head)  # NaN (an unresolved config): the head's default
    preds = {}
    for ei, ex in enumerate(examples):
        score, text = best.get(ei, (-np.inf, ""))
        # qa_metrics.py: score_diff = null score - best span score (simple head; both logit sums), or the
        # impossible logit itself (electra head); "no answer" when score_diff > threshold
        if version2 and (null.get(ei, -np.inf) - (0.0 if head == "electra" else score) > threshold or not text):
            text = ""
        preds[ex.qid] = text
    return preds


def squad_job(task: SquadTask, data_dir: Path, cfg: Any, tokenizer: Any, cls_id: int, sep_id: int) -> Any:
    """A train.Job for SQuAD 1.1 / 2.0 (cfg is the resolved FinetuneConfig)."""
    from electra.finetune.heads import ElectraQAHead, SimpleQAHead
    from electra.finetune.train import Job

    folder = find_task_dir(data_dir, task.name, task.folders, task.train)
    train = read_squad(folder / task.train, cfg.max_train_examples)
    dev = read_squad(folder / task.dev, cfg.max_eval_examples)
    train_feats = build_features(train, tokenizer, cls_id, sep_id, cfg, training=True)
    if not train_feats:
        raise UserError(f"{folder / task.train} gave no training features")
    dev_contexts = encode_contexts(dev, tokenizer)  # the features and the answer offsets share it
    dev_feats = build_features(dev, tokenizer, cls_id, sep_id, cfg, training=False, contexts=dev_contexts)
    offsets = [c.offsets for c in dev_contexts]
    golds = {ex.qid: [a for a, _ in ex.answers] for ex in dev}

    def evaluate(predict: Any) -> dict[str, float]:
        preds = extract_answers(dev, offsets, dev_feats, predict(dev_feats), cfg, task.version2)
        return squad_scores(golds, preds)

    def make_head(hidden: int) -> Any:
        if cfg.qa_head == "electra":
            return ElectraQAHead(hidden, beam=cfg.n_best, answerable=task.version2)
        return SimpleQAHead(hidden)

    return Job(task=task.name, head_kind=f"qa_{cfg.qa_head}", labels=None, train=train_feats,
               make_head=make_head, evaluate=evaluate, main_metric="f1")
