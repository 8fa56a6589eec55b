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
from electra.finetune.files import find_task_dir, read_utf8
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

    def task_dir(self, data_dir: Path) -> Path:
        """The folder under --data holding this task's files (files.find_task_dir)."""
        return find_task_dir(data_dir, self.name, self.folders, self.train)


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


_TOP = "the top level"  # where an error in the file's outermost value is said to be


def _kind(value: Any) -> str:
    """How a JSON value is named in an error message."""
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def read_squad(path: Path, limit: int = 0) -> list[QAExample]:
    """Questions of a SQuAD json file (v1.1 or v2.0 layout); a malformed file is a one-line UserError that
    names the item (data[0].paragraphs[3].qas[1] ...) and what is wrong with it."""
    try:
        root = json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not a SQuAD json file (bad JSON at line {e.lineno} column {e.colno}: "
                        f"{e.msg})") from None

    def bad(where: str, problem: str) -> UserError:
        return UserError(f"{path} is not a SQuAD json file: {where} {problem} (see the published train/dev files)")

    def item(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
        # bool is an int to Python, never to a SQuAD file
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise bad(where, f"is {_kind(value)}, expected {what}")
        return value

    def key(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str, what: str,
            default: Any = None) -> Any:
        if name not in obj:
            if default is not None:
                return default
            raise bad(where, f"has no {name!r}")
        return item(obj[name], kind, f"{where}.{name}" if where != _TOP else name, what)

    root = item(root, dict, _TOP, "an object with 'data'")
    out = []
    for i, article in enumerate(key(root, "data", list, _TOP, "a list of articles")):
        w_article = f"data[{i}]"
        article = item(article, dict, w_article, "an object with 'paragraphs'")
        for j, para in enumerate(key(article, "paragraphs", list, w_article, "a list of paragraphs")):
            w_para = f"{w_article}.paragraphs[{j}]"
            para = item(para, dict, w_para, "an object with 'context' and 'qas'")
            context = key(para, "context", str, w_para, "the paragraph text")
            for k, qa in enumerate(key(para, "qas", list, w_para, "a list of questions")):
                w_qa = f"{w_para}.qas[{k}]"
                qa = item(qa, dict, w_qa, "an object with 'id', 'question' and 'answers'")
                qid = key(qa, "id", (str, int), w_qa, "a string")
                question = key(qa, "question", str, w_qa, "the question text")
                impossible = key(qa, "is_impossible", bool, w_qa, "true or false", default=False)
                answers = []
                for a, ans in enumerate(key(qa, "answers", list, w_qa, "a list of answers", default=[])):
                    w_ans = f"{w_qa}.answers[{a}]"
                    ans = item(ans, dict, w_ans, "an object with 'text' and 'answer_start'")
                    answers.append((key(ans, "text", str, w_ans, "the answer text"),
                                    key(ans, "answer_start", int, w_ans, "a character offset")))
                out.append(QAExample(str(qid), question, context, [] if impossible else answers,
                                     impossible or not answers))
                if limit and len(out) >= limit:
                    return out
    return out


def answer_fits(context: str, text: str, start: int) -> bool:
    """Is the answer's text found in the context at its answer_start (what the training span is cut from)?"""
    return 0 <= start and bool(text.strip()) and context[start:start + len(text)] == text


class Cleaned(NamedTuple):
    examples: list[QAExample]
    bad_answers: int  # training answers whose text is not at answer_start (dropped)
    no_answer: int  # training questions left without an answer by that (skipped)
    empty_questions: int  # questions with no text (skipped)


def clean_examples(examples: list[QAExample], training: bool) -> Cleaned:
    """Drop questions with no text and, for training, answers whose text is not at their answer_start (a
    negative or shifted offset would train on a wrong span); a question left with no answer is skipped, not
    turned into an unanswerable one. Dev answers are only compared as text, so they are kept as they are."""
    kept, bad, no_answer, empty = [], 0, 0, 0
    for ex in examples:
        if not ex.question.strip():
            empty += 1
            continue
        if training and ex.answers:
            good = [(t, s) for t, s in ex.answers if answer_fits(ex.context, t, s)]
            bad += len(ex.answers) - len(good)
            if not good:
                no_answer += 1
                continue
            ex = ex._replace(answers=good)
        kept.append(ex)
    return Cleaned(kept, bad, no_answer, empty)


def skip_notes(path: Path, cleaned: Cleaned) -> list[str]:
    """One line per kind of item clean_examples skipped in a file."""
    notes = []
    if cleaned.bad_answers:
        also = f", and {cleaned.no_answer} questions left with no answer" if cleaned.no_answer else ""
        notes.append(f"note: {path}: {cleaned.bad_answers} answers whose text is not at answer_start were "
                     f"skipped{also}")
    if cleaned.empty_questions:
        notes.append(f"note: {path}: {cleaned.empty_questions} questions with empty text were skipped")
    return notes


def read_dev(task: SquadTask, folder: Path, max_eval: int = 0) -> Cleaned:
    """The dev questions; a file with none is an error (it would score 0.00 after the whole training)."""
    path = folder / task.dev
    cleaned = clean_examples(read_squad(path, max_eval), training=False)
    if not cleaned.examples:
        raise UserError(f"{path} has no examples; give the task's dev file with its questions")
    return cleaned


def check_squad(task: SquadTask, data_dir: Path, max_train: int = 0, max_eval: int = 0) -> None:
    """The checks that need no model: the task folder, a readable training file and a usable dev file, so that a
    run of several tasks stops before training any when one task's data is missing, empty or bad."""
    folder = task.task_dir(data_dir)
    read_squad(folder / task.train, max_train)
    read_dev(task, folder, max_eval)


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
                            f"{len(q)}-piece question; lower --max-query-len (or raise --max-seq-len, up to the "
                            f"model's max_position_embeddings)")
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


