"""Corpus reading: formats, detection, folders/globs, bad input, streaming (issue 2, point 1)."""
from __future__ import annotations

import gzip
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from electra.data.corpus import ReadStats, iter_corpus, iter_units
from electra.data.inputs import detect_file, expand_inputs, resolve_corpus
from electra.errors import UserError


def units_of(path: Path, fmt: str | None = None, **kw) -> tuple[list[str], ReadStats]:
    stats = ReadStats()
    cf = detect_file(path, fmt)
    assert cf is not None
    return list(iter_units(cf, stats, **kw)), stats


def docs_of(units: list[str]) -> list[list[str]]:
    docs, cur = [], []
    for u in units:
        if u:
            cur.append(u)
        else:
            docs.append(cur)
            cur = []
    assert not cur, "every document must end with a boundary"
    return docs


def test_plain_text_blank_lines_separate_documents(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("\n\n  first line  \nsecond\r\n\n\n\nthird\n   \nfourth", encoding="utf-8")
    units, stats = units_of(p)
    assert docs_of(units) == [["first line", "second"], ["third"], ["fourth"]]
    assert stats.documents == 3 and stats.lines == 10


def test_gzip_detected_by_magic_bytes_not_name(tmp_path: Path) -> None:
    p = tmp_path / "corpus.dat"  # no .gz suffix
    p.write_bytes(gzip.compress(b"one\ntwo\n\nthree\n"))
    cf = detect_file(p)
    assert cf is not None and cf.codec == "gzip" and cf.fmt == "text"
    units, _ = units_of(p)
    assert docs_of(units) == [["one", "two"], ["three"]]
    q = tmp_path / "plain.gz"  # a .gz name on plain text is read as plain text
    q.write_text("x y\n", encoding="utf-8")
    assert detect_file(q).codec == "" and docs_of(units_of(q)[0]) == [["x y"]]


def test_jsonl_text_field_and_record_boundaries(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    recs = [{"body": "a1\na2\n\na3", "id": 1}, {"body": "b1"}, {"other": "x"}, {"body": 5}]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\nnot json\n\n", encoding="utf-8")
    units, stats = units_of(p, text_field="body")
    assert docs_of(units) == [["a1", "a2"], ["a3"], ["b1"]]
    assert stats.bad_records == 3
    assert stats.per_file_warnings == [(f"{p}: 3 JSON line(s) skipped (1 not valid JSON, 2 without a string field "
                                        f"'body'; first at line 3); use --text-field to pick the right field")]
    (tmp_path / "broken.jsonl").write_text('{"text": "fine"}\n{"text": "cut sh\n', encoding="utf-8")
    assert units_of(tmp_path / "broken.jsonl")[1].per_file_warnings[0].endswith(
        "1 JSON line(s) skipped (1 not valid JSON; first at line 2); fix or remove them")
    (tmp_path / "prose.jsonl").write_text("plain text\nnamed .jsonl\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"prose.jsonl: none of its 2 lines is valid JSON; if it is plain text, pass "
                                        r"--format text"):
        units_of(tmp_path / "prose.jsonl")
    with pytest.raises(UserError, match="text-field"):
        units_of(p, text_field="missing")
    # .json is JSON Lines too, and --format forces JSONL on any name; gzip'd JSONL works
    q = tmp_path / "d.json.gz"
    q.write_bytes(gzip.compress(b'{"text": "t1"}\n{"text": "t2"}\n'))
    assert detect_file(q).fmt == "jsonl" and docs_of(units_of(q)[0]) == [["t1"], ["t2"]]
    arr = tmp_path / "arr.json"
    arr.write_text('[{"text": "a"},\n{"text": "b"}]\n', encoding="utf-8")
    with pytest.raises(UserError, match="arr.json is a JSON array"):
        units_of(arr)
    r = tmp_path / "e.data"
    r.write_text('{"text": "z"}\n', encoding="utf-8")
    assert docs_of(units_of(r, "jsonl")[0]) == [["z"]]


def test_wikiextractor_markup_and_title_dropped(tmp_path: Path) -> None:
    p = tmp_path / "wiki_00"
    p.write_text('<doc id="1" url="u" title="Anarchism">\nAnarchism\n\nAnarchism is a philosophy.\n'
                 'Etymology.\n</doc>\n<doc id="2" url="u" title="AT&amp;T">\nAT&amp;T\n\nA company.\n</doc>\n'
                 '<doc id="3" url="u" title="Empty">\nEmpty\n\n</doc>\n', encoding="utf-8")
    assert detect_file(p).fmt == "wiki"
    units, stats = units_of(p)
    assert docs_of(units) == [["Anarchism is a philosophy.", "Etymology."], ["A company."]]
    assert stats.documents == 2
    # forcing plain text keeps the markup as text
    assert "Anarchism" in units_of(p, "text")[0]


def test_folders_globs_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.txt", "d/a.txt", "d/sub/c.txt", "d/.hidden"):
        (tmp_path / name).write_text(name + "\n", encoding="utf-8")
    got = expand_inputs([tmp_path / "d"])
    assert [p.name for p in got] == ["a.txt", "b.txt", "c.txt"]
    assert [p.name for p in expand_inputs([str(tmp_path / "d" / "*.txt"), tmp_path / "d" / "a.txt"])] == ["a.txt", "b.txt"]
    with pytest.raises(UserError, match="does not exist"):
        expand_inputs([tmp_path / "nope.txt"])
    os.mkfifo(tmp_path / "pipe")  # what `<(zcat corpus.gz)` passes: read once only, so refused with the fix
    with pytest.raises(UserError, match="not a regular file"):
        expand_inputs([tmp_path / "pipe"])
    with pytest.raises(UserError, match="matches no files"):
        expand_inputs([str(tmp_path / "*.zzz")])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match="no files"):
        expand_inputs([tmp_path / "empty_dir"])


def test_links_a_folder_walk_skips_are_named(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.txt").write_text("e\n")
    (tmp_path / "d" / "a.txt").write_text("a\n")
    (tmp_path / "d" / "to_a.txt").symlink_to(tmp_path / "d" / "a.txt")  # a link to a file: read like one
    (tmp_path / "d" / "to_folder").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "d" / "broken.txt").symlink_to(tmp_path / "gone.txt")
    warned: list[str] = []
    got = expand_inputs([tmp_path / "d"], warned.append)
    assert [p.name for p in got] == ["a.txt"]  # the link to a.txt resolves to the file already listed
    assert len(warned) == 1 and warned[0].startswith("2 link(s) in corpus folder") and "broken.txt" in warned[0]


def test_a_jsonl_record_split_by_the_line_limit_says_so(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"text": "word " * 400}) + "\n" + json.dumps({"text": "short"}) + "\n")
    units, stats = units_of(p, max_line_bytes=16)  # 64 x 16 bytes per JSON line
    assert units == ["short", ""] and stats.split_lines >= 1
    assert "raise --max-line-bytes" in stats.per_file_warnings[0]


