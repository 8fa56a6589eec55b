"""Token tagging on CoNLL-style files: CoNLL-2003 NER and CoNLL-2000 chunking (electra-spec 3.1/3.2).

File format: one token per line, whitespace-separated columns (token first, the tag in a column chosen
by `--label-column`, default the last), a blank line between sentences, `-DOCSTART-` lines skipped.
CoNLL-2003 tags read from the last (NER) column must be O or of type PER, LOC, ORG or MISC; dev / test tags
that training never saw are warned about (the head has no output for them).

Model input (spec 3.2): [CLS] word pieces [SEP], every segment id 1 (as the original's tagging task);
each word is labelled on its first word piece and the other pieces carry no loss. Words cut off by
max_seq_len, or that produce no piece at all, are predicted 'O'. As the original, training targets are
the BIOES tags of the gold chunks (`--tag-encoding asis` trains on the file's tags); predictions are scored
against the file's own tags with conlleval's span F1 (metrics.span_f1), IOB1 (CoNLL-2003's original
tags), IOB2 and BIOES alike.

`--task tag` is your own tagged data: train.txt, dev.txt and (optional) test.txt in the same format, any tag
set. Chunk tags (O, B-X, I-X, E-X, S-X) are trained and scored as above; other tags (POS tags, ...) are
trained as they are and scored by word accuracy, a word without a piece getting the commonest training tag.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from electra.data.shards import atomic_write_bytes
from electra.errors import UserError
from electra.finetune.files import find_task_dir, read_utf8
from electra.finetune.heads import IGNORE
from electra.finetune.metrics import CHUNK_PREFIXES, span_f1, spans


@dataclass(frozen=True)
class TaggingTask:
    name: str
    folders: tuple[str, ...]  # candidate sub-folders of --data (--data itself is tried last)
    train: str
    dev: str
    test: str | None  # scored too when present, reported as test_*
    epochs: float = 3.0
    max_seq_len: int = 256  # configure_finetuning.py uses 256 for chunking
    entity_types: tuple[str, ...] = ()  # the chunk types a tag in the last column may name (empty: any)
    # your own tags (--task tag): chunk tags (O, B-X, I-X, E-X, S-X) are trained and scored as the tasks above;
    # any other tag set (POS tags, ...) is trained as it is and scored by word accuracy
    any_tags: bool = False

    def task_dir(self, data_dir: Path) -> Path:
        """The folder under --data holding this task's files (files.find_task_dir)."""
        return find_task_dir(data_dir, self.name, self.folders, self.train)


PREDICTIONS_FILE = "test.txt"  # `--task tag`: OUT/test_predictions/test.txt, the test words with predicted tags

TAGGING_TASKS: dict[str, TaggingTask] = {t.name: t for t in [
    TaggingTask("conll2003", ("conll2003", "CoNLL-2003"), "eng.train", "eng.testa", "eng.testb",
                entity_types=("PER", "LOC", "ORG", "MISC")),
    # ELECTRA's `chunk` task: CoNLL-2000 has no dev set and the paper reports the test set (spec 4.5)
    TaggingTask("chunk", ("chunk", "conll2000", "CoNLL-2000"), "train.txt", "test.txt", None),
    TaggingTask("tag", (), "train.txt", "dev.txt", "test.txt", any_tags=True),
]}

def chunk_tags(tags: set[str]) -> bool:
    """Are these chunk tags (O, or PREFIX-TYPE with a B/I/E/S prefix), whose spans the F1 counts?"""
    return all(t == "O" or (t.partition("-")[0] in CHUNK_PREFIXES and t.partition("-")[2]) for t in tags)


