"""`electra vocab`: train a WordPiece vocabulary on a corpus and write a standard BERT `vocab.txt`.

    electra vocab CORPUS... --vocab-size 30522 --out DIR
    electra vocab --from-tokenizer MODEL_DIR/tokenizer.json --out MODEL_DIR   # a transformers 5 folder's vocab.txt

Uses the `tokenizers` WordPiece trainer behind the same normaliser and pre-tokenizer as
`electra.data.tokenizer` (so training and use split text identically). The five special tokens
come first, so [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 (BERT's own vocab has them elsewhere:
every consumer looks them up by name). The corpus is streamed; only the word counts are in memory.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from tokenizers import trainers

from electra.data.args import add_corpus_arg, add_text_args, corpus_format
from electra.data.corpus import ReadStats, iter_corpus
from electra.data.inputs import default_warn, resolve_corpus
from electra.data.shards import atomic_write_bytes
from electra.data.tokenizer import (
    MAX_CHARS_PER_WORD,
    SPECIAL_TOKENS,
    build_tokenizer,
    long_words,
    parse_vocab,
    read_vocab,
)
from electra.errors import ArgumentParser, UserError

LONG_RUN = re.compile(rf"\S{{{MAX_CHARS_PER_WORD + 1},}}")  # a candidate over-long word


def train_vocab(corpus: Sequence[str | Path], out_dir: str | Path, vocab_size: int = 30522, lowercase: bool = True,
                strip_accents: bool | None = None, min_frequency: int = 2, limit_alphabet: int = 1000,
                fmt: str | None = None, text_field: str = "text") -> Path:
    """Train and write `out_dir/vocab.txt`; returns its path."""
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise UserError(f"--vocab-size {vocab_size} is too small; use at least {len(SPECIAL_TOKENS) + 1} (30522 as BERT)")
    if min_frequency < 0:
        raise UserError(f"--min-frequency {min_frequency} must be at least 0 (the default is 2)")
    if limit_alphabet < 1:
        raise UserError(f"--limit-alphabet {limit_alphabet} must be at least 1 (the default is 1000)")
    check_out(Path(out_dir))
    files = resolve_corpus(corpus, fmt, exclude=Path(out_dir) / "vocab.txt")  # not its own earlier output

    def batches(stats: ReadStats) -> Iterator[list[str]]:
        batch: list[str] = []
        for unit in iter_corpus(files, stats, text_field):
            if unit:
                batch.append(unit)
                if len(batch) >= 1024:
                    yield batch
                    batch = []
        if batch:
            yield batch

    # tokenizers' trainer alone is not reproducible (huggingface/tokenizers#1794): it numbers the word-inner
    # pieces ("##e") in hash-map order and breaks ties in merge counts by those numbers, and it cuts the alphabet
    # at --limit-alphabet among characters of equal count in hash-map order too. So the alphabet is chosen here,
    # in a first pass (character counts of the normalised text; ties broken by the character), and handed to the
    # trainer whole, with every "##c" named up front in sorted order. The corpus is read twice.
    tok = build_tokenizer(None, lowercase=lowercase, strip_accents=strip_accents)
    counts: Counter[str] = Counter()
    units = with_long_words = 0
    for batch in batches(ReadStats()):
        text = tok.normalizer.normalize_str("\n".join(batch))
        counts.update(text)
        units += len(batch)
        if LONG_RUN.search(text):  # a run of non-spaces that long may still be cut at punctuation: ask the tokenizer
            with_long_words += sum(long_words(tok, unit) > 0 for unit in batch if LONG_RUN.search(unit))
    if with_long_words > 0.05 * units:
        default_warn(f"{with_long_words} of the corpus's {units} lines (or records) hold a word over {MAX_CHARS_PER_WORD} characters, "
                     f"which becomes [UNK] whatever the vocabulary: text written without spaces (Thai, Lao, Khmer, "
                     f"Burmese, Japanese) must be cut into words (a word segmenter: PyThaiNLP, MeCab, ...) first")
    chars = sorted((c for c in counts if not c.isspace()), key=lambda c: (-counts[c], c))
    alphabet = sorted(chars[:limit_alphabet])
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, initial_alphabet=alphabet,
        special_tokens=[*SPECIAL_TOKENS, *("##" + c for c in alphabet)], limit_alphabet=max(1, len(alphabet)),
        continuing_subword_prefix="##", show_progress=False)
    stats = ReadStats()
    tok.train_from_iterator(batches(stats), trainer=trainer)
    vocab = tok.get_vocab()
    for w in stats.per_file_warnings:
        default_warn(w)
    if len(vocab) <= len(SPECIAL_TOKENS):
        raise UserError(f"the corpus {' '.join(map(str, corpus))} has no text to learn a vocabulary from; give more text")
    if len(vocab) > vocab_size:  # the trainer keeps the whole alphabet, each character also as "##c"
        default_warn(f"the vocabulary has {len(vocab)} tokens, more than --vocab-size {vocab_size}: every one of "
                     f"the corpus's {len(alphabet)} characters is kept, alone and as '##c'; lower --limit-alphabet "
                     f"to stay within it")
    return write_vocab_txt(vocab, out_dir, "the trained vocabulary")


def check_out(out: Path) -> None:
    """`--out` must be a folder, and not a prepared dataset's: its vocab.txt is part of the dataset."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if (out / "meta.json").is_file():
        raise UserError(f"--out {out} holds a prepared dataset, whose vocab.txt must not change; give another folder")