def test_empty_and_binary_files(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "empty.gz").write_bytes(gzip.compress(b""))
    (tmp_path / "ok.txt").write_text("hello\n", encoding="utf-8")
    warnings: list[str] = []
    files = resolve_corpus([tmp_path / "empty.txt", tmp_path / "empty.gz", tmp_path / "ok.txt"], warn=warnings.append)
    assert [f.path.name for f in files] == ["ok.txt"]
    assert len(warnings) == 2 and "empty.txt" in warnings[0] and "empty" in warnings[0]
    with pytest.raises(UserError, match="no non-empty files"):
        resolve_corpus([tmp_path / "empty.txt"], warn=warnings.append)
    (tmp_path / "model.bin").write_bytes(b"\x7fELF\x00\x01\x02" * 100)
    with pytest.raises(UserError, match=r"model\.bin is not text"):
        resolve_corpus([tmp_path / "model.bin"])
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(UserError, match="bad.gz"):
        resolve_corpus([tmp_path / "bad.gz"])
    for encoding in ("utf-16", "utf-16-le", "utf-16-be"):  # with a byte-order mark, and without either way
        (tmp_path / "u16.txt").write_bytes("two lines of text\nin UTF-16, said so\n".encode(encoding))
        with pytest.raises(UserError, match=r"u16\.txt is UTF-16 text; convert it to UTF-8 first \(iconv -f UTF-16"):
            resolve_corpus([tmp_path / "u16.txt"])


