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
import io
from collections.abc import Mapping
from dataclasses import dataclass
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
        return cls.from_tokens(read_vocab(vocab_path))

    @classmethod
    def from_tokens(cls, vocab: Mapping[str, int]) -> SpecialIds:
        """From a token -> id map that `parse_vocab` accepted (so every special token is in it)."""
        return cls(*(vocab[t] for t in SPECIAL_TOKENS))


@dataclass(frozen=True)
class VocabFile:
    """A vocab.txt read once: its exact bytes (hashed and copied by `electra prepare`) and its token ids."""

    path: Path
    data: bytes
    tokens: dict[str, int]

    @classmethod
    def read(cls, vocab_path: str | Path) -> VocabFile:
        """Read and check `vocab_path` (UserError as `read_vocab`)."""
        path = Path(vocab_path)
        if path.is_dir() and (path / "vocab.txt").is_file():  # `electra vocab --out DIR`'s folder
            path = path / "vocab.txt"
        elif path.is_dir() and (path / "tokenizer.json").is_file():  # a transformers 5 folder
            raise UserError(f"vocab {path} holds a tokenizer.json but no vocab.txt; write one with `electra vocab "
                            f"--from-tokenizer {path / 'tokenizer.json'} --out {path}`")
        elif path.is_dir():
            raise UserError(f"vocab {path} is a folder without a vocab.txt; pass a BERT-style vocab.txt file")
        if not path.is_file():
            raise UserError(f"vocab file {path} not found; pass a BERT-style vocab.txt (or build one with `electra vocab`)")
        data = path.read_bytes()
        if data.lstrip()[:1] == b"{":  # BERT's vocab.txt never starts with a brace; a tokenizer.json always does
            raise UserError(f"vocab {path} is JSON (a tokenizer.json?), not a vocab.txt; write one with `electra vocab "
                            f"--from-tokenizer {path} --out DIR` and pass DIR/vocab.txt")
        return cls(path, data, parse_vocab(data, path))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()  # = vocab_sha256(self.path)

    @property
    def special(self) -> SpecialIds:
        return SpecialIds.from_tokens(self.tokens)


def read_vocab(vocab_path: str | Path) -> dict[str, int]:
    """Read a BERT-style vocab.txt (one token per line, id = line number).

    Raises UserError if the file is missing, empty, has duplicate tokens, or lacks a special token
    (a SentencePiece vocab is the usual culprit: spec 5, google-research/electra#8)."""
    return VocabFile.read(vocab_path).tokens


def parse_vocab(data: bytes, path: Path) -> dict[str, int]:
    """The token -> id map of a vocab.txt's bytes (`path` is only named in errors)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"vocab {path} is not UTF-8 text ({e.reason} at byte {e.start}); pass a BERT-style vocab.txt") from None
    if text.startswith("\ufeff"):  # BERT's reader would keep it as part of the first token
        raise UserError(f"vocab {path} starts with a UTF-8 byte-order mark; save it without one "
                        f"(sed -i '1s/^\\xEF\\xBB\\xBF//' {path})")
    vocab: dict[str, int] = {}
    # newline=None: the same universal-newline line splitting as reading the file in text mode
    for i, line in enumerate(io.StringIO(text, newline=None)):
        token = line.rstrip("\n").strip()  # BERT's load_vocab strips each line
        if token in vocab:
            raise UserError(f"vocab {path}: token {token!r} appears twice (lines {vocab[token] + 1} and {i + 1}); "
                            "fix the vocab file so every line is a distinct token")
        vocab[token] = i
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


def build_tokenizer(vocab: dict[str, int] | None, lowercase: bool = True,
                    strip_accents: bool | None = None) -> Tokenizer:
    """A BERT tokenizer over an in-memory vocab (see module docstring for the pipeline).

    `vocab=None` gives an empty model for `electra vocab` to train, so that training and use
    normalise and split text identically."""
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_CHARS_PER_WORD))
    # strip_accents=None follows `lowercase`, as in ELECTRA's tokenizer (accents are stripped only
    # when lower-casing, spec 2.1); an explicit True/False is honoured as given.
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def long_words(tok: Tokenizer, text: str) -> int:
    """How many words of `text` (as `tok` normalises and splits it) exceed MAX_CHARS_PER_WORD characters: each
    becomes one [UNK], whatever the vocabulary."""
    words = tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))
    return sum(len(w) > MAX_CHARS_PER_WORD for w, _ in words)


def normalisation(lowercase: bool, strip_accents: bool | None) -> str:
    """What `build_tokenizer` does to text, in words (strip_accents=None follows lowercase, as above)."""
    strip = lowercase if strip_accents is None else strip_accents
    return f"{'lower-casing' if lowercase else 'case kept'} and {'accents stripped' if strip else 'accents kept'}"


def load_tokenizer(vocab_path: str | Path, lowercase: bool = True, strip_accents: bool | None = None) -> Tokenizer:
    """Load a BERT WordPiece tokenizer from `vocab_path` (UserError if the vocab is unusable).

    No post-processor: encodings never contain [CLS]/[SEP]; decode with `tok.decode(ids)`."""
    return build_tokenizer(read_vocab(vocab_path), lowercase=lowercase, strip_accents=strip_accents)
