"""Tokenizer loading, vocab checks and `electra vocab` training (issue 2, point 2)."""
from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest
from data_helpers import BERT_VOCAB, write_docs, write_vocab

from electra.cli import main as cli
from electra.data.tokenizer import SpecialIds, load_tokenizer, read_vocab, vocab_sha256
from electra.data.vocab import train_vocab
from electra.errors import UserError


def test_read_vocab_special_ids_and_sha(tmp_path: Path) -> None:
    v = write_vocab(tmp_path / "vocab.txt")
    vocab = read_vocab(v)
    assert vocab["[PAD]"] == 0 and vocab["alpha"] == 9
    assert SpecialIds.from_vocab(v) == SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    assert vocab_sha256(v) == hashlib.sha256(v.read_bytes()).hexdigest()


@pytest.mark.parametrize("specials,match", [
    (("[PAD]", "[UNK]", "[CLS]", "[SEP]"), r"lacks the special token\(s\) \[MASK\]"),
    (("<pad>", "<unk>", "<s>", "</s>", "<mask>"), "SentencePiece"),
])
def test_vocab_missing_special_token_is_refused(tmp_path: Path, specials: tuple[str, ...], match: str) -> None:
    v = write_vocab(tmp_path / "vocab.txt", specials=specials)
    with pytest.raises(UserError, match=match):
        SpecialIds.from_vocab(v)
    with pytest.raises(UserError, match=str(v).replace(".", r"\.")):
        load_tokenizer(v)


def test_bad_vocab_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_vocab(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match="empty"):
        read_vocab(tmp_path / "empty.txt")
    dup = write_vocab(tmp_path / "dup.txt", extra=("alpha",))
    with pytest.raises(UserError, match="appears twice"):
        read_vocab(dup)
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "WordPiece"}}')
    with pytest.raises(UserError, match=r"is JSON \(a tokenizer.json\?\), not a vocab.txt; write one with `electra vocab "
                                        r"--from-tokenizer"):
        read_vocab(tmp_path / "tokenizer.json")


def test_bert_style_tokenization(tmp_path: Path) -> None:
    v = write_vocab(tmp_path / "vocab.txt", extra=("##s", "cafe", "un", "##known"))
    tok = load_tokenizer(v)
    vocab = read_vocab(v)
    enc = tok.encode("Cats, CAFÉ! unknown [SEP] " + "x" * 201, add_special_tokens=False)
    assert enc.tokens == ["cat", "##s", ",", "cafe", "!", "un", "##known", "[UNK]", "[UNK]", "[UNK]", "[UNK]"]
    # "[SEP]" in raw text is not the [SEP] token (BERT's tokenizer splits it too); no post-processor
    assert vocab["[SEP]"] not in enc.ids and vocab["[CLS]"] not in enc.ids
    assert tok.decode(tok.encode("cats cafe", add_special_tokens=False).ids) == "cats cafe"
    cased = load_tokenizer(v, lowercase=False)
    assert cased.encode("Cat", add_special_tokens=False).tokens == ["[UNK]"]
    # accents follow lowercasing unless set explicitly (ELECTRA strips accents only when lower-casing)
    assert load_tokenizer(v, strip_accents=False).encode("café", add_special_tokens=False).tokens == ["[UNK]"]


@pytest.mark.skipif(not BERT_VOCAB.is_file(), reason="shared BERT vocab not available")
def test_bert_vocab_loads() -> None:
    assert SpecialIds.from_vocab(BERT_VOCAB) == SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)
    tok = load_tokenizer(BERT_VOCAB)
    assert tok.encode("Hello, unaffable world!", add_special_tokens=False).tokens == [
        "hello", ",", "una", "##ffa", "##ble", "world", "!"]  # greedy longest match


