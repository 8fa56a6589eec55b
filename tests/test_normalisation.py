"""A dataset's text normalisation (lower-casing, accent stripping) follows the model everywhere it goes: into
the run, `detect`, the Hugging Face export (checked with transformers' own tokenizer) and back in through
an import. The vocabulary holds every spelling of two words, so each setting picks a different token."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_overrides

from electra.checkpoint import load_discriminator
from electra.cli import main
from electra.data.tokenizer import load_tokenizer

FORMS = {"cafe": "zurich", "café": "zürich", "Cafe": "Zurich", "Café": "Zürich"}
TEXT = "Café Zürich"
SETTINGS = [([], "cafe zurich"),  # BERT's default: lower-case, and so strip accents
            (["--no-strip-accents"], "café zürich"),
            (["--no-lowercase"], "Café Zürich"),  # cased: accents kept unless asked
            (["--no-lowercase", "--strip-accents"], "Cafe Zurich")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("norm")
    words = ["the", "a", "city", "in", "is", "of", "."]
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *FORMS, *FORMS.values()]) + "\n",
                     encoding="utf-8")
    lines = [f"{TEXT} is a city in the city of {TEXT} ." for _ in range(6)]
    (root / "corpus.txt").write_text("\n\n".join("\n".join(lines) for _ in range(40)) + "\n", encoding="utf-8")
    return root / "corpus.txt", vocab


def run_with(corpus: tuple[Path, Path], flags: list[str], root: Path) -> Path:
    text, vocab = corpus
    assert main(["prepare", str(text), "--vocab", str(vocab), "--seq-len", "32", "--out", str(root / "ds"),
                 "--workers", "1", "--valid-fraction", "0.1", "--quiet", *flags]) == 0
    assert main(["pretrain", "--data", str(root / "ds"), "--out", str(root / "run"), "--no-tensorboard",
                 *tiny_overrides(max_steps=1, eval_every=0, save_every=1)]) == 0
    return root / "run"


@pytest.mark.parametrize(("flags", "expected"), SETTINGS, ids=["default", "keep-accents", "cased", "cased-strip"])
def test_normalisation_follows_the_model(corpus, flags, expected, tmp_path):
    tf = pytest.importorskip("transformers")
    from electra.detect import Detector

    run = run_with(corpus, flags, tmp_path)
    assert " ".join(Detector(run)([TEXT])[0].tokens) == expected
    assert main(["export", str(run), str(tmp_path / "hf")]) == 0
    disc = tmp_path / "hf" / "discriminator"
    assert " ".join(tf.AutoTokenizer.from_pretrained(disc).tokenize(TEXT)) == expected
    _, pre = load_discriminator(disc)  # the import reads the setting back from the exported tokenizer files
    tok = load_tokenizer(pre.vocab_path, lowercase=pre.lowercase, strip_accents=pre.strip_accents)
    assert " ".join(tok.encode(TEXT, add_special_tokens=False).tokens) == expected


def test_init_from_a_model_normalised_otherwise_warns(corpus, tmp_path, capsys):
    cased = run_with(corpus, ["--no-lowercase"], tmp_path / "cased")
    assert main(["export", str(cased), str(tmp_path / "hf")]) == 0
    text, vocab = corpus
    assert main(["prepare", str(text), "--vocab", str(vocab), "--seq-len", "32", "--out", str(tmp_path / "lower"),
                 "--workers", "1", "--valid-fraction", "0.1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--data", str(tmp_path / "lower"), "--out", str(tmp_path / "run"), "--no-tensorboard",
                 "--init", str(tmp_path / "hf"), *tiny_overrides(max_steps=1, eval_every=0, save_every=1)]) == 0
    err = capsys.readouterr().err
    assert "lower-casing and accents stripped" in err and "case kept and accents kept" in err, err