def write_vocab_txt(vocab: dict[str, int], out_dir: str | Path, what: str) -> Path:
    """`out_dir/vocab.txt`, one token per line in id order (ids must be 0..n-1, as the format implies)."""
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise UserError(f"{what}: the ids are not 0..{len(by_id) - 1}; it cannot be a vocab.txt")
    out = Path(out_dir)
    check_out(out)
    path = out / "vocab.txt"
    data = "".join(f"{t}\n" for t, _ in by_id).encode("utf-8")
    parse_vocab(data, Path(what))  # before writing: every special token present, no duplicates
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def vocab_from_tokenizer(tokenizer_json: str | Path, out_dir: str | Path) -> Path:
    """Write the vocab.txt of a WordPiece `tokenizer.json` (what `transformers` 5 saves instead of vocab.txt)."""
    path = Path(tokenizer_json)
    try:
        model = json.loads(path.read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{path} is not a readable tokenizer.json ({str(e)[:80]})") from None
    kind = model.get("type") if isinstance(model, dict) else None
    if kind != "WordPiece":
        what = f"a {kind!r} tokenizer" if isinstance(kind, str) else "no tokenizer model"
        raise UserError(f"{path} holds {what}, not WordPiece; electra needs a BERT-style WordPiece vocabulary")
    vocab = model.get("vocab")
    if (not isinstance(vocab, dict) or not vocab
            or not all(isinstance(t, str) and type(i) is int for t, i in vocab.items())):
        raise UserError(f"{path}: its WordPiece model has no token -> id map under 'vocab'; is the file complete?")
    return write_vocab_txt(vocab, out_dir, str(path))


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="electra vocab", description="Train a WordPiece vocab.txt on a corpus, or "
                                "write the vocab.txt of a WordPiece tokenizer.json.")
    add_corpus_arg(p, required=False)
    p.add_argument("--from-tokenizer", type=Path, help="a WordPiece tokenizer.json to take the vocabulary from "
                                                       "instead of training one (no CORPUS then)")
    p.add_argument("--extend", type=Path, metavar="BASE_VOCAB",
                   help="instead of training one: BASE_VOCAB (a published model's vocab.txt) with the corpus's most "
                        "frequent multi-piece words in its [unusedN] slots, so the model's weights still fit "
                        "(extend_vocab.py)")
    p.add_argument("--add", type=int, help="with --extend: how many words (default: every free slot)")
    p.add_argument("--out", required=True, help="folder to write vocab.txt into")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--limit-alphabet", type=int, default=1000)
    add_text_args(p)
    a = p.parse_args(argv)
    if a.from_tokenizer is not None:
        if a.corpus:
            raise UserError("give either CORPUS (to train a vocabulary) or --from-tokenizer, not both")
        path = vocab_from_tokenizer(a.from_tokenizer, a.out)
        print(f"wrote {path} ({len(read_vocab(path))} tokens)")
        return 0
    if not a.corpus:
        raise UserError("give the CORPUS to train a vocabulary on (files, folders or globs), or --from-tokenizer")
    if a.add is not None and a.extend is None:
        raise UserError("--add is for --extend BASE_VOCAB")
    if a.extend is not None:
        from electra.data.extend_vocab import extend
        ext = extend(a.corpus, a.extend, a.add, a.min_frequency, a.lowercase, a.strip_accents, corpus_format(a),
                     a.text_field)
        path = write_vocab_txt(ext.vocab, a.out, "the extended vocabulary")
        shown = ", ".join(f"{w} ({n:,}x, {k} pieces)" for w, n, k in ext.added[:8])
        print(f"wrote {path}: {len(ext.added)} words in {a.extend}'s [unused] slots, such as {shown}; the corpus "
              f"takes {ext.pieces_after:,} word pieces instead of {ext.pieces_before:,} "
              f"({100 * (1 - ext.pieces_after / max(1, ext.pieces_before)):.1f}% fewer)"
              + (f"; {ext.unknown} of the words were [UNK] before" if ext.unknown else ""))
        return 0
    path = train_vocab(a.corpus, a.out, a.vocab_size, a.lowercase, a.strip_accents, a.min_frequency,
                       a.limit_alphabet, corpus_format(a), a.text_field)
    n = len(path.read_text(encoding="utf-8").splitlines())
    print(f"wrote {path} ({n} tokens)")
    return 0
