"""`electra predict`'s inputs: texts on the command line, or a file (or stdin) in one of its formats.

    lines   one example per line (a pair: TEXT A<tab>TEXT B, or A ||| B; a tagging model: the words)
    table   CSV / TSV with a header: the files `electra finetune` reads (GLUE's dev.tsv, your own dev.csv)
    jsonl   one JSON object per line ({"text", "text_pair"}, {"tokens"}, {"question", "context"}, ...)
    conll   a token per line, sentences between blank lines: the first column is the words
    squad   a SQuAD .json file: its questions, with their ids

`auto` goes by the suffix, then by the text (JSON Lines when it starts with `{`; CoNLL for a tagging model when
it looks like it). Each example becomes a `Row`; the model (predict.Finetuned) turns texts, lines and objects
into its input and names the file and line of anything it cannot use.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from electra.errors import UserError

PAIR = "|||"  # between the two texts of a pair on the command line (a tab works too, and is what files use)


class Row(NamedTuple):
    where: str  # "input 2", "rows.jsonl line 7": named in errors
    id: Any  # the input's own id (a JSON Lines "id", a SQuAD file's question id); None when it has none
    value: Any  # texts (classification / regression), words (tagging), (question, context) (QA)


def words(text: str) -> list[str]:
    """A sentence's words: split on ASCII white space only (a no-break space belongs to its word, as in training)."""
    return [w for w in re.split(r"[ \t\r\n]+", text) if w]


FORMATS = ("auto", "lines", "table", "jsonl", "conll", "squad")
BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "table", ".tsv": "table", ".json": "squad",
             ".conll": "conll", ".parquet": "table"}


def looks_like_conll(text: str) -> bool:
    """A token per line: blocks of lines (sentences) between blank lines, 3 lines a block or more on average, and
    nearly every line with the same number of columns (the words alone, or words and tags). Sentences one per
    line have no blank lines between them, or lines of varying length."""
    from electra.finetune.tagging import fields

    if "-DOCSTART-" in text:
        return True
    blocks = [b for b in re.split(r"\n[ \t\r]*\n", text.strip()) if b.strip()]
    widths = [len(fields(x)) for b in blocks for x in b.split("\n") if x.strip()]
    common = max(set(widths), key=widths.count) if widths else 0
    return len(blocks) >= 2 and len(widths) >= 3 * len(blocks) and widths.count(common) >= 0.9 * len(widths)


def input_format(fmt: str, path: Path | None, text: str, model: Any) -> str:
    """--format, or (auto) by the file's suffix; stdin and other files are JSON Lines when they start with `{`,
    CoNLL for a tagging model when they look like it, and one example per line otherwise."""
    if fmt != "auto":
        return fmt
    if path is not None and path.suffix.lower() in BY_SUFFIX:
        return BY_SUFFIX[path.suffix.lower()]
    if text.lstrip().startswith("{"):
        return "jsonl"
    if model.kind == "tagging" and looks_like_conll(text):
        print(f"electra predict: note: {path or '<stdin>'} read as a CoNLL file (its first column: the words); "
              f"pass --format lines to read one sentence per line", file=sys.stderr)
        return "conll"
    return "lines"


def read_rows(args: Any, model: Any) -> list[Row]:
    """The examples of the command line's texts or of --input (a file, or - for stdin), in --format."""
    if bool(args.text) == (args.input is not None):
        raise UserError("give the texts to predict on the command line or --input FILE (- for stdin), not both"
                        if args.text else "nothing to predict: give texts on the command line or --input FILE")
    if args.text:  # a shell passes bytes that are not UTF-8 as lone surrogates: U+FFFD, as the tokenizer would
        texts = [t.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for t in args.text]
        return [Row(f"input {i}", None, model.from_line(t, f"input {i}", f"TEXT A {PAIR} TEXT B"))
                for i, t in enumerate(texts, 1)]
    path = None if args.input == "-" else Path(args.input)
    if path is None:
        name, raw = "<stdin>", getattr(sys.stdin, "buffer", None)
        try:
            text = raw.read().decode("utf-8") if raw is not None else sys.stdin.read()
        except UnicodeDecodeError as e:
            raise UserError(f"stdin is not UTF-8 text ({e.reason} at byte {e.start})") from None
        text = text.removeprefix("\ufeff")
    elif path.suffix.lower() == ".json" and args.format in ("auto", "squad"):
        name, text = str(path), ""  # read by read_squad
    elif path.suffix.lower() == ".parquet" and args.format in ("auto", "table"):
        name, text = str(path), ""  # a table, read by custom.parquet_rows
    else:
        from electra.finetune.files import read_utf8
        name, text = str(path), read_utf8(path)
    fmt = input_format(args.format, path, text, model)
    if fmt == "squad":  # a SQuAD-format file (a dev set): its questions, with their ids
        if not model.kind.startswith("qa") or path is None:
            raise UserError(f"{name}: a SQuAD file (.json) is for question-answering models and is read from a "
                            f"file; give one JSON object per line as a .jsonl file")
        from electra.finetune.squad import read_squad
        return [Row(f"{path} question {ex.qid}", ex.qid,
                    model.texts([ex.question, ex.context], f"{path} question {ex.qid}", "'question', 'context'"))
                for ex in read_squad(path)]
    rows = []
    if fmt == "conll":
        if model.kind != "tagging":
            raise UserError(f"{name}: --format conll is for tagging models; this one is {model.kind}")
        from electra.finetune.tagging import read_conll
        rows = [Row(f"{name} sentence {i}", None, s.words)
                for i, s in enumerate(read_conll(Path(name), None, text=text), 1)]
    elif fmt in ("table", "jsonl"):
        from electra.finetune.custom import ID_COLUMNS, column
        from electra.finetune.custom import read_rows as read_table
        table = {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower(), "tsv") if path is not None else "tsv"
        records = read_table(Path(name), text, "jsonl" if fmt == "jsonl" else table)
        if not records and fmt == "table" and text.strip():
            raise UserError(f"{name}: a table needs a header line and rows, this one has the header only "
                            f"({text.strip().splitlines()[0][:80]!r}); --format lines reads one example per line")
        for n, obj in records:
            where = f"{name} line {n}"
            id_col = next((c for c in (column(obj, k) for k in ID_COLUMNS) if c), None)
            rows.append(Row(where, obj.get(id_col) if id_col else None, model.from_json(obj, where)))
    else:
        for n, line in enumerate(text.split("\n"), 1):
            if line.strip():
                rows.append(Row(f"{name} line {n}", None,
                                model.from_line(line.rstrip("\r"), f"{name} line {n}", "TEXT A<tab>TEXT B")))
    if not rows:
        raise UserError(f"{name} has no examples (blank lines are skipped)")
    return rows
