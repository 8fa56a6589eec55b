"""`electra prepare`: dataset layout, metadata, reuse, parallelism, crash safety, bad input (issue 2, point 4)."""
from __future__ import annotations

import gzip
import json
import random
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from data_helpers import (
    WORDS,
    electra_argv,
    electra_env,
    run_electra,
    sentence,
    tree_bytes,
    write_docs,
    write_vocab,
)

from electra.cli import main as cli
from electra.data.builder import split_segments
from electra.data.dataset import PretrainData
from electra.data.pipeline import KILL_BEFORE_COMMIT_ENV
from electra.data.prepare import KILL_HOOK_ENV
from electra.data.tokenizer import load_tokenizer, vocab_sha256

GROUPS = [WORDS[i::4] for i in range(4)]  # document k only uses words of group k % 4


def write_grouped(path: Path, n_docs: int, seed: int, start: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    docs = []
    for k in range(start, start + n_docs):
        words = GROUPS[k % 4]
        docs.append([" ".join(rng.choice(words) for _ in range(rng.randint(2, 14))) for _ in range(rng.randint(1, 9))])
    path.write_text("".join("\n".join(d) + "\n\n" for d in docs), encoding="utf-8")
    return docs


def prepare(*args: str) -> int:
    return cli(["prepare", *args, "--quiet"])


@pytest.fixture()
def vocab(tmp_path: Path) -> Path:
    return write_vocab(tmp_path / "vocab.txt")


def test_every_prepare_flag_reaches_the_dataset_settings(tmp_path: Path, vocab: Path) -> None:
    """Each command-line flag lands in meta.json's settings (argparse -> Settings wiring), and --batch-lines,
    which only changes how lines are grouped for the tokenizer, leaves the bytes as they are."""
    docs = write_grouped(tmp_path / "tmp", 60, 2)
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"body": "\n".join(d)}) + "\n" for d in docs))
    flags = ["--seq-len", "20", "--no-lowercase", "--strip-accents", "--single-segment-prob", "0.3",
             "--short-seq-prob", "0.2", "--seed", "7", "--valid-fraction", "0.2", "--text-field", "body",
             "--max-line-bytes", "500", "--no-blanks-separate-docs", "--format", "jsonl", "--dedup"]
    for out, extra in ((tmp_path / "a", []), (tmp_path / "b", ["--batch-lines", "7"])):
        assert prepare(str(tmp_path / "c.jsonl"), "--vocab", str(vocab), "--out", str(out), *flags, *extra) == 0
    s = json.loads((tmp_path / "a" / "meta.json").read_text())["settings"]
    assert s == {"seq_len": 20, "lowercase": False, "strip_accents": True, "single_segment_prob": 0.3,
                 "short_seq_prob": 0.2, "seed": 7, "valid_fraction": 0.2, "text_field": "body",
                 "max_line_bytes": 500, "blanks_separate_docs": False, "dedup": True}
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")


def test_dataset_layout_metadata_and_round_trip(tmp_path: Path, vocab: Path) -> None:
    write_grouped(tmp_path / "a.txt", 150, seed=1)
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": "\n".join(d)}) + "\n"
                                              for d in write_grouped(tmp_path / "tmp", 40, 2, start=1)))
    (tmp_path / "c.gz").write_bytes(gzip.compress(b"alpha epsilon \xff iota\n\nbeta zeta\n"))
    out = tmp_path / "ds"
    assert prepare(str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl"), str(tmp_path / "c.gz"), "--vocab", str(vocab),
                   "--seq-len", "24", "--out", str(out), "--valid-fraction", "0.1", "--seed", "3") == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab"]["sha256"] == vocab_sha256(vocab) == vocab_sha256(out / "vocab.txt")
    assert meta["dtype"] == "uint16"
    s = meta["settings"]
    assert (s["seq_len"], s["lowercase"], s["strip_accents"], s["single_segment_prob"], s["short_seq_prob"],
            s["seed"], s["valid_fraction"]) == (24, True, None, 0.1, 0.05, 3, 0.1)
    c = meta["counts"]
    assert c["documents"] == 150 + 40 + 2 and c["replaced_bytes"] == 1
    assert c["train"]["examples"] > 100 and c["valid"]["examples"] > 5
    assert [i["fmt"] for i in meta["inputs"]] == ["text", "jsonl", "text"]
    data = PretrainData(out, vocab_path=vocab)
    assert len(data.train) == c["train"]["examples"] and len(data.valid) == c["valid"]["examples"]
    assert sum(len(data.train[i]) for i in range(len(data.train))) == c["train"]["tokens"]
    tok = load_tokenizer(out / "vocab.txt")
    group_of = {w: i % 4 for i, w in enumerate(WORDS)}
    for split in (data.train, data.valid):
        for i in range(len(split)):
            x = split[i]
            assert x.dtype == np.int64 and len(x) <= 24 and x[0] == data.special.cls and x[-1] == data.special.sep
            a, b = split_segments(x.tolist(), data.special.sep)
            words = tok.decode(a + b).split()
            # segments never span two documents (documents alternate word groups)
            assert len({group_of[w] for w in words if w in group_of}) == 1, words


