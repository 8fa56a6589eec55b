"""SQuAD: reading, windowed features, span extraction (hand-made logits), and tiny end-to-end runs."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from test_finetune_fixtures import SHARED, make_run, write_vocab

from electra.cli import main as electra_main
from electra.data.tokenizer import SpecialIds, load_tokenizer
from electra.errors import UserError
from electra.finetune.config import FinetuneConfig
from electra.finetune.metrics import normalize_answer, squad_scores
from electra.finetune.squad import build_features, extract_answers, read_squad, windows

DEV = SHARED / "squad-v1.1" / "dev-v1.1.json"


def _squad(path: Path, paragraphs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "x", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


CONTEXT = "john was born in paris . mary was born in london . the team won the game in france ."


def _paragraphs(v2: bool = False, repeat: int = 1) -> list[dict]:
    qas = [{"id": "q1", "question": "where was john born ?", "answers": [{"text": "paris", "answer_start": 17}]},
           {"id": "q2", "question": "where was mary born ?", "answers": [{"text": "london", "answer_start": 42}]},
           {"id": "q3", "question": "who won the game ?", "answers": [{"text": "the team", "answer_start": 51}]}]
    if v2:
        qas.append({"id": "q4", "question": "where was peter born ?", "answers": [], "is_impossible": True})
    return [{"context": CONTEXT, "qas": [dict(q, id=f"{q['id']}_{r}") for q in qas]} for r in range(repeat)]


def _tok(tmp_path: Path):
    vocab = write_vocab(tmp_path / "vocab.txt")
    return load_tokenizer(vocab), SpecialIds.from_vocab(vocab)


def test_read_squad_v2_and_errors(tmp_path: Path) -> None:
    exs = read_squad(_squad(tmp_path / "d.json", _paragraphs(v2=True)))
    assert [e.qid for e in exs] == ["q1_0", "q2_0", "q3_0", "q4_0"]
    assert exs[0].answers == [("paris", 17)] and CONTEXT[17:22] == "paris"
    assert exs[3].is_impossible and exs[3].answers == []
    (tmp_path / "bad.json").write_text('{"data": [{"paragraphs": [{"qas": []}]}]}')
    with pytest.raises(UserError, match="bad.json is not a SQuAD json file"):
        read_squad(tmp_path / "bad.json")


def test_windows_cover_the_context_with_the_stride() -> None:
    assert windows(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert windows(3, 4, 2) == [(0, 3)]
    spans = windows(1000, 384 - 64 - 3, 128)
    assert spans[0] == (0, 317) and all(b[0] - a[0] == 128 for a, b in itertools.pairwise(spans))
    assert spans[-1][0] + spans[-1][1] == 1000


def test_features_targets_and_windows(tmp_path: Path) -> None:
    tok, sp = _tok(tmp_path)
    exs = read_squad(_squad(tmp_path / "d.json", _paragraphs(v2=True)))
    cfg = FinetuneConfig(max_seq_len=16, doc_stride=4, max_query_len=64)
    feats = build_features(exs, tok, sp.cls, sp.sep, cfg, training=True)
    q1 = [f for f in feats if f["example"] == 0]
    assert len(q1) > 2  # the 16-piece limit forces several windows
    paris = tok.token_to_id("paris")
    hits = [f for f in q1 if f["start"] > 0]
    assert hits and all(f["input_ids"][f["start"]] == paris and f["start"] == f["end"] for f in hits)
    assert all(f["start"] == 0 and f["end"] == 0 for f in q1 if f not in hits)
    assert all(f["is_impossible"] == 0 for f in q1)  # per question, not per window (qa_tasks.py)
    f = q1[0]
    assert f["input_ids"][0] == sp.cls and f["input_ids"][-1] == sp.sep and len(f["input_ids"]) <= 16
    n_q = f["segment_ids"].count(0)
    # the original's answer_mask: [CLS] and all of segment B (context and the final [SEP])
    assert f["allowed"] == [1] + [0] * (n_q - 1) + [1] * (len(f["input_ids"]) - n_q)
    # every context piece is the max-context piece of exactly one window
    counts: dict[int, int] = {}
    for g in q1:
        for c, m in zip(g["ctx_index"], g["max_context"]):
            if m:
                counts[c] = counts.get(c, 0) + 1
    assert set(counts.values()) == {1} and len(counts) == max(c for g in q1 for c in g["ctx_index"]) + 1
    assert all(g["start"] == 0 and g["is_impossible"] == 1 for g in feats if g["example"] == 3)  # -> [CLS]


def test_extract_answers_from_hand_made_logits(tmp_path: Path) -> None:
    tok, sp = _tok(tmp_path)
    exs = read_squad(_squad(tmp_path / "d.json", _paragraphs(v2=True)))[:1] + \
        read_squad(_squad(tmp_path / "d.json", _paragraphs(v2=True)))[3:]
    cfg = FinetuneConfig(max_seq_len=64)
    feats = build_features(exs, tok, sp.cls, sp.sep, cfg, training=False)
    offsets = [tok.encode(e.context, add_special_tokens=False).offsets for e in exs]
    outs = []
    for f in feats:
        st, en = np.zeros(len(f["input_ids"])), np.zeros(len(f["input_ids"]))
        pos = f["ctx_index"].index(4)  # context piece 4 = "paris"
        st[pos], en[pos] = 5.0, 5.0
        en[pos + 1] = 4.0  # "paris ." scores lower
        st[0] = en[0] = 1.0 if f["example"] == 0 else 9.0  # [CLS]: the null span
        outs.append({"start": st, "end": en})
    preds = extract_answers(exs, offsets, feats, outs, cfg, version2=True)
    assert preds == {"q1_0": "paris", "q4_0": ""}
    assert extract_answers(exs, offsets, feats, outs, cfg, version2=False)["q4_0"] == "paris"
    cfg2 = FinetuneConfig(max_seq_len=64, max_answer_len=1)
    outs[0]["end"][outs[0]["end"].argmax()] = -5.0  # the best end now lies after the start
    assert extract_answers(exs, offsets, feats, outs, cfg, version2=False)["q1_0"] == "paris ."
    assert extract_answers(exs, offsets, feats, outs, cfg2, version2=False)["q1_0"] == "."


def test_gold_spans_survive_feature_round_trip_on_real_dev(tmp_path: Path) -> None:
    if not DEV.exists():
        pytest.skip("shared SQuAD dev not present")
    vocab = SHARED / "vocab" / "vocab.txt"
    tok, sp = load_tokenizer(vocab), SpecialIds.from_vocab(vocab)
    exs = read_squad(DEV, limit=400)
    cfg = FinetuneConfig(max_seq_len=384)
    feats = build_features(exs, tok, sp.cls, sp.sep, cfg, training=True)
    offsets = [tok.encode(e.context, add_special_tokens=False).offsets for e in exs]
    got = {}
    for f in feats:
        if f["start"] > 0:
            ex = exs[f["example"]]
            o = offsets[f["example"]]
            got[ex.qid] = ex.context[o[f["ctx_index"][f["start"]]][0]:o[f["ctx_index"][f["end"]]][1]]
    # The first gold answer is the training target. 10 of these 400 dev annotations start or end inside a
    # word ("8" of "20-18", "gold" of "golden"), which no word-piece span can reproduce (BERT's whitespace
    # tokens cannot either); everything else must come back exactly.
    scores = squad_scores({e.qid: [a for a, _ in e.answers] for e in exs}, got)
    assert len(got) == len(exs) and scores["exact"] >= 97.5 and scores["f1"] >= 97.5
    assert sum(normalize_answer(got[e.qid]) == normalize_answer(e.answers[0][0]) for e in exs) >= 390


@pytest.mark.parametrize("task,head", [("squad1", "simple"), ("squad2", "electra"), ("squad2", "simple")])
def test_end_to_end_squad(tmp_path: Path, task: str, head: str) -> None:
    run = make_run(tmp_path)
    v2 = task == "squad2"
    names = ("train-v2.0.json", "dev-v2.0.json") if v2 else ("train-v1.1.json", "dev-v1.1.json")
    _squad(tmp_path / "sq" / names[0], _paragraphs(v2, repeat=16))
    _squad(tmp_path / "sq" / names[1], _paragraphs(v2))
    out = tmp_path / "out"
    lr = "1e-3" if (task, head) == ("squad2", "simple") else "3e-3"  # 3e-3 overshoots the [CLS] span here
    assert electra_main(["finetune", "--task", task, "--data", str(tmp_path / "sq"), "--model", str(run),
                         "--out", str(out), "--max-seq-len", "48", "--epochs", "15", "--lr", lr,
                         "--layer-decay", "1", "--qa-head", head, "--threads", "1", "--batch-size", "8"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["head"] == f"qa_{head}" and res["config"]["max_seq_len"] == 48
    assert {"exact", "f1"} <= set(res["summary"])
    if not v2:
        assert res["summary"]["f1"]["median"] >= 60.0  # at least 2 of the 3 answers (chance is ~1/200 per question)
    else:  # the unanswerable question is answered "" and at least 2 of the 3 others are found
        got = {k: v["median"] for k, v in res["summary"].items()}
        assert got["no_ans_exact"] == 100.0 and got["has_ans_f1"] >= 60.0, got
    keys = load_file(str(out / "model" / "model.safetensors"))
    if head == "simple":
        assert keys["head.out.weight"].shape == (2, 32) and keys["head.out.bias"].shape == (2,)
    else:
        assert keys["head.end_dense.weight"].shape == (512, 64)


def test_electra_head_no_answer_uses_the_impossible_logit(tmp_path: Path) -> None:
    tok, sp = _tok(tmp_path)
    exs = read_squad(_squad(tmp_path / "d.json", _paragraphs(v2=True)))
    cfg = FinetuneConfig(max_seq_len=64, n_best=3)
    feats = build_features(exs, tok, sp.cls, sp.sep, cfg, training=False)
    offsets = [tok.encode(e.context, add_special_tokens=False).offsets for e in exs]
    outs = []
    for f in feats:
        T = len(f["input_ids"])
        pos = f["ctx_index"].index(4)  # "paris"
        start = np.full(T, -5.0)
        start[pos] = 5.0
        top = np.argsort(-start)[:3]
        end_beam = np.full((3, T), -5.0)
        end_beam[0, pos] = 5.0
        # q1: clearly answerable; q4: impossible logit above the original's -2.75 threshold
        outs.append({"start": start, "end_beam": end_beam, "top_start": top,
                     "impossible": -6.0 if f["example"] != 3 else -1.0})
    preds = extract_answers(exs, offsets, feats, outs, cfg, version2=True)  # NaN threshold -> -2.75
    assert preds["q1_0"] == "paris" and preds["q4_0"] == ""
    cfg = FinetuneConfig(max_seq_len=64, n_best=3, null_threshold=0.0)
    assert extract_answers(exs, offsets, feats, outs, cfg, version2=True)["q4_0"] == "paris"
    # SQuAD 1.1: the head has no answerability branch, and its outputs no "impossible" logit
    v1_outs = [{k: v for k, v in o.items() if k != "impossible"} for o in outs]
    assert extract_answers(exs, offsets, feats, v1_outs, cfg, version2=False) == {
        "q1_0": "paris", "q2_0": "paris", "q3_0": "paris", "q4_0": "paris"}


def test_electra_head_scores_answerability_only_for_squad2() -> None:
    import torch

    from electra.finetune.heads import ElectraQAHead

    torch.manual_seed(0)
    h = torch.randn(2, 6, 8)
    batch = {"allowed": torch.ones(2, 6, dtype=torch.long), "start": torch.tensor([1, 2]),
             "end": torch.tensor([3, 2]), "is_impossible": torch.tensor([0, 1])}
    v1 = ElectraQAHead(8, beam=3)
    v2 = ElectraQAHead(8, beam=3, answerable=True)
    v2.load_state_dict(v1.state_dict())  # same weights: the span logits must not depend on the extra branch
    for head in (v1, v2):
        head.eval()
    with torch.no_grad():
        o1, o2 = v1(h, batch), v2(h, batch)
    assert "impossible" not in o1 and o2["impossible"].shape == (2,)
    assert all(torch.equal(o1[k], o2[k]) for k in ("start", "end", "top_start"))
    assert "impossible" not in v1.predict(o1, batch)[0] and isinstance(v2.predict(o2, batch)[0]["impossible"], float)
    for head in (v1, v2):
        head.train()
    with torch.no_grad():
        l1, l2 = v1.losses(v1(h, batch), batch), v2.losses(v2(h, batch), batch)
    assert l1.shape == l2.shape == (2,) and bool((l2 > l1).all())  # v2 adds 0.5 x the answerability BCE


class CountingTokenizer:
    """A tokenizer that remembers every text it was asked to encode."""

    def __init__(self, tok) -> None:
        self.tok, self.texts = tok, []

    def encode_batch(self, texts, **kwargs):
        self.texts += list(texts)
        return self.tok.encode_batch(texts, **kwargs)


def test_squad_job_tokenizes_each_context_once(tmp_path: Path) -> None:
    from electra.finetune.squad import SQUAD_TASKS, squad_job

    tok, sp = _tok(tmp_path)
    _squad(tmp_path / "squad-v1.1" / "train-v1.1.json", _paragraphs(repeat=4))
    _squad(tmp_path / "squad-v1.1" / "dev-v1.1.json", _paragraphs(repeat=2))
    counting = CountingTokenizer(tok)
    job = squad_job(SQUAD_TASKS["squad1"], tmp_path, FinetuneConfig(max_seq_len=48), counting, sp.cls, sp.sep)
    # 12 training and 6 dev questions over one paragraph text: encoded once for training, once for dev
    assert counting.texts.count(CONTEXT) == 2 and len(job.train) >= 12
    with pytest.raises(UserError, match=r"^squad2: train-v2.0.json not found \(task folder \S+squad-v2.0 is missing; "
                                         r"task folder \S+squad2 is missing; task folder \S+squad is missing; \S+ "
                                         r"has no train-v2.0.json\); pass --data") as e:
        squad_job(SQUAD_TASKS["squad2"], tmp_path, FinetuneConfig(max_seq_len=48), tok, sp.cls, sp.sep)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("data,problem", [
    ([], "the top level is a list, expected an object with 'data'"),
    ({"data": {}}, "data is an object, expected a list of articles"),
    ({"data": ["t"]}, r"data\[0\] is a string, expected an object with 'paragraphs'"),
    ({"data": [{"paragraphs": ["p"]}]}, r"data\[0\].paragraphs\[0\] is a string, expected an object"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, r"data\[0\].paragraphs\[0\] has no 'context'"),
    ({"data": [{"paragraphs": [{"context": 3, "qas": []}]}]}, r"paragraphs\[0\].context is a number"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": ["what?"]}]}]},
     r"paragraphs\[0\].qas\[0\] is a string, expected an object with 'id', 'question' and 'answers'"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q", "answers": ["c"]}]}]}]},
     r"qas\[0\].answers\[0\] is a string, expected an object with 'text' and 'answer_start'"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q",
                                                          "answers": [{"text": "c", "answer_start": "0"}]}]}]}]},
     r"answers\[0\].answer_start is a string, expected a character offset"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": None, "answers": []}]}]}]},
     r"qas\[0\].question is null, expected the question text"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q", "is_impossible": "no"}]}]}]},
     r"qas\[0\].is_impossible is a string, expected true or false"),
])
def test_squad_items_of_the_wrong_shape_are_one_line_errors(tmp_path: Path, data: object, problem: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=rf"d.json is not a SQuAD json file: \S*{problem}") as e:
        read_squad(path)
    assert "\n" not in str(e.value)


def test_squad_file_that_is_not_json_or_utf8(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('{"data": [}')
    with pytest.raises(UserError, match=r"d.json is not a SQuAD json file \(bad JSON at line 1 column 11"):
        read_squad(tmp_path / "d.json")
    (tmp_path / "d.json").write_bytes(b'{"data": ["caf\xe9"]}')
    with pytest.raises(UserError, match=r"d.json line 1 is not UTF-8 text"):
        read_squad(tmp_path / "d.json")


def test_training_answers_not_at_their_start_are_skipped_with_a_note(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from electra.finetune.squad import SQUAD_TASKS, clean_examples, squad_job

    paras = _paragraphs(repeat=2)
    qas = paras[0]["qas"]
    qas[0]["answers"] = [{"text": "paris", "answer_start": -7}]  # negative: would train on a wrong span
    qas[1]["answers"] = [{"text": "london", "answer_start": 43}, {"text": "london", "answer_start": 42}]
    qas[2]["answers"] = [{"text": "the team", "answer_start": len(CONTEXT)}]  # past the end of the context
    paras[1]["qas"][0]["question"] = "  "  # no question text
    exs = read_squad(_squad(tmp_path / "squad" / "train-v1.1.json", paras))
    cleaned = clean_examples(exs, training=True)
    assert (cleaned.bad_answers, cleaned.no_answer, cleaned.empty_questions) == (3, 2, 1)
    assert [e.qid for e in cleaned.examples] == ["q2_0", "q2_1", "q3_1"]
    assert cleaned.examples[0].answers == [("london", 42)]  # the answer that fits is the training target
    assert not any(e.is_impossible for e in cleaned.examples)  # skipped, not made unanswerable
    assert len(clean_examples(exs, training=False).examples) == 5  # dev answers are compared as text only
    _squad(tmp_path / "squad" / "dev-v1.1.json", _paragraphs())
    tok, sp = _tok(tmp_path)
    job = squad_job(SQUAD_TASKS["squad1"], tmp_path, FinetuneConfig(max_seq_len=48), tok, sp.cls, sp.sep)
    assert {f["example"] for f in job.train} == {0, 1, 2}
    train_file = tmp_path / "squad" / "train-v1.1.json"
    notes = capsys.readouterr().out.splitlines()
    assert notes[0] == f"note: {train_file}: 3 answers whose text is not at answer_start were skipped, and 2 " \
                       f"questions left with no answer"
    assert notes[1:] == [f"note: {train_file}: 1 questions with empty text were skipped"]
    paras = _paragraphs()
    for q in paras[0]["qas"]:
        q["answers"][0]["answer_start"] += 1
    _squad(tmp_path / "squad" / "train-v1.1.json", paras)
    with pytest.raises(UserError, match=r"train-v1.1.json gave no training features \(no usable question\)"):
        squad_job(SQUAD_TASKS["squad1"], tmp_path, FinetuneConfig(max_seq_len=48), tok, sp.cls, sp.sep)


def test_squad1_on_a_squad2_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from electra.finetune.squad import SQUAD_TASKS, squad_job

    _squad(tmp_path / "squad" / "train-v1.1.json", _paragraphs(True, repeat=2))
    _squad(tmp_path / "squad" / "dev-v1.1.json", _paragraphs(True))
    tok, sp = _tok(tmp_path)
    squad_job(SQUAD_TASKS["squad1"], tmp_path, FinetuneConfig(max_seq_len=48), tok, sp.cls, sp.sep)
    warned = [x for x in capsys.readouterr().out.splitlines() if "unanswerable" in x]
    assert len(warned) == 2 and all("a SQuAD 2.0 file: --task squad2" in x for x in warned), warned


def test_an_empty_squad_dev_file_is_refused(tmp_path: Path) -> None:
    from electra.finetune.squad import SQUAD_TASKS, check_squad, squad_job

    _squad(tmp_path / "squad" / "train-v1.1.json", _paragraphs())
    (tmp_path / "squad" / "dev-v1.1.json").write_text('{"version": "1.1", "data": []}')
    with pytest.raises(UserError, match=r"dev-v1.1.json has no examples; give the task's dev file"):
        check_squad(SQUAD_TASKS["squad1"], tmp_path)
    with pytest.raises(UserError, match=r"dev-v1.1.json has no examples"):
        squad_job(SQUAD_TASKS["squad1"], tmp_path, FinetuneConfig(max_seq_len=48), None, 0, 0)


def test_no_answer_of_the_official_dev_set_is_rejected() -> None:
    """Every answer of SQuAD 1.1 dev (several per question; training uses the first) is at its answer_start."""
    if not DEV.exists():
        pytest.skip("shared SQuAD dev not present")
    from electra.finetune.squad import clean_examples

    exs = read_squad(DEV)
    cleaned = clean_examples(exs, training=True)
    assert (cleaned.bad_answers, cleaned.no_answer, cleaned.empty_questions) == (0, 0, 0)
    assert cleaned.examples == exs and sum(len(e.answers) for e in exs) > 30000