def word_accuracy(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Share of words whose predicted tag is the gold one (x100), for tag sets without chunks (POS tags)."""
    pairs = [(g, p) for gs, ps in zip(gold, pred) for g, p in zip(gs, ps)]
    return {"accuracy": 100.0 * sum(g == p for g, p in pairs) / max(1, len(pairs))}


class Sentence(NamedTuple):
    words: list[str]
    tags: list[str]


def fields(line: str) -> list[str]:
    """A CoNLL line's columns: split on tabs when it has any, else on spaces. Never on other Unicode spaces: a
    no-break space inside a token ("10\u00a0000" in French data) belongs to it."""
    line = line.rstrip("\r\n")
    parts = line.split("\t") if "\t" in line else line.split(" ")
    return [f.strip(" ") for f in parts if f.strip(" ")]


def check_tag(tag: str, entity_types: tuple[str, ...]) -> bool:
    """Is `tag` O or PREFIX-TYPE with TYPE one of entity_types (any tag when entity_types is empty)?"""
    return not entity_types or tag == "O" or tag.partition("-")[2] in entity_types


def read_conll(path: Path, label_column: int | None = -1, limit: int = 0,
               entity_types: tuple[str, ...] = (), text: str | None = None) -> list[Sentence]:
    """Sentences of a CoNLL file (`text`: its text when already read); a line without the label column, or a tag
    read from the last column (the NER column of CoNLL-2003) whose type is not in `entity_types`, is a one-line
    UserError. label_column None reads the words alone (the first column; tags empty): an unlabelled test file
    of `--task tag`, or `electra predict`'s CoNLL input."""
    out: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for line_no, line in enumerate((read_utf8(path) if text is None else text).split("\n"), 1):
        cols = fields(line)
        if not cols or cols[0] == "-DOCSTART-":
            if words:
                out.append(Sentence(words, tags))
                words, tags = [], []
                if limit and len(out) >= limit:
                    return out
            continue
        if label_column is None:
            words.append(cols[0])
            continue
        if len(cols) < 2 or not -len(cols) <= label_column < len(cols) or label_column in (0, -len(cols)):
            raise UserError(f"{path} line {line_no}: {len(cols)} column(s), no tag in column {label_column} "
                            f"(expected 'token ... tag'; set --label-column)")
        tag = cols[label_column]
        # only the last column is checked: `--label-column 2` reads CoNLL-2003's chunk tags (NP, VP, ...)
        if label_column % len(cols) == len(cols) - 1 and not check_tag(tag, entity_types):
            raise UserError(f"{path} line {line_no}: tag {tag!r} is not O or a tag of type "
                            f"{', '.join(entity_types)}; fix the file or pick the tag column with --label-column")
        words.append(cols[0])
        tags.append(tag)
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
                labels[t + 1] = tag_ids.get(sent.tags[w], IGNORE) if sent.tags else IGNORE  # untagged: test words
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


def read_train(task: TaggingTask, folder: Path, cfg: Any) -> list[Sentence]:
    train = read_conll(folder / task.train, cfg.label_column, cfg.max_train_examples, task.entity_types)
    if not train:
        raise UserError(f"{folder / task.train} has no sentences")
    return train


def words_only(text: str) -> bool:
    """Does every token line of this CoNLL text have a single column (words to tag, no tags)?"""
    lines = [fields(line) for line in text.split("\n")]
    return all(len(c) == 1 for c in lines if c and c[0] != "-DOCSTART-")


def read_evals(task: TaggingTask, folder: Path, cfg: Any) -> dict[str, tuple[Path, list[Sentence]]]:
    """The files by metric prefix: dev (""), and test ("test_") when present; `--task tag`'s test file may be
    unlabelled (a word per line), its sentences then have no tags and are not scored. A file without sentences
    is an error: it would score 0.00 after the whole training."""
    files = {"": folder / task.dev}
    if task.test and (folder / task.test).is_file():
        files["test_"] = folder / task.test
    evals = {}
    for prefix, path in files.items():
        text = read_utf8(path)
        column = None if prefix and task.any_tags and words_only(text) else cfg.label_column
        sents = read_conll(path, column, cfg.max_eval_examples, task.entity_types, text)
        if not sents:
            raise UserError(f"{path} has no examples; give the task's tagged {'test' if prefix else 'dev'} file")
        evals[prefix] = (path, sents)
    return evals


def cut_words_note(names: list[str], word_pos: list[list[int]], max_seq_len: int, fallback: str) -> str | None:
    """One line on the words that got no piece inside max_seq_len (tagged `fallback`), or None when there are none."""
    cut = [(name, pos.count(-1)) for name, pos in zip(names, word_pos) if pos.count(-1)]
    if not cut:
        return None
    return (f"{sum(n for _, n in cut)} word(s) in {len(cut)} sentence(s) past max_seq_len {max_seq_len} (or without a "
            f"word piece) are tagged {fallback!r} (first: {cut[0][0]})")


def write_tagged(sents: list[Sentence], tags: list[list[str]], out_dir: Path) -> Path:
    """OUT/test_predictions/test.txt: the test file's words, each with its predicted tag, CoNLL style."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PREDICTIONS_FILE
    blocks = ["\n".join(f"{w}\t{t}" for w, t in zip(s.words, ts)) for s, ts in zip(sents, tags)]
    atomic_write_bytes(path, ("\n\n".join(blocks) + "\n").encode("utf-8"))
    return path


def check_tagging(task: TaggingTask, data_dir: Path, cfg: Any) -> None:
    """The checks that need no model: the task folder, its training file and usable dev (and test) file, so that
    a run of several tasks stops before training any when one task's data is missing, empty or bad."""
    folder = task.task_dir(data_dir)
    read_train(task, folder, cfg)
    read_evals(task, folder, cfg)


def unseen_tags_warning(task: str, path: Path, sents: list[Sentence], known: set[str], bioes: bool) -> str | None:
    """A warning naming the tags of a scored file that no training sentence has: the head has no output for
    them, so their chunks can never be predicted (a short --max-train-examples, or mismatched files)."""
    unseen = sorted({t for s in sents for t in (to_bioes(s.tags) if bioes else s.tags)} - known)
    if not unseen:
        return None
    return (f"warning: [{task}] {path} has tags that no training sentence has, which cannot be predicted"
            f"{' (as BIOES targets)' if bioes else ''}: {', '.join(unseen)}")


def tagging_job(task: TaggingTask, data_dir: Path, cfg: Any, tokenizer: Any, cls_id: int, sep_id: int) -> Any:
    """A train.Job for one tagging task (cfg is the resolved FinetuneConfig)."""
    from electra.finetune.heads import build_head
    from electra.finetune.train import Job

    folder = task.task_dir(data_dir)
    train = read_train(task, folder, cfg)
    chunked = not task.any_tags or chunk_tags({t for s in train for t in s.tags})
    if not chunked:
        print(f"[{task.name}] the tags are not chunk tags (O, B-X, I-X, ...): trained as they are, scored by word "
              f"accuracy", flush=True)
    bioes = cfg.tag_encoding == "bioes" and chunked
    if bioes:
        train = [Sentence(s.words, to_bioes(s.tags)) for s in train]
    labels = sorted({t for s in train for t in s.tags})
    tag_ids = {t: i for i, t in enumerate(labels)}
    fallback = "O" if chunked else Counter(t for s in train for t in s.tags).most_common(1)[0][0]
    eval_files = read_evals(task, folder, cfg)
    for path, sents in eval_files.values():
        warning = unseen_tags_warning(task.name, path, sents, set(tag_ids), bioes)
        if warning:
            print(warning, flush=True)
    test = eval_files["test_"][1] if "test_" in eval_files else None
    evals = {k: sents for k, (_, sents) in eval_files.items() if sents[0].tags}  # an unlabelled test is not scored
    enc = lambda s: encode_sentences(s, tokenizer, cls_id, sep_id, cfg.max_seq_len, tag_ids)
    eval_feats = {k: enc(v) for k, v in evals.items()}

    def tag(predict: Any, feats: list[Any]) -> list[list[str]]:
        # a word without a piece in the window gets "O" (chunks), or the most common training tag
        return [[labels[out[p]] if p >= 0 else fallback for p in f["word_pos"]] for f, out in zip(feats, predict(feats))]

    for prefix, feats in eval_feats.items():
        path = eval_files[prefix][0]
        note = cut_words_note([f"{path.name} sentence {i}" for i in range(1, len(feats) + 1)],
                              [f["word_pos"] for f in feats], cfg.max_seq_len, fallback)
        if note:
            print(f"note: [{task.name}] {note}; a longer --max-seq-len keeps them", flush=True)

    def evaluate(predict: Any) -> dict[str, float]:
        result = {}
        for prefix, feats in eval_feats.items():
            gold, preds = [s.tags for s in evals[prefix]], tag(predict, feats)
            scores = span_f1(gold, preds) if chunked else word_accuracy(gold, preds)
            result.update({prefix + k: v for k, v in scores.items()})
        return result

    def write_test(predict: Any, out_dir: Path) -> list[str]:
        assert test is not None
        return [write_tagged(test, tag(predict, eval_feats.get("test_") or enc(test)), out_dir).name]

    return Job(task=task.name, head_kind="tagging", labels=labels, train=enc(train),
               make_head=lambda hidden: build_head("tagging", hidden, len(labels)),
               evaluate=evaluate, main_metric="f1" if chunked else "accuracy",
               write_test=write_test if task.any_tags and test is not None else None,
               meta={"tag_encoding": "bioes" if bioes else "asis", "chunk_tags": chunked, "fallback_tag": fallback})
