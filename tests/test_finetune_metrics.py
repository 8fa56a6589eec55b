"""Fine-tuning metrics against hand-computed values and scikit-learn / scipy."""
from __future__ import annotations

import json
import math
import random

import pytest
from test_finetune_fixtures import SHARED

from electra.finetune import metrics as M


def _rand_binary(n: int, seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    gold = [rng.randint(0, 1) for _ in range(n)]
    pred = [g if rng.random() < 0.7 else 1 - g for g in gold]
    return gold, pred


def test_classification_metrics_by_hand() -> None:
    gold = [1, 1, 0, 0, 1, 0]
    pred = [1, 0, 0, 1, 1, 0]  # tp 2, tn 2, fp 1, fn 1
    assert M.accuracy(gold, pred) == pytest.approx(4 / 6)
    assert M.f1_binary(gold, pred) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert M.matthews_corr(gold, pred) == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert M.matthews_corr([1, 1, 0], [1, 1, 1]) == 0.0  # an empty marginal: sklearn's 0
    assert M.f1_binary([0, 0], [0, 0]) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(seed: int) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    gold, pred = _rand_binary(200, seed)
    assert M.accuracy(gold, pred) == pytest.approx(sk.accuracy_score(gold, pred))
    assert M.f1_binary(gold, pred) == pytest.approx(sk.f1_score(gold, pred))
    assert M.matthews_corr(gold, pred) == pytest.approx(sk.matthews_corrcoef(gold, pred))


def test_correlations_by_hand_and_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    assert M.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert M._ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]  # ties share the average rank
    assert M.spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    rng = random.Random(0)
    x = [rng.choice([0.0, 0.5, 1.0, 2.5, 3.0, 4.2, 5.0]) for _ in range(300)]  # many ties, like STS-B
    y = [v + rng.gauss(0, 1.5) for v in x]
    assert M.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)
    assert M.pearson([1, 1, 1], [1, 2, 3]) == 0.0


def test_glue_score_and_summary() -> None:
    scores = {t: {"accuracy": 80.0, "mcc": 50.0, "spearman": 85.0} for t in M.GLUE_SCORE_METRIC}
    scores["mnli"]["mismatched_accuracy"] = 10.0  # not used: the paper's score takes MNLI matched
    assert M.glue_score(scores) == pytest.approx((50 + 85 + 6 * 80) / 8)
    del scores["rte"]
    assert M.glue_score(scores) is None
    s = M.summarize([1.0, 10.0, 2.0])
    assert s["median"] == 2.0 and s["mean"] == pytest.approx(13 / 3) and s["n"] == 3
    assert s["std"] == pytest.approx(math.sqrt(((1 - 13 / 3) ** 2 + (10 - 13 / 3) ** 2 + (2 - 13 / 3) ** 2) / 2))


