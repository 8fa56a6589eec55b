"""BERT WordPiece tokenization from a standard `vocab.txt`, built on the `tokenizers` library.

The tokenizer mirrors BERT's `FullTokenizer`, which ELECTRA's builder uses (spec 2.1): clean text,
split CJK characters and punctuation, optionally lower-case and strip accents, then greedy
longest-match WordPiece with `##` continuations and `[UNK]` for words over 200 characters.
No post-processor is attached: `encode(..., add_special_tokens=False)` returns the bare word
pieces, and the example builder adds [CLS]/[SEP] itself (spec 2.1 step 6). Special-token strings in
raw text (e.g. "[SEP]") are NOT matched as special tokens, exactly like BERT's tokenizer.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from electra.errors import UserError

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# BERT's WordpieceTokenizer(max_input_chars_per_word=200); the `tokenizers` default is 100.
MAX_CHARS_PER_WORD = 200


class SpecialIds(NamedTuple):
    """Ids of the five special tokens every ELECTRA vocabulary must contain."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    @classmethod
    def from_vocab(cls, vocab_path: str | Path) -> SpecialIds:
        vocab = read_vocab(vocab_path)
        return cls(*(vocab[t] for t in SPECIAL_TOKENS))


def read_vocab(vocab_path: str | Path) -> dict[str, int]:
    """Read a BERT-style vocab.txt (one token per line, id = line number).

    Raises UserError if the file is missing, empty, has duplicate tokens, or lacks a special token
    (a SentencePiece vocab is the usual culprit: spec 5, google-research/electra#8)."""
    path = Path(vocab_path)
    if not path.is_file():
        raise UserError(f"vocab file {path} not found; pass a BERT-style vocab.txt (or build one with `electra vocab`)")
    vocab: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                token = line.rstrip("\n").strip()  # BERT's load_vocab strips each line
                if token in vocab:
                    raise UserError(f"vocab {path}: token {token!r} appears twice (lines {vocab[token] + 1} and {i + 1}); "
                                    "fix the vocab file so every line is a distinct token")
                vocab[token] = i
    except UnicodeDecodeError as e:
        raise UserError(f"vocab {path} is not UTF-8 text ({e.reason} at byte {e.start}); pass a BERT-style vocab.txt") from None
    if not vocab:
        raise UserError(f"vocab {path} is empty; pass a BERT-style vocab.txt with one token per line")
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise UserError(f"vocab {path} lacks the special token(s) {', '.join(missing)}; a WordPiece vocab with "
                        f"{', '.join(SPECIAL_TOKENS)} is required (SentencePiece vocabs do not work)")
    return vocab


def vocab_sha256(vocab_path: str | Path) -> str:
    """Hex sha256 of the vocab file's bytes (recorded in a dataset's metadata to catch vocab mix-ups)."""
    path = Path(vocab_path)
    if not path.is_file():
        raise UserError(f"vocab file {path} not found")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_tokenizer(vocab: dict[str, int], lowercase: bool = True, strip_accents: bool | None = None) -> Tokenizer:
    """A BERT tokenizer over an in-memory vocab (see module docstring for the pipeline)."""
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_CHARS_PER_WORD))
    # strip_accents=None follows `lowercase`, as in ELECTRA's tokenizer (accents are stripped only
    # when lower-casing, spec 2.1); an explicit True/False is honoured as given.
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def load_tokenizer(vocab_path: str | Path, lowercase: bool = True, strip_accents: bool | None = None) -> Tokenizer:
    """Load a BERT WordPiece tokenizer from `vocab_path` (UserError if the vocab is unusable).

    No post-processor: encodings never contain [CLS]/[SEP]; decode with `tok.decode(ids)`."""
    return build_tokenizer(read_vocab(vocab_path), lowercase=lowercase, strip_accents=strip_accents)