def test_invalid_utf8_replaced_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "latin1.txt"
    p.write_bytes("café ok\n".encode("latin-1") + b"\xff\xfe x\nfine\n")
    units, stats = units_of(p)
    assert units[:3] == ["caf\ufffd ok", "\ufffd\ufffd x", "fine"]
    assert stats.replaced_bytes == 3
    assert any("3 invalid UTF-8" in w and "latin1.txt" in w and "iconv -f LATIN1" in w for w in stats.per_file_warnings)
    p.write_bytes(b"a stray \xff byte in a long file\n" + b"plain text\n" * 200)  # 1 in 2,000: a damaged line
    assert [w.endswith("1 invalid UTF-8 byte(s) replaced by U+FFFD") for w in units_of(p)[1].per_file_warnings] == [True]


def test_absurdly_long_lines_are_split_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "long.txt"
    word = "é" * 3 + " "  # multi-byte characters must never be cut in half
    p.write_text("short\n" + word * 20000 + "\nend\n", encoding="utf-8")
    units, stats = units_of(p, max_line_bytes=4096)
    assert units[0] == "short" and units[-2:] == ["end", ""]
    pieces = units[1:-2]
    assert len(pieces) > 10 and stats.split_lines == len(pieces) - 1
    assert all(len(u.encode()) <= 4096 + 7 for u in pieces)
    assert "".join(pieces).replace(" ", "") == "é" * 60000 and stats.replaced_bytes == 0
    nospace = tmp_path / "nospace.txt"
    nospace.write_text("é" * 10000 + "\n", encoding="utf-8")
    units, stats = units_of(nospace, max_line_bytes=1000)
    assert "".join(units) == "é" * 10000 and stats.replaced_bytes == 0


def test_streaming_memory_does_not_grow_with_corpus(tmp_path: Path) -> None:
    p = tmp_path / "big.txt"
    line = ("lorem ipsum dolor sit amet " * 8 + "\n").encode()
    with open(p, "wb") as f:
        f.writelines(line if i % 7 else b"\n" for i in range(40000))  # ~7.5 MB
    gz = tmp_path / "big.txt.gz"
    gz.write_bytes(gzip.compress(p.read_bytes(), compresslevel=1))
    huge = tmp_path / "one_line.txt"
    huge.write_bytes(b"x" * (6 << 20))
    files = resolve_corpus([p, gz, huge])
    stats = ReadStats()
    tracemalloc.start()
    n = sum(1 for _ in iter_corpus(files, stats, max_line_bytes=64 << 10))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n > 60000 and stats.bytes_read > 20_000_000
    assert peak < 2_000_000, f"peak traced memory {peak} bytes while streaming 21 MB"


def test_blanks_separate_docs_off_makes_a_file_or_record_one_document(tmp_path: Path) -> None:
    p = tmp_path / "page.txt"
    p.write_text("a b\n\nc d\n\n\ne f\n", encoding="utf-8")
    assert docs_of(units_of(p)[0]) == [["a b"], ["c d"], ["e f"]]
    assert docs_of(units_of(p, blanks_separate_docs=False)[0]) == [["a b", "c d", "e f"]]
    q = tmp_path / "pages.jsonl"
    q.write_text(json.dumps({"text": "x\n\ny"}) + "\n" + json.dumps({"text": "z"}) + "\n", encoding="utf-8")
    assert docs_of(units_of(q)[0]) == [["x"], ["y"], ["z"]]
    assert docs_of(units_of(q, blanks_separate_docs=False)[0]) == [["x", "y"], ["z"]]


