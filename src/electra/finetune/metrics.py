"""Evaluation metrics, written out so that they can be checked by hand (tests compare them with
scikit-learn / scipy and with hand-computed values).

- GLUE: accuracy, binary F1 (positive class 1), macro F1 (your own classification data), Matthews correlation, Pearson, Spearman, and the GLUE
  score as the paper computes it: the unweighted mean over the 8 tasks of CoLA MCC, STS-B Spearman and
  accuracy elsewhere (MNLI matched), WNLI excluded (spec 3.4).
- Tagging: span precision / recall / F1 as conlleval.pl counts them (IOB1, IOB2, IOE and IOBES tags).
- SQuAD: exact match and F1 after the official evaluation script's normalisation (v1.1 and v2.0).
"""
from __future__ import annotations

import collections
import math
import re
import statistics
import string
from collections.abc import Sequence

# ---------------------------------------------------------------------------------------------------
# classification / regression


def accuracy(gold: Sequence[int], pred: Sequence[int]) -> float:
    return sum(g == p for g, p in zip(gold, pred)) / max(1, len(gold))


def f1_binary(gold: Sequence[int], pred: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class (GLUE's MRPC / QQP F1); 0 when there is no true positive."""
    tp = sum(g == positive and p == positive for g, p in zip(gold, pred))
    fp = sum(g != positive and p == positive for g, p in zip(gold, pred))
    fn = sum(g == positive and p != positive for g, p in zip(gold, pred))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def matthews_corr(gold: Sequence[int], pred: Sequence[int]) -> float:
    """Binary MCC = (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)); 0 when a marginal is empty
    (scikit-learn's convention)."""
    tp = sum(g == 1 and p == 1 for g, p in zip(gold, pred))
    tn = sum(g == 0 and p == 0 for g, p in zip(gold, pred))
    fp = sum(g == 0 and p == 1 for g, p in zip(gold, pred))
    fn = sum(g == 1 and p == 0 for g, p in zip(gold, pred))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else (tp * tn - fp * fn) / denom


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0 when either side is constant (undefined)."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return 0.0 if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def _ranks(x: Sequence[float]) -> list[float]:
    """1-based ranks, ties given their average rank (scipy's rankdata 'average')."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman correlation = Pearson correlation of the (tie-averaged) ranks."""
    return pearson(_ranks(x), _ranks(y))


def f1_macro(gold: Sequence[int], pred: Sequence[int]) -> float:
    """Unweighted mean of the per-class F1 over every class that occurs in gold or pred (scikit-learn's
    f1_score(average='macro')): each class counts the same however rare it is."""
    classes = sorted(set(gold) | set(pred))
    return sum(f1_binary(gold, pred, positive=c) for c in classes) / max(1, len(classes))


# metric name -> function(gold, pred); every value is reported x100 as in the paper's tables
METRICS = {
    "accuracy": accuracy,
    "f1": f1_binary,
    "macro_f1": f1_macro,
    "mcc": matthews_corr,
    "pearson": pearson,
    "spearman": spearman,
}

# task -> the one number of that task that enters the GLUE score (spec 3.4)
GLUE_SCORE_METRIC = {
    "cola": "mcc", "sst2": "accuracy", "mrpc": "accuracy", "stsb": "spearman", "qqp": "accuracy",
    "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy",
}


def glue_score(task_scores: dict[str, dict[str, float]]) -> float | None:
    """The paper's GLUE score: mean over the 8 tasks of GLUE_SCORE_METRIC (MNLI = matched). None unless
    all eight are present; `task_scores[task][metric]`, MNLI's matched accuracy under 'accuracy'."""
    if not set(GLUE_SCORE_METRIC) <= set(task_scores):
        return None
    return sum(task_scores[t][m] for t, m in GLUE_SCORE_METRIC.items()) / len(GLUE_SCORE_METRIC)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median (what the paper reports, spec 3.4), mean and sample std over fine-tuning seeds."""
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


# ---------------------------------------------------------------------------------------------------
# conlleval span F1


CHUNK_PREFIXES = ("B", "I", "E", "S")  # begin, inside, end, single: the prefixes of a chunk tag


def _split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); a bare 'NP' counts as ('I', 'NP') as conlleval's -r."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if sep and prefix in CHUNK_PREFIXES:
        return prefix, kind
    return "I", tag


def _chunk_end(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval.pl endOfChunk: does a chunk end between prev and current token?"""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag == "B" and tag in ("B", "S", "O"):
        return True
    if prev_tag == "I" and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != kind


def _chunk_start(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval.pl startOfChunk: does a chunk start at the current token?"""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("I", "E"):
        return True
    return tag != "O" and prev_type != kind


def spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """(start, end inclusive, type) of every chunk in one sentence, by conlleval's rules: in IOB1 an I-X
    after O or after another type starts a chunk; B-X always starts one."""
    out: set[tuple[int, int, str]] = set()
    prev_tag, prev_type, start = "O", "", -1
    for i, raw in enumerate(list(tags) + ["O"]):  # a final O closes the last chunk (sentence boundary)
        tag, kind = _split_tag(raw)
        if start >= 0 and _chunk_end(prev_tag, tag, prev_type, kind):
            out.add((start, i - 1, prev_type))
            start = -1
        if _chunk_start(prev_tag, tag, prev_type, kind):
            start = i
        prev_tag, prev_type = tag, kind
    return out


def span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """conlleval's overall precision / recall / F1 (percentages) over sentences of tags. A chunk is correct
    when its start, end and type all match."""
    correct = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        correct += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    precision = 100.0 * correct / n_pred if n_pred else 0.0
    recall = 100.0 * correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# ---------------------------------------------------------------------------------------------------
# SQuAD (the official evaluate-v1.1.py / evaluate-v2.0.py normalisation and scores)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace (official script)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def squad_exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str, empty_match: bool = True) -> float:
    """Token-overlap F1; when either side normalises to nothing, 1 if both do (v2.0's rule; v1.1 has no such
    rule: `empty_match=False` scores 0 there, as its script does)."""
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g and empty_match)
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_scores(golds: dict[str, list[str]], predictions: dict[str, str], version2: bool = True) -> dict[str, float]:
    """EM and F1 (percentages), each the max over the gold answers, averaged over questions, as the official
    scripts compute them. Missing predictions count as ''. v2.0 drops gold answers that normalise to nothing,
    and a question left without one (unanswerable) has the single gold answer ''. v1.1 keeps them all: three
    dev questions have the gold answer "." among others, which an empty prediction matches exactly."""
    em = f1 = 0.0
    has_ans = [0.0, 0.0, 0]
    no_ans = [0.0, 0.0, 0]
    for qid, answers in golds.items():
        answers = ([a for a in answers if normalize_answer(a)] if version2 else answers) or [""]
        pred = predictions.get(qid, "")
        e = max(squad_exact(pred, a) for a in answers)
        f = max(squad_f1(pred, a, empty_match=version2) for a in answers)
        em, f1 = em + e, f1 + f
        bucket = has_ans if answers != [""] else no_ans
        bucket[0], bucket[1], bucket[2] = bucket[0] + e, bucket[1] + f, bucket[2] + 1
    n = max(1, len(golds))
    out = {"exact": 100.0 * em / n, "f1": 100.0 * f1 / n}
    if no_ans[2]:  # SQuAD 2.0: the official script's HasAns / NoAns breakdown
        out.update(has_ans_exact=100.0 * has_ans[0] / max(1, has_ans[2]), has_ans_f1=100.0 * has_ans[1] / max(1, has_ans[2]),
                   no_ans_exact=100.0 * no_ans[0] / no_ans[2])
    return out