def test_spans_iob1_and_iob2() -> None:
    # IOB1 (CoNLL-2003's original tags): I- starts a chunk after O; B- only between two same-type chunks
    assert M.spans(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == {(0, 1, "PER"), (2, 2, "PER"), (4, 4, "LOC")}
    # IOB2: every chunk starts with B-
    assert M.spans(["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC"]) == {(0, 1, "PER"), (2, 2, "PER"), (4, 5, "LOC")}
    # a type change inside a run of I- closes one chunk and opens another
    assert M.spans(["I-ORG", "I-MISC", "I-MISC"]) == {(0, 0, "ORG"), (1, 2, "MISC")}
    # IOBES
    assert M.spans(["S-PER", "B-LOC", "E-LOC", "O"]) == {(0, 0, "PER"), (1, 2, "LOC")}
    # chunking tags (CoNLL-2000): B-NP I-NP B-VP
    assert M.spans(["B-NP", "I-NP", "B-VP", "B-NP", "I-NP", "O"]) == {(0, 1, "NP"), (2, 2, "VP"), (3, 4, "NP")}


def test_span_f1_hand_computed() -> None:
    gold = [["I-PER", "I-PER", "O", "I-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["I-PER", "O", "O", "I-LOC"], ["B-ORG", "I-ORG", "I-MISC"]]
    # gold chunks: PER(0,1) LOC(3,3) | ORG(0,1) = 3; pred: PER(0,0) LOC(3,3) | ORG(0,1) MISC(2,2) = 4; correct 2
    r = M.span_f1(gold, pred)
    p, rc = 100 * 2 / 4, 100 * 2 / 3
    assert r["precision"] == pytest.approx(p) and r["recall"] == pytest.approx(rc)
    assert r["f1"] == pytest.approx(2 * p * rc / (p + rc))
    assert M.span_f1(gold, gold)["f1"] == pytest.approx(100.0)
    # the same chunks written in IOB1 and IOB2 score 100 against each other
    iob1 = [["I-PER", "B-PER", "O", "I-LOC", "I-LOC"]]
    iob2 = [["B-PER", "B-PER", "O", "B-LOC", "I-LOC"]]
    assert M.span_f1(iob1, iob2)["f1"] == pytest.approx(100.0)
    assert M.span_f1([["O", "O"]], [["O", "O"]])["f1"] == 0.0


def test_squad_normalisation_and_f1() -> None:
    assert M.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert M.normalize_answer("an apple a day, the end") == "apple day end"
    assert M.squad_exact("the Denver Broncos", "Denver Broncos.") == 1.0
    # pred tokens [denver, broncos, won], gold [broncos]: p 1/3, r 1 -> 0.5
    assert M.squad_f1("Denver Broncos won", "Broncos") == pytest.approx(0.5)
    assert M.squad_f1("", "Broncos") == 0.0 and M.squad_f1("", "") == 1.0
    assert M.squad_f1("", ".", empty_match=False) == 0.0 and M.squad_exact("", ".") == 1.0  # v1.1's script
    golds = {"q1": ["Broncos", "Denver Broncos"], "q2": ["1990"], "q3": []}
    preds = {"q1": "Denver Broncos won", "q2": "in 1990", "q3": ""}
    s = M.squad_scores(golds, preds)
    # q1: EM 0, F1 max(0.5, 0.8); q2: EM 0, F1 2/3; q3 (no answer, predicted none): 1, 1
    assert s["exact"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(100 * (0.8 + 2 / 3 + 1) / 3)
    assert s["no_ans_exact"] == 100.0
    assert M.squad_scores(golds, preds, version2=False)["exact"] == pytest.approx(100 / 3)  # a 2.0 file as 1.1


def test_squad_scorer_gold_is_100_on_real_dev() -> None:
    path = SHARED / "squad-v1.1" / "dev-v1.1.json"
    if not path.exists():
        pytest.skip("shared SQuAD dev not present")
    data = json.loads(path.read_text())["data"]
    golds = {qa["id"]: [a["text"] for a in qa["answers"]] for art in data for p in art["paragraphs"] for qa in p["qas"]}
    assert len(golds) == 10570
    s = M.squad_scores(golds, {q: a[0] for q, a in golds.items()})
    assert s["exact"] == pytest.approx(100.0) and s["f1"] == pytest.approx(100.0)
    # evaluate-v1.1.py keeps the gold answer "." of three questions, which an empty prediction matches exactly
    s = M.squad_scores(golds, {q: "" for q in golds}, version2=False)
    assert s["exact"] == pytest.approx(100 * 3 / 10570) and s["f1"] == 0.0
    s = M.squad_scores(golds, {q: a[0] for q, a in golds.items()}, version2=False)
    assert s["exact"] == pytest.approx(100.0) and s["f1"] == pytest.approx(100.0)
    s = M.squad_scores(golds, {q: "" for q in golds})  # v2.0's rule drops those answers
    assert s["exact"] == 0.0 and s["f1"] == 0.0
