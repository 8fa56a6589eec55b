"""Real data: WikiExtractor sample + BERT vocab -> round trip, document boundaries, measured fractions."""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
from data_helpers import BERT_VOCAB, WIKI

from electra.cli import main as cli
from electra.data.builder import FLAG_ONE_SEGMENT, FLAG_SHORT_TARGET, FLAG_SINGLE_SEGMENT, split_segments
from electra.data.dataset import PretrainData
from electra.data.shards import read_flags
from electra.data.tokenizer import load_tokenizer

SAMPLE = WIKI / "sample"
pytestmark = pytest.mark.skipif(not (SAMPLE / "wiki_00").is_file() or not BERT_VOCAB.is_file(),
                                reason="shared data (../shared/data) not available")


def wiki_documents(path: Path) -> list[list[str]]:
    """An independent reading of WikiExtractor output: article lines without markup and title."""
    docs = []
    for m in re.finditer(r'<doc [^>]*title="([^"]*)"[^>]*>\n(.*?)</doc>', path.read_text(encoding="utf-8"), re.DOTALL):
        lines = [ln.strip() for ln in m.group(2).split("\n") if ln.strip()]
        if lines and lines[0] == html.unescape(m.group(1)):
            lines = lines[1:]
        if lines:
            docs.append(lines)
    return docs


def match_example(a: list[int], b: list[int], sentences: list[list[int]], start: int) -> bool:
    """Can consecutive sentences from `start` be dealt, each whole and in order, into A and B (the last of
    each possibly truncated), as ELECTRA's rule 3 does?"""
    pa = pb = 0
    i = start
    while (pa < len(a) or pb < len(b)) and i < len(sentences):
        s = sentences[i]
        i += 1
        if not s:
            continue
        if pa < len(a) and a[pa:pa + len(s)] == s[:len(a) - pa]:
            pa += len(s)
        elif pb < len(b) and b[pb:pb + len(s)] == s[:len(b) - pb]:
            pb += len(s)
        else:
            return False
    return pa >= len(a) and pb >= len(b)


def test_wiki_sample_round_trip_and_document_boundaries(tmp_path: Path) -> None:
    wiki = SAMPLE / "wiki_00"
    assert cli(["prepare", str(wiki), "--vocab", str(BERT_VOCAB), "--seq-len", "128", "--out", str(tmp_path / "ds"),
                "--quiet"]) == 0
    data = PretrainData(tmp_path / "ds", vocab_path=BERT_VOCAB)
    tok = load_tokenizer(data.vocab_path)
    docs = wiki_documents(wiki)
    assert data.meta["counts"]["documents"] == len(docs)
    # decoding a tokenized line gives back its text, modulo BERT normalisation (case, accents, spacing)
    nospace = re.compile(r"\s+")
    checked = 0
    for line in (ln for d in docs for ln in d):
        ids = tok.encode(line, add_special_tokens=False).ids
        if 100 not in ids:  # [UNK] cannot round-trip
            want = nospace.sub("", tok.normalizer.normalize_str(line))
            assert nospace.sub("", tok.decode(ids)) == want
            checked += 1
    assert checked > 0.95 * sum(map(len, docs))
    # every example = whole sentences of ONE document, in order, dealt into A and B; nothing else
    doc_sents = [tok.encode_batch_fast(d, add_special_tokens=False) for d in docs]
    doc_sents = [[e.ids for e in encs] for encs in doc_sents]
    starts: dict[int, list[tuple[int, int]]] = {}
    for di, sents in enumerate(doc_sents):
        for si, s in enumerate(sents):
            if s:
                starts.setdefault(s[0], []).append((di, si))
    n = 0
    for split in (data.train, data.valid):
        for i in range(len(split)):
            x = split[i].tolist()
            assert x[0] == data.special.cls and x[-1] == data.special.sep and len(x) <= 128
            a, b = split_segments(x, data.special.sep)
            assert any(match_example(a, b, doc_sents[di], si) for di, si in starts.get(a[0], [])), \
                f"example {i} is not whole in-order sentences of one document: {tok.decode(x)[:200]}"
            n += 1
    print(f"\nwiki_00: {n} examples matched to single documents")


def test_wiki_sample_measured_fractions(tmp_path: Path) -> None:
    """The 10% single-segment and 5% short-target draws, measured on the five sample files (~5.5k examples)."""
    assert cli(["prepare", str(SAMPLE), "--vocab", str(BERT_VOCAB), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    data = PretrainData(tmp_path / "ds")
    flags = np.concatenate([read_flags(tmp_path / "ds" / s["name"], "train") for s in data.meta["shards"]])
    assert len(flags) == len(data.train) > 4000
    single = float(np.mean(flags & FLAG_SINGLE_SEGMENT > 0))
    short = float(np.mean(flags & FLAG_SHORT_TARGET > 0))
    no_b = float(np.mean(flags & FLAG_ONE_SEGMENT > 0))
    print(f"\nsample: {len(flags)} train examples; single-segment draws {100 * single:.2f}% (setting 10%), "
          f"short-target examples {100 * short:.2f}% (setting 5%), examples without B {100 * no_b:.2f}%")
    assert abs(single - 0.10) <= 0.02 and abs(short - 0.05) <= 0.02
    # the draw is honoured: single-segment examples have no B; flags agree with the stored tokens
    sep = data.special.sep
    for i in np.flatnonzero(flags)[:500]:
        row = data.train[int(i)].tolist()
        assert (row.count(sep) == 1) == bool(flags[i] & FLAG_ONE_SEGMENT)
        if flags[i] & FLAG_SINGLE_SEGMENT:
            assert row.count(sep) == 1
