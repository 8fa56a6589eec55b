"""Token tagging on CoNLL-style files: CoNLL-2003 NER and CoNLL-2000 chunking (electra-spec 3.1/3.2).

File format: one token per line, whitespace-separated columns (token first, the tag in a column chosen
by `--label-column`, default the last), a blank line between sentences, `-DOCSTART-` lines skipped.

Model input (spec 3.2): [CLS] word pieces [SEP], every segment id 1 (as the original's tagging task);
each word is labelled on its first word piece and the other pieces carry no loss. Words cut off by
max_seq_len, or that produce no piece at all, are predicted 'O'. As the original, training targets are
the BIOES tags of the gold chunks (`--tag-encoding asis` trains on the file's tags); predictions are scored
against the file's own tags with conlleval's span F1 (metrics.span_f1), IOB1 (CoNLL-2003's original
tags), IOB2 and BIOES alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from electra.errors import UserError
from electra.finetune.files import find_task_dir, require_file
from electra.finetune.heads import IGNORE
from electra.finetune.metrics import span_f1, spans


@dataclass(frozen=True)
class TaggingTask:
    name: str
    folders: tuple[str, ...]  # candidate sub-folders of --data (--data itself is tried last)
    train: str
    dev: str
    test: str | None  # scored too when present, reported as test_*
    epochs: float = 3.0
    max_seq_len: int = 256  # configure_finetuning.py uses 256 for chunking


TAGGING_TASKS: dict[str, TaggingTask] = {t.name: t for t in [
    TaggingTask("conll2003", ("conll2003", "CoNLL-2003"), "eng.train", "eng.testa", "eng.testb"),
    # ELECTRA's `chunk` task: CoNLL-2000 has no dev set and the paper reports the test set (spec 4.5)
    TaggingTask("chunk", ("chunk", "conll2000", "CoNLL-2000"), "train.txt", "test.txt", None),
]}


class Sentence(NamedTuple):
    words: list[str]
    tags: list[str]


def read_conll(path: Path, label_column: int = -1, limit: int = 0) -> list[Sentence]:
    """Sentences of a CoNLL file; a line without the label column is a one-line UserError."""
    require_file(path)
    out: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                if words:
                    out.append(Sentence(words, tags))
                    words, tags = [], []
                    if limit and len(out) >= limit:
                        return out
                continue
            if len(cols) < 2 or not -len(cols) <= label_column < len(cols) or label_column in (0, -len(cols)):
                raise UserError(f"{path} line {line_no}: {len(cols)} column(s), no tag in column {label_column} "
                                f"(expected 'token ... tag'; set --label-column)")
            words.append(cols[0])
            tags.append(cols[label_column])
    if words:
        out.append(Sentence(words, tags))
    return out


def encode_sentences(sents: list[Sentence], tokenizer: Any, cls_id: int, sep_id: int, max_seq_len: int,
                     tag_ids: dict[str, int]) -> list[dict[str, Any]]:
    """Features: input_ids, segment_ids (all 1), token `labels` (IGNORE except first pieces) and
    `word_pos` (the position of each word's first piece, -1 when it has none in the window)."""
    encs = tokenizer.encode_batch([s.words for s in sents], is_pretokenized=True, add_special_tokens=False)
    feats = []
    for sent, enc in zip(sents, encs):
        ids = enc.ids[: max_seq_len - 2]
        word_ids = enc.word_ids[: max_seq_len - 2]
        labels = [IGNORE] * (len(ids) + 2)
        word_pos = [-1] * len(sent.words)
        prev = None
        for t, w in enumerate(word_ids):
            if w is not None and w != prev:
                word_pos[w] = t + 1  # +1 for [CLS]
                labels[t + 1] = tag_ids.get(sent.tags[w], IGNORE)
            prev = w
        feats.append({"input_ids": [cls_id] + ids + [sep_id], "segment_ids": [1] * (len(ids) + 2),
                      "labels": labels, "word_pos": word_pos})
    return feats


def to_bioes(tags: list[str]) -> list[str]:
    """The same chunks in BIOES (the original trains on BIOES tags of the gold spans, tagging_tasks.py
    LABEL_ENCODING): S- single-word chunk, B-/I-/E- begin/inside/end, O outside."""
    out = ["O"] * len(tags)
    for start, end, kind in spans(tags):
        if start == end:
            out[start] = f"S-{kind}"
        else:
            out[start], out[end] = f"B-{kind}", f"E-{kind}"
            out[start + 1:end] = [f"I-{kind}"] * (end - start - 1)
    return out


def tagging_job(task: TaggingTask, data_dir: Path, cfg: Any, tokenizer: Any, cls_id: int, sep_id: int) -> Any:
    """A train.Job for one tagging task (cfg is the resolved FinetuneConfig)."""
    from electra.finetune.heads import TaggingHead
    from electra.finetune.train import Job

    folder = find_task_dir(data_dir, task.name, task.folders, task.train)
    train = read_conll(folder / task.train, cfg.label_column, cfg.max_train_examples)
    if not train:
        raise UserError(f"{folder / task.train} has no sentences")
    if cfg.tag_encoding == "bioes":
        train = [Sentence(s.words, to_bioes(s.tags)) for s in train]
    labels = sorted({t for s in train for t in s.tags})
    tag_ids = {t: i for i, t in enumerate(labels)}
    evals = {"": read_conll(folder / task.dev, cfg.label_column, cfg.max_eval_examples)}
    if task.test and (folder / task.test).is_file():
        evals["test_"] = read_conll(folder / task.test, cfg.label_column, cfg.max_eval_examples)
    enc = lambda s: encode_sentences(s, tokenizer, cls_id, sep_id, cfg.max_seq_len, tag_ids)
    eval_feats = {k: enc(v) for k, v in evals.items()}

    def evaluate(predict: Any) -> dict[str, float]:
        result = {}
        for prefix, feats in eval_feats.items():
            outputs = predict(feats)
            preds = [[labels[out[p]] if p >= 0 else "O" for p in f["word_pos"]] for f, out in zip(feats, outputs)]
            scores = span_f1([s.tags for s in evals[prefix]], preds)
            result.update({prefix + k: v for k, v in scores.items()})
        return result

    return Job(task=task.name, head_kind="tagging", labels=labels, train=enc(train),
               make_head=lambda hidden: TaggingHead(hidden, len(labels), 0.0),
               evaluate=evaluate, main_metric="f1")