def _compress(codec: str, data: bytes) -> bytes:
    import bz2
    import lzma
    if codec == "gzip":
        return gzip.compress(data)
    if codec == "bzip2":
        return bz2.compress(data)
    if codec == "xz":
        return lzma.compress(data)
    return pytest.importorskip("zstandard").ZstdCompressor().compress(data)


@pytest.mark.parametrize("codec", ["gzip", "bzip2", "xz", "zstd"])
@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz", "corpus.jsonl.bz2", "corpus.jsonl.xz",
                                  "corpus.jsonl.zst", "corpus.bin"])
def test_every_codec_reads_as_the_plain_file(tmp_path: Path, codec: str, name: str) -> None:
    """By magic bytes, whatever the suffix; a compressed name still says JSON Lines (.bin is read as text)."""
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(json.dumps({"text": t}) for t in ["a1\na2\n\na3", "b1 é"]) + "\n", encoding="utf-8")
    packed = tmp_path / name
    packed.write_bytes(_compress(codec, plain.read_bytes()))
    cf = detect_file(packed)
    assert cf.codec == codec and cf.fmt == ("text" if name.endswith(".bin") else "jsonl")
    if cf.fmt == "jsonl":
        assert units_of(packed) == units_of(plain)
    else:
        assert units_of(packed)[0] == units_of(plain, "text")[0]


def test_zstd_reads_every_frame_and_suffixes_ignore_case(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    c = zstandard.ZstdCompressor()
    p = tmp_path / "PARTS.JSONL.ZST"  # two frames, as `zstd -T0` and pzstd write; an upper-case name
    p.write_bytes(c.compress(b'{"text": "one"}\n') + c.compress(b'{"text": "two"}\n'))
    cf = detect_file(p)
    assert cf.fmt == "jsonl" and docs_of(units_of(p)[0]) == [["one"], ["two"]]


@pytest.mark.parametrize("codec", ["gzip", "bzip2", "xz", "zstd"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_a_truncated_compressed_file_is_a_one_line_error(tmp_path: Path, codec: str, keep: float) -> None:
    """Cut short (a download that stopped), inside the first block or the last: never read as if whole, nor as
    an empty file. (zstandard's own stream reader returns what it has without a word.)"""
    p = tmp_path / f"c.txt.{codec}"
    whole = _compress(codec, "\n".join(" ".join(str(i * j) for j in range(20)) for i in range(20000)).encode())
    p.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(UserError, match=rf"c.txt.{codec}: (cannot read|read failed)") as e:
        units_of(p)
    assert "\n" not in str(e.value)


def test_zstd_without_its_package_names_the_package(tmp_path: Path, monkeypatch) -> None:
    import importlib

    p = tmp_path / "c.txt.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError(name)) if name == "zstandard" else real(name, *a))
    with pytest.raises(UserError, match=r"c.txt.zst is zstd-compressed: reading it needs the zstandard package"):
        detect_file(p)


def _parquet(path: Path, columns: dict) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table(columns), path, row_group_size=2)
    return path


def test_parquet_rows_are_documents(tmp_path: Path) -> None:
    p = _parquet(tmp_path / "train-00000.parquet", {"id": [1, 2, 3, 4, 5],
                                                    "text": ["a1\na2\n\na3", None, "b1", "", "c1\nc2"]})
    cf = detect_file(p)
    assert cf.fmt == "parquet" and cf.codec == ""
    units, stats = units_of(p)
    assert docs_of(units) == [["a1", "a2"], ["a3"], ["b1"], ["c1", "c2"]]
    assert stats.lines == 5 and stats.bad_records == 1 and "1 row(s) without a string 'text'" in stats.per_file_warnings[0]
    assert detect_file(p, "parquet").fmt == "parquet"
    with pytest.raises(UserError, match=r"no column 'body' \(it has id, text\); use --text-field"):
        units_of(p, text_field="body")
    with pytest.raises(UserError, match="no row has a string in column 'id'"):
        units_of(p, text_field="id")
    t = tmp_path / "a.txt"
    t.write_text("x\n", encoding="utf-8")
    with pytest.raises(UserError, match="a.txt is not a Parquet file"):
        detect_file(t, "parquet")