class Answer(NamedTuple):
    text: str  # '' = no answer (SQuAD 2.0), or no valid span at all
    score: float  # the best span's score (start + end logits, or log-probabilities for the electra head)
    start: int  # character offsets of the span in the context (-1 without an answer)
    end: int


def answer_spans(examples: list[QAExample], offsets: list[list[tuple[int, int]]], feats: list[dict[str, Any]],
                 outputs: list[dict[str, Any]], cfg: Any, version2: bool) -> list[Answer]:
    """The predicted answer of each example from the head outputs of every window; `offsets[i]` are the
    character offsets of example i's context pieces."""
    head = "electra" if outputs and "end_beam" in outputs[0] else "simple"  # one head made all the outputs
    best: dict[int, tuple[float, int, int]] = {}
    null: dict[int, float] = {}  # SQuAD 2.0: the lowest "no answer" score over each question's windows
    for f, out in zip(feats, outputs):
        ei = f["example"]
        if version2:
            null[ei] = min(null.get(ei, np.inf), _null_score(out))
        for sc, s, e in _candidates(f, out, cfg.n_best):
            if _is_valid(f, s, e, cfg.max_answer_len) and (ei not in best or sc > best[ei][0]):
                best[ei] = (sc, offsets[ei][f["ctx_index"][s]][0], offsets[ei][f["ctx_index"][e]][1])
    threshold = null_threshold(cfg.null_threshold, head)  # NaN (an unresolved config): the head's default
    answers = []
    for ei, ex in enumerate(examples):
        score, a, b = best.get(ei, (-np.inf, -1, -1))
        text = ex.context[a:b] if a >= 0 else ""
        # qa_metrics.py: score_diff = null score - best span score (simple head; both logit sums), or the
        # impossible logit itself (electra head); "no answer" when score_diff > threshold
        if version2 and (null.get(ei, -np.inf) - (0.0 if head == "electra" else score) > threshold or not text):
            text = ""
        answers.append(Answer(text, score, a, b) if text else Answer("", score, -1, -1))
    return answers


def extract_answers(examples: list[QAExample], offsets: list[list[tuple[int, int]]], feats: list[dict[str, Any]],
                    outputs: list[dict[str, Any]], cfg: Any, version2: bool) -> dict[str, str]:
    """qid -> predicted answer text ('' = no answer, SQuAD 2.0)."""
    answers = answer_spans(examples, offsets, feats, outputs, cfg, version2)
    return {ex.qid: ans.text for ex, ans in zip(examples, answers)}


def squad_job(task: SquadTask, data_dir: Path, cfg: Any, tokenizer: Any, cls_id: int, sep_id: int) -> Any:
    """A train.Job for SQuAD 1.1 / 2.0 (cfg is the resolved FinetuneConfig)."""
    from electra.finetune.heads import build_head
    from electra.finetune.train import Job

    folder = task.task_dir(data_dir)
    cleaned = clean_examples(read_squad(folder / task.train, cfg.max_train_examples), training=True)
    dev_cleaned = read_dev(task, folder, cfg.max_eval_examples)
    for path, c in ((folder / task.train, cleaned), (folder / task.dev, dev_cleaned)):
        for note in skip_notes(path, c):
            print(note, flush=True)
        if not task.version2 and (n := sum(ex.is_impossible for ex in c.examples)):
            print(f"warning: [{task.name}] {path} has {n} unanswerable question(s), a SQuAD 2.0 file: "
                  f"--task squad2 trains and scores them as such", flush=True)
    train, dev = cleaned.examples, dev_cleaned.examples
    train_feats = build_features(train, tokenizer, cls_id, sep_id, cfg, training=True)
    if not train_feats:
        raise UserError(f"{folder / task.train} gave no training features (no usable question); "
                        f"give the task's training file")
    dev_contexts = encode_contexts(dev, tokenizer)  # the features and the answer offsets share it
    dev_feats = build_features(dev, tokenizer, cls_id, sep_id, cfg, training=False, contexts=dev_contexts)
    offsets = [c.offsets for c in dev_contexts]
    golds = {ex.qid: [a for a, _ in ex.answers] for ex in dev}

    def evaluate(predict: Any) -> dict[str, float]:
        preds = extract_answers(dev, offsets, dev_feats, predict(dev_feats), cfg, task.version2)
        return squad_scores(golds, preds, task.version2)

    kind = f"qa_{cfg.qa_head}"
    make_head = lambda hidden: build_head(kind, hidden, beam=cfg.n_best, answerable=task.version2)
    return Job(task=task.name, head_kind=kind, labels=None, train=train_feats,
               make_head=make_head, evaluate=evaluate, main_metric="f1")