def test_uint32_tokens_for_large_vocab(tmp_path: Path) -> None:
    extra = tuple(f"w{i:05d}" for i in range(70000))
    vocab = write_vocab(tmp_path / "vocab.txt", extra=extra)
    (tmp_path / "c.txt").write_text("w69999 w00001 alpha\nw65600 beta\n", encoding="utf-8")
    assert prepare(str(tmp_path / "c.txt"), "--vocab", str(vocab), "--out", str(tmp_path / "ds"),
                   "--valid-fraction", "0") == 0
    data = PretrainData(tmp_path / "ds")
    assert data.meta["dtype"] == "uint32" and data.vocab_size == 5 + 4 + len(WORDS) + len(extra)
    ids = load_tokenizer(vocab).encode("w69999 w00001 alpha w65600 beta", add_special_tokens=False).ids
    assert data.train[0].tolist() == [data.special.cls, *ids, data.special.sep] and max(ids) > 65535


def test_rerun_reuses_shards_and_changes_rebuild(tmp_path: Path, vocab: Path, capsys: pytest.CaptureFixture) -> None:
    files = []
    for k in range(3):
        write_docs(tmp_path / f"part{k}.txt", 120, seed=k)
        files.append(str(tmp_path / f"part{k}.txt"))
    out = tmp_path / "ds"
    args = [*files, "--vocab", str(vocab), "--out", str(out), "--unit-mb", "0.005"]
    assert cli(["prepare", *args]) == 0
    first = tree_bytes(out)
    shards = sorted(p.name for p in out.glob("shard-*"))
    assert len(shards) == 3
    capsys.readouterr()
    assert cli(["prepare", *args]) == 0
    assert "up to date" in capsys.readouterr().err and tree_bytes(out) == first
    # touching one input rebuilds only its shard; the result is the same bytes
    p1 = tmp_path / "part1.txt"
    p1.write_bytes(p1.read_bytes())
    assert cli(["prepare", *args]) == 0
    assert "reusing 2 finished shard(s)" in capsys.readouterr().err
    second = tree_bytes(out)
    # a different setting would leave runs trained on the dataset unable to resume: refused unless --overwrite,
    # which gives new shards and removes the old ones
    assert cli(["prepare", *args, "--seq-len", "16"]) == 2
    err = capsys.readouterr().err
    assert "seq_len 128 -> 16" in err and "--overwrite" in err and tree_bytes(out) == second
    assert cli(["prepare", *args, "--seq-len", "16", "--overwrite"]) == 0
    new = sorted(p.name for p in out.glob("shard-*"))
    assert len(new) == 3 and not set(new) & set(shards)
    assert PretrainData(out).seq_len == 16