def test_electra_vocab_cli_trains_wordpiece(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "c.txt"
    write_docs(corpus, 200, seed=3)
    assert cli(["vocab", str(corpus), "--vocab-size", "120", "--out", str(tmp_path / "v")]) == 0
    path = tmp_path / "v" / "vocab.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(lines) <= 120 and len(set(lines)) == len(lines)
    assert any(t.startswith("##") for t in lines) and "alpha" in lines
    assert "wrote" in capsys.readouterr().out
    tok = load_tokenizer(path)
    assert "[UNK]" not in tok.encode("alpha beta omega.", add_special_tokens=False).tokens
    # cased training keeps capitals
    (tmp_path / "cased.txt").write_text("Alpha Beta\n" * 50, encoding="utf-8")
    p2 = train_vocab([tmp_path / "cased.txt"], tmp_path / "v2", vocab_size=50, lowercase=False)
    assert "Alpha" in p2.read_text(encoding="utf-8").splitlines()


def test_vocab_warns_of_words_too_long_to_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A corpus written without spaces: most lines are one word over 200 characters, [UNK] whatever vocabulary is
    trained. A run of 250 letters cut by punctuation every 50 is not such a word, and a few long words pass."""
    corpus = tmp_path / "c.txt"
    docs = write_docs(corpus, 40, seed=0)
    lines = [line for d in docs for line in d]
    cut = ("abcde" * 10 + ".") * 5  # 255 non-spaces, no word over 50
    corpus.write_text("\n".join([cut] * 10 + lines + ["x" * 300]) + "\n")
    assert cli(["vocab", str(corpus), "--vocab-size", "120", "--out", str(tmp_path / "ok")]) == 0
    assert "characters" not in capsys.readouterr().err
    spaceless = ["".join(c for c in line if c.isalpha()) * 60 for line in lines]
    corpus.write_text("\n".join(spaceless[:30] + lines[:30]) + "\n")
    assert cli(["vocab", str(corpus), "--vocab-size", "120", "--out", str(tmp_path / "thai")]) == 0
    err = capsys.readouterr().err
    assert f"30 of the corpus's {30 + len(lines[:30])} lines (or records) hold a word over 200 characters" in err
    assert "PyThaiNLP" in err


def test_vocab_training_is_reproducible(tmp_path: Path) -> None:
    """The same text gives the same vocab.txt, byte for byte. tokenizers' own trainer does not: it breaks ties in
    merge counts, and cuts the alphabet at --limit-alphabet among characters of equal count, in hash-map order
    (here 55 rare letters of 3 occurrences each, of which only some fit)."""
    from data_helpers import ENGLISH_WORDS, write_docs

    write_docs(tmp_path / "c.txt", 300, lines=(3, 12), words=ENGLISH_WORDS, sentence_len=(4, 20), capitalize=True)
    # Cyrillic and Greek letters that lower-casing and accent stripping leave as they are
    rare = [c for c in map(chr, [*range(0x430, 0x450), *range(0x3B1, 0x3C9)]) if unicodedata.normalize("NFD", c) == c]
    with (tmp_path / "c.txt").open("a", encoding="utf-8") as f:
        f.write("\n\n" + "\n".join(" ".join(rare) for _ in range(3)) + "\n")
    common = {c for c in (tmp_path / "c.txt").read_text(encoding="utf-8").lower() if not c.isspace()} - set(rare)
    for limit in (1000, len(common) + 20):  # every character kept; the cut among the rare ones
        runs = {train_vocab([tmp_path / "c.txt"], tmp_path / f"v{limit}_{i}", vocab_size=200,
                            limit_alphabet=limit).read_bytes() for i in range(4)}
        assert len(runs) == 1, limit
        kept = {t for t in runs.pop().decode().splitlines() if t in rare}
        assert len(kept) == (len(rare) if limit == 1000 else 20), kept


def test_electra_vocab_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(["vocab", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.txt" in err and "does not exist" in err
    (tmp_path / "blank.txt").write_text("\n\n  \n", encoding="utf-8")
    assert cli(["vocab", str(tmp_path / "blank.txt"), "--out", str(tmp_path / "v")]) == 2
    assert "no text" in capsys.readouterr().err
    assert not (tmp_path / "v" / "vocab.txt").exists()


def test_vocab_out_folder_re_runs_and_guards(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--out inside the corpus folder is not read back as corpus (a re-run gives the same bytes); --out holding a
    prepared dataset is refused (its vocab.txt is part of it); a vocabulary bigger than --vocab-size is told."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_docs(corpus / "c.txt", 100, seed=1)
    first = train_vocab([corpus], corpus / "v", vocab_size=80).read_bytes()
    assert train_vocab([corpus], corpus / "v", vocab_size=80).read_bytes() == first
    # --out the corpus folder itself: its text is still the corpus, only the written vocab.txt is not
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "c.txt").write_bytes((corpus / "c.txt").read_bytes())
    for _ in range(2):
        assert train_vocab([tmp_path / "flat"], tmp_path / "flat", vocab_size=80).read_bytes() == first
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "meta.json").write_text("{}")
    assert cli(["vocab", str(corpus), "--out", str(tmp_path / "ds")]) == 2
    assert "holds a prepared dataset" in capsys.readouterr().err and not (tmp_path / "ds" / "vocab.txt").exists()
    assert cli(["vocab", str(corpus), "--out", str(tmp_path / "small"), "--vocab-size", "10"]) == 0
    assert "more than --vocab-size 10" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "expect"), [
    ('{"model": "x"}', "holds no tokenizer model"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}}}', "holds a 'BPE' tokenizer"),
    ('{"model": {"type": "WordPiece", "vocab": [1, 2]}}', "no token -> id map"),
    ('{"model": {"type": "WordPiece", "vocab": {"a": 0, "b": 1}}}', "lacks the special token"),
    ("{", "not a readable tokenizer.json")])
def test_vocab_from_a_bad_tokenizer_json(tmp_path: Path, capsys: pytest.CaptureFixture, content: str,
                                         expect: str) -> None:
    (tmp_path / "tokenizer.json").write_text(content)
    assert cli(["vocab", "--from-tokenizer", str(tmp_path / "tokenizer.json"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and len(err.splitlines()) == 1 and not (tmp_path / "v").exists(), err


def test_a_vocab_with_a_byte_order_mark_is_refused(tmp_path: Path) -> None:
    vocab = write_vocab(tmp_path / "vocab.txt")
    vocab.write_bytes(b"\xef\xbb\xbf" + vocab.read_bytes())
    with pytest.raises(UserError, match="byte-order mark"):
        read_vocab(vocab)


def test_a_vocab_folder_means_its_vocab_txt(tmp_path: Path) -> None:
    from electra.data.tokenizer import VocabFile
    (tmp_path / "v").mkdir()
    vocab = write_vocab(tmp_path / "v" / "vocab.txt")
    got = VocabFile.read(tmp_path / "v")  # what `electra vocab --out v` wrote
    assert got.path == vocab and got.sha256 == vocab_sha256(vocab)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is a folder without a vocab.txt"):
        VocabFile.read(tmp_path / "empty")
    (tmp_path / "hf5").mkdir()
    (tmp_path / "hf5" / "tokenizer.json").write_text("{}")  # a transformers 5 folder: the fix is named
    with pytest.raises(UserError, match="electra vocab --from-tokenizer .*tokenizer.json --out"):
        VocabFile.read(tmp_path / "hf5")


def messy_lines(n: int, seed: int = 0) -> list[str]:
    """Text that exercises every rule of BERT's basic tokenizer: case, accents (composed and combining),
    punctuation inside and around words, digits, CJK ideographs, emoji, control and odd whitespace
    characters, and words longer than the 100-character limit."""
    import random

    from data_helpers import ENGLISH_WORDS

    rng = random.Random(seed)
    extras = ["café", "Zürich", "naïve", "cafe\u0301", "São", "Ελλάδα", "Москва", "東京大学", "中文", "😀", "x²",
              "don't", "e-mail", "(city)", "U.S.A.", "3.14", "1,000", "$5", "«quote»", "a\u00a0b", "tab\there",
              "bell\x07", "zero\u200bwidth", "ﬁne", "Ⅻ", "#tag", "@user", "x" * 101, "a/b\\c", "¿qué?", "y" * 201]
    lines = []
    for _ in range(n):
        words = [rng.choice(ENGLISH_WORDS) for _ in range(rng.randint(3, 12))] + rng.sample(extras, 3)
        rng.shuffle(words)
        lines.append(" ".join(w.upper() if rng.random() < 0.1 else w.capitalize() if rng.random() < 0.2 else w
                              for w in words))
    return lines


@pytest.mark.parametrize("lowercase,strip_accents", [(True, None), (True, False), (False, None), (False, True)])
def test_tokenizer_matches_berts_reference_tokenizer(tmp_path: Path, lowercase: bool, strip_accents: bool | None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Our tokenizer (the `tokenizers` library set up as BERT's) gives the ids of the pure-Python port of BERT's
    tokenization.py in `transformers` (BertTokenizerLegacy: an independent implementation), on a vocab that
    `electra vocab` trained, for each normalisation setting. The port departs from the original in two ways,
    undone here: it NFC-composes text first (the original, and the fast tokenizer an export ships, keep
    "e" + U+0301 as two code points), and it calls words over 100 characters [UNK] (the original: over 200)."""
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    lines = messy_lines(300)
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab = train_vocab([tmp_path / "c.txt"], tmp_path / "v", vocab_size=400, lowercase=lowercase,
                        strip_accents=strip_accents)
    normalize = unicodedata.normalize
    monkeypatch.setattr(legacy.unicodedata, "normalize", lambda form, text: text if form == "NFC" else
                        normalize(form, text))
    reference = legacy.BertTokenizerLegacy(str(vocab), do_lower_case=lowercase, strip_accents=strip_accents)
    reference.wordpiece_tokenizer.max_input_chars_per_word = 200
    ours = load_tokenizer(vocab, lowercase=lowercase, strip_accents=strip_accents)
    test_lines = messy_lines(200, seed=1)  # unseen lines: pieces the vocab lacks become [UNK]
    theirs = [reference.convert_tokens_to_ids(reference.tokenize(line)) for line in test_lines]
    mine = [e.ids for e in ours.encode_batch(test_lines, add_special_tokens=False)]
    assert mine == theirs
    unk = SpecialIds.from_vocab(vocab).unk
    assert any(unk in ids for ids in mine) and sum(map(len, mine)) > 2000  # a real test: unknowns and many pieces


def test_min_frequency_keeps_rare_merges_out(tmp_path: Path) -> None:
    """`electra vocab --min-frequency N`: a merge seen fewer than N times is not learned, so a high bar leaves a
    vocab of little more than the alphabet, and the words it would have made split into more pieces."""
    corpus = tmp_path / "c.txt"
    write_docs(corpus, 200, seed=3)
    sizes, pieces = {}, {}
    for freq in (2, 100000):
        assert cli(["vocab", str(corpus), "--vocab-size", "300", "--min-frequency", str(freq),
                    "--out", str(tmp_path / f"v{freq}")]) == 0
        vocab = tmp_path / f"v{freq}" / "vocab.txt"
        sizes[freq] = len(vocab.read_text(encoding="utf-8").splitlines())
        pieces[freq] = len(load_tokenizer(vocab).encode("alpha beta omega", add_special_tokens=False).ids)
    assert sizes[100000] < sizes[2] and pieces[100000] > pieces[2] == 3