def test_rerun_refuses_other_units_formats_and_fewer_inputs(tmp_path: Path, vocab: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """Besides vocab and settings, what else changes the examples of a finished dataset is refused without
    --overwrite too: another --unit-mb (another grouping of files into units), another format for a file, and an
    input left out (a mistyped glob). An added input file is not: it only builds its own shard."""
    for k in range(3):
        write_docs(tmp_path / f"part{k}.txt", 60, seed=k)
    files = [str(tmp_path / f"part{k}.txt") for k in range(2)]
    out = tmp_path / "ds"
    args = ["--vocab", str(vocab), "--out", str(out), "--unit-mb", "0.005"]
    assert prepare(*files, *args) == 0
    first = tree_bytes(out)
    capsys.readouterr()
    for extra, change in ((["--unit-mb", "1"], "unit_mb 0.005 -> 1.0"),
                          (["--format", "jsonl"], "format of"),
                          ([], "1 input file(s) left out")):
        given = files[:1] if not extra else files
        assert prepare(*given, *args, *extra) == 2
        err = capsys.readouterr().err
        assert change in err and "--overwrite" in err and tree_bytes(out) == first, err
    assert prepare(*files, str(tmp_path / "part2.txt"), *args) == 0
    assert len(PretrainData(out).meta["inputs"]) == 3


def test_files_that_only_look_like_shards_are_the_users(tmp_path: Path, vocab: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "c.txt"
    write_docs(corpus, 20, seed=0)
    for name, make in (("shard-00000-of-00002", Path.mkdir), ("shard-00000-of-00002.tfrecord", Path.touch),
                       (".tmp-notes", Path.touch), ("shard-00000-0123456789abcdef", Path.touch)):
        out = tmp_path / f"out-{name}"
        out.mkdir()
        make(out / name)
        assert prepare(str(corpus), "--vocab", str(vocab), "--out", str(out)) == 2
        assert f"contains {name!r} that is not an electra dataset" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [name]
    # a folder another prepare is writing (it holds the lock): refused by name
    import os

    from electra.data.shards import lock_folder
    held = lock_folder(tmp_path / f"out-{name}", "prepare", note_pid=False)
    try:
        (tmp_path / f"out-{name}" / name).unlink()
        assert prepare(str(corpus), "--vocab", str(vocab), "--out", str(tmp_path / f"out-{name}")) == 2
        assert "another `electra prepare` is writing" in capsys.readouterr().err
    finally:
        os.close(held)


def test_bom_at_the_start_of_a_file_is_not_text(tmp_path: Path, vocab: Path) -> None:
    """A UTF-8 byte-order mark (as Windows editors write) is dropped: the WikiExtractor and JSONL readers still
    see the first line's markup, and the examples are those of the file without the mark."""
    body = {"w.txt": '<doc id="1" url="u" title="gamma">\ngamma\n\n' + "alpha beta delta\n" * 40 + "</doc>\n",
            "j.jsonl": "".join(json.dumps({"text": "epsilon zeta eta\n" * 3}) + "\n" for _ in range(30))}
    for name, text in body.items():
        examples = []
        for prefix in (b"", b"\xef\xbb\xbf"):
            path = tmp_path / f"{len(prefix)}" / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(prefix + text.encode())
            assert prepare(str(path), "--vocab", str(vocab), "--out", str(path.parent / f"ds-{name}")) == 0
            data = PretrainData(path.parent / f"ds-{name}")
            assert data.meta["counts"]["bad_records"] == 0
            examples.append([data.train[i].tolist() for i in range(len(data.train))])
        assert examples[0] == examples[1]
        assert data.meta["counts"]["documents"] == (1 if name == "w.txt" else 30)


def test_unk_rate_is_reported_and_a_bad_fit_warned(tmp_path: Path, vocab: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "c.txt"
    write_docs(corpus, 40, seed=0, capitalize=True)
    assert cli(["prepare", str(corpus), "--vocab", str(vocab), "--out", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr()
    assert "[UNK] word pieces: 0.00%" in out.out and "[UNK];" not in out.err
    # each sentence's first word kept capitalised, for an uncased vocab
    assert cli(["prepare", str(corpus), "--vocab", str(vocab), "--out", str(tmp_path / "cased"), "--no-lowercase"]) == 0
    out = capsys.readouterr()
    counts = PretrainData(tmp_path / "cased").meta["counts"]
    assert 0.02 < counts["unk_tokens"] / counts["tokens_encoded"] < 1
    assert "of the corpus's word pieces are [UNK]; the vocabulary is uncased: drop --no-lowercase" in out.err


def test_words_too_long_to_split_are_named_as_the_cause_of_unk(tmp_path: Path, vocab: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    """Text written without spaces: whole lines are one 'word', over BERT's 200 characters, each one [UNK]
    whatever the vocabulary. The warning says so (and what to do), not 'train a vocabulary'."""
    corpus = tmp_path / "c.txt"
    docs = write_docs(corpus, 40, seed=0)
    lines = [line for d in docs for line in d]
    long = [re.sub(r"\W", "", line) * 60 for line in lines[:30]]  # spaces and punctuation out: over 200 characters
    corpus.write_text("\n\n".join(f"{w}\n{line}" for w, line in zip(long, lines[30:])) + "\n")
    assert cli(["prepare", str(corpus), "--vocab", str(vocab), "--out", str(tmp_path / "ds")]) == 0
    counts = PretrainData(tmp_path / "ds").meta["counts"]
    assert counts["unk_long_words"] == len(long) and counts["unk_tokens"] == len(long)
    err = capsys.readouterr().err
    assert "of the corpus's word pieces are [UNK]; " in err and "are single words over 200 characters" in err
    assert "PyThaiNLP" in err


@pytest.mark.parametrize(("flag", "value"), [("--unit-mb", "nan"), ("--unit-mb", "inf"), ("--unit-mb", "0"),
                                             ("--batch-lines", "0"), ("--max-line-bytes", "3"),
                                             ("--seq-len", "abc")])
def test_option_values_out_of_range(tmp_path: Path, vocab: Path, capsys: pytest.CaptureFixture, flag: str,
                                    value: str) -> None:
    corpus = tmp_path / "c.txt"
    write_docs(corpus, 5, seed=0)
    assert cli(["prepare", str(corpus), "--vocab", str(vocab), "--out", str(tmp_path / "ds"), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert flag in err and len(err.splitlines()) == 1 and not (tmp_path / "ds").exists(), err


def test_one_document_per_file_when_blanks_do_not_separate(tmp_path: Path, vocab: Path) -> None:
    """--no-blanks-separate-docs (the original's OpenWebText builder: a web page per file): blank lines no longer
    end documents, so the file's paragraphs fill examples together; the default's keys are unchanged."""
    write_docs(tmp_path / "c.txt", 60, seed=3)
    runs = {}
    for flag in ([], ["--no-blanks-separate-docs"]):
        out = tmp_path / ("one" if flag else "blank")
        assert cli(["prepare", str(tmp_path / "c.txt"), "--vocab", str(vocab), "--out", str(out), "--seq-len", "64",
                    "--valid-fraction", "0", "--quiet", *flag]) == 0
        runs[bool(flag)] = json.loads((out / "meta.json").read_text())
    assert "blanks_separate_docs" not in runs[False]["settings"]  # datasets made before the option keep their keys
    assert runs[True]["settings"]["blanks_separate_docs"] is False
    assert runs[False]["counts"]["documents"] == 60 and runs[True]["counts"]["documents"] == 1
    # fewer document ends: fewer short examples, fewer examples for the same tokens
    assert runs[True]["counts"]["train"]["examples"] < runs[False]["counts"]["train"]["examples"]


def test_out_folder_inside_corpus_folder_is_not_read_back(tmp_path: Path, vocab: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_docs(corpus / "a.txt", 30, seed=5)
    args = [str(corpus), "--vocab", str(vocab), "--out", str(corpus / "ds")]
    assert prepare(*args) == 0
    first = tree_bytes(corpus / "ds")
    assert prepare(*args) == 0 and tree_bytes(corpus / "ds") == first
    assert [i["path"] for i in PretrainData(corpus / "ds").meta["inputs"]] == [str((corpus / "a.txt").resolve())]


def test_workers_give_identical_bytes(tmp_path: Path, vocab: Path) -> None:
    files = []
    for k in range(3):
        write_docs(tmp_path / f"p{k}.txt", 80, seed=10 + k)
        files.append(str(tmp_path / f"p{k}.txt"))
    common = [*files, "--vocab", str(vocab), "--unit-mb", "0.004"]
    assert prepare(*common, "--out", str(tmp_path / "w1"), "--workers", "1") == 0
    assert prepare(*common, "--out", str(tmp_path / "w2"), "--workers", "2") == 0
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")


def _kill_corpus(tmp_path: Path, vocab: Path) -> list[str]:
    files = []
    for k in range(4):
        write_docs(tmp_path / f"k{k}.txt", 600, seed=20 + k)
        files.append(str(tmp_path / f"k{k}.txt"))
    return [*files, "--vocab", str(vocab), "--unit-mb", "0.05", "--workers", "1"]


def test_sigkill_after_first_shard_then_resume_is_byte_identical(tmp_path: Path, vocab: Path) -> None:
    args = _kill_corpus(tmp_path, vocab)
    run_electra("prepare", *args, "--out", str(tmp_path / "ref"))
    killed = run_electra("prepare", *args, "--out", str(tmp_path / "ds"), env={KILL_HOOK_ENV: "1"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "ds" / "meta.json").exists() and len(list((tmp_path / "ds").glob("shard-*"))) == 1
    with pytest.raises(Exception, match="incomplete"):
        PretrainData(tmp_path / "ds")
    resumed = run_electra("prepare", *args, "--out", str(tmp_path / "ds"))
    assert "reusing 1 finished shard(s) of 4" in resumed.stderr
    assert tree_bytes(tmp_path / "ds") == tree_bytes(tmp_path / "ref")


def test_sigkill_mid_shard_leaves_nothing_a_reader_accepts(tmp_path: Path, vocab: Path) -> None:
    """Killed while the second shard's files are written but not yet committed: the half-built shard is a
    `.tmp-*` folder that no reader accepts, and the next run discards it and ends byte-identical."""
    args = _kill_corpus(tmp_path, vocab)
    run_electra("prepare", *args, "--out", str(tmp_path / "ref"))
    out = tmp_path / "ds"
    killed = run_electra("prepare", *args, "--out", str(out), env={KILL_BEFORE_COMMIT_ENV: "1"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert len(list(out.glob("shard-*"))) == 1 and len(list(out.glob(".tmp-shard-*"))) == 1
    assert any(f.stat().st_size > 0 for f in next(out.glob(".tmp-shard-*")).iterdir())  # its files were written
    with pytest.raises(Exception, match="incomplete"):
        PretrainData(out)
    resumed = run_electra("prepare", *args, "--out", str(out))
    assert "reusing 1 finished shard(s) of 4" in resumed.stderr
    assert not list(out.glob(".tmp-*")) and tree_bytes(out) == tree_bytes(tmp_path / "ref")


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (Linux /proc): a run's workers, wherever they were reparented."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("when", ["after_a_shard", "while_workers_start"])
def test_workers_end_with_a_killed_prepare(tmp_path: Path, vocab: Path, when: str) -> None:
    """A SIGKILLed parallel prepare (as a scheduler's kill or an OOM kill does it) leaves no worker behind to
    go on writing shards into the unlocked folder, whether it dies once a shard is done or while its workers are
    still starting (still importing, before they could look up their parent), and the re-run ends byte-identical."""
    args = [*_kill_corpus(tmp_path, vocab)[:-2], "--workers", "2"]
    run_electra("prepare", *args, "--out", str(tmp_path / "ref"))
    tag = uuid.uuid4().hex  # this run's processes only, whatever else runs on the machine
    env = electra_env({"ELECTRA_TEST_RUN": tag, **({KILL_HOOK_ENV: "1"} if when == "after_a_shard" else {})})
    # Not through pipes: an orphaned worker would hold them open and the call would wait for it.
    proc = subprocess.Popen(electra_argv("prepare", *args, "--out", str(tmp_path / "ds")), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if when == "while_workers_start":
        deadline = time.time() + 60
        while len(_processes_with(f"ELECTRA_TEST_RUN={tag}")) < 3 and time.time() < deadline:
            time.sleep(0.005)  # the parent and its two spawned workers
        time.sleep(0.2)  # they have read what the parent sent them and are importing the package
        proc.kill()
    assert proc.wait(timeout=120) == -signal.SIGKILL
    deadline = time.time() + 10
    while _processes_with(f"ELECTRA_TEST_RUN={tag}") and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_with(f"ELECTRA_TEST_RUN={tag}")
    run_electra("prepare", *args, "--out", str(tmp_path / "ds"))
    assert tree_bytes(tmp_path / "ds") == tree_bytes(tmp_path / "ref")


def test_a_dead_worker_is_a_one_line_error(tmp_path: Path, vocab: Path) -> None:
    args = [*_kill_corpus(tmp_path, vocab)[:-2], "--workers", "2"]
    r = run_electra("prepare", *args, "--out", str(tmp_path / "ds"), env={KILL_BEFORE_COMMIT_ENV: "2"}, check=False)
    assert r.returncode == 2 and "a --workers process died" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("case", ["missing", "blank", "binary", "foreign_out", "bad_vocab", "valid_only"])
def test_bad_input_gives_one_line_error_and_no_output(tmp_path: Path, vocab: Path, case: str,
                                                      capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(sentence(random.Random(0)) + "\n", encoding="utf-8")
    out = tmp_path / "ds"
    extra: list[str] = []
    expect = ""
    if case == "missing":
        corpus = tmp_path / "nope.txt"
        expect = "nope.txt does not exist"
    elif case == "blank":
        corpus.write_text("\n \n\t\n", encoding="utf-8")
        expect = "too small to make one training example"
    elif case == "binary":
        corpus.write_bytes(b"\x00\x01binary" * 50)
        expect = "c.txt is not text"
    elif case == "foreign_out":
        out.mkdir()
        (out / "important.doc").write_text("keep me")
        expect = "not an electra dataset"
    elif case == "bad_vocab":
        vocab = write_vocab(tmp_path / "v2.txt", specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]"))
        expect = "lacks the special token"
    elif case == "valid_only":
        extra = ["--valid-fraction", "1.0"]
        expect = "lower --valid-fraction"
    rc = cli(["prepare", str(corpus), "--vocab", str(vocab), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and expect in err and len(err.splitlines()) == 1, err
    if case == "foreign_out":
        assert sorted(p.name for p in out.iterdir()) == ["important.doc"]
    else:
        assert not out.exists()


def test_parquet_and_zstd_corpora_prepare_into_the_plain_corpus_examples(tmp_path: Path, vocab: Path) -> None:
    """The same documents as plain text, as a Parquet file (one row each) and as zstd-compressed JSON Lines:
    the same training and held-out examples."""
    pa = pytest.importorskip("pyarrow")
    zstandard = pytest.importorskip("zstandard")
    import pyarrow.parquet as pq

    docs = write_grouped(tmp_path / "plain.txt", 40, 3)
    pq.write_table(pa.table({"text": ["\n".join(d) for d in docs]}), tmp_path / "train.parquet", row_group_size=7)
    jsonl = "".join(json.dumps({"text": "\n".join(d)}) + "\n" for d in docs).encode()
    (tmp_path / "corpus.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl))
    rows = {}
    for name in ("plain.txt", "train.parquet", "corpus.jsonl.zst"):
        out = tmp_path / f"ds-{name}"
        assert prepare(str(tmp_path / name), "--vocab", str(vocab), "--out", str(out), "--seq-len", "24",
                       "--valid-fraction", "0.1") == 0
        data = PretrainData(out)
        rows[name] = ([data.train[i].tolist() for i in range(len(data.train))],
                      [data.valid[i].tolist() for i in range(len(data.valid))])
    assert rows["train.parquet"] == rows["plain.txt"] == rows["corpus.jsonl.zst"] and len(rows["plain.txt"][0]) > 20
