"""How well `electra prepare --dedup` and `--near-dup J` find repeated documents, and what the pass costs.

    python benchmarks/bench_dedup.py [FILE] [--vocab VOCAB] [--workers N] [--near-dup 0.8]

Takes a WikiExtractor file (default: ../shared/data/pretrain/enwiki-2015-wikiextractor/enwiki_AA.txt.gz) and
writes beside it, into a temporary folder, a "mirror" of a seeded fifth of its documents, as a crawl would have
them: 5% verbatim, 5% lightly edited (one word in 200 replaced, a footer line added: near copies), 5% with only
their first quarter kept and 5% rewritten (one word in three replaced): not copies. Then prepares the original
plus the mirror three times (no dedup, --dedup, --near-dup J) and prints, per mode, the documents left out, the
duplicate pass's seconds (from prepare's own log) and the wall time, and how many mirror documents are at
Jaccard >= J to their source (computed exactly: what --near-dup should find). Last line: JSON.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from electra.data.corpus import DEFAULT_MAX_LINE_BYTES
from electra.data.dedup import fingerprints, near_repeats
from electra.data.inputs import detect_file

REPO = Path(__file__).resolve().parents[1]
WIKI = REPO.parent / "shared" / "data" / "pretrain" / "enwiki-2015-wikiextractor"
DOC = re.compile(r"(<doc [^>]*>\n)(.*?)(</doc>\n)", re.DOTALL)
KINDS = ("verbatim", "edited", "truncated", "rewritten")


def jaccard(a: str, b: str, k: int = 5) -> float:
    """What --near-dup estimates: the Jaccard similarity of the two texts' sets of k-word shingles (lower-cased)."""
    def shingles(text: str) -> set[tuple[str, ...]]:
        w = text.lower().split()
        return {tuple(w[i:i + k]) for i in range(max(1, len(w) - k + 1))}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


def mirror(text: str, seed: int) -> tuple[str, dict[str, int], list[float]]:
    """The mirror file's text, how many documents of each kind it holds, and each one's Jaccard similarity to
    the document it copies."""
    rng = random.Random(seed)
    out, counts, similarity = [], dict.fromkeys(KINDS, 0), []
    for head, body, tail in DOC.findall(text):
        r = rng.random()
        if r >= 0.2:
            continue
        kind = KINDS[int(r / 0.05)]
        words = body.split(" ")
        if kind == "edited":
            words = [f"x{rng.randrange(10**6)}" if rng.random() < 0.005 else w for w in words]
            words.append("\nRetrieved from the mirror on 2015-03-0" + str(rng.randrange(10)) + ".\n")
        elif kind == "truncated":
            words = words[:len(words) // 4]
        elif kind == "rewritten":
            words = [f"x{rng.randrange(10**6)}" if rng.random() < 0.33 else w for w in words]
        copy = " ".join(words).rstrip("\n")
        text, copied = body.partition("\n")[2], copy.partition("\n")[2]  # as read: the title line is not text
        if not copied.strip():  # nothing but a title: the reader has no document to compare
            continue
        out.append(head + copy + "\n" + tail)
        counts[kind] += 1
        similarity.append(jaccard(text, copied))
    return "".join(out), counts, similarity


def decisions(original: Path, copy: Path, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """What --near-dup decides, from dedup.py's own functions: the ordinals of the original's documents that
    nearly repeat an earlier one of it, and of the mirror's that do (its copies, found)."""
    prints = [fingerprints([detect_file(f)], "text", DEFAULT_MAX_LINE_BYTES, True, near=True) for f in (original, copy)]
    found = near_repeats([p.near for p in prints], threshold)
    if len(prints[1].exact) != len(DOC.findall(copy.read_text(encoding="utf-8"))):
        sys.exit(f"{copy}: the reader's documents are not the file's <doc> elements; the confusion cannot be counted")
    return found[0], found[1]


def prepare(files: list[Path], vocab: Path, out: Path, workers: int, flags: list[str]) -> tuple[dict, float, str]:
    t0 = time.time()
    run = subprocess.run([sys.executable, "-m", "electra", "prepare", *map(str, files), "--vocab", str(vocab),
                          "--out", str(out), "--workers", str(workers), "--seq-len", "128", *flags],
                         check=False, capture_output=True, text=True)
    if run.returncode:
        sys.exit(run.stderr)
    log = next((line for line in run.stderr.splitlines() if "documents repeat" in line), "")
    return json.loads((out / "meta.json").read_text()), time.time() - t0, log


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path, nargs="?", default=WIKI / "enwiki_AA.txt.gz")
    p.add_argument("--vocab", type=Path, default=REPO.parent / "shared" / "data" / "vocab" / "vocab.txt")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--near-dup", default="0.8")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    opener = gzip.open if a.file.suffix == ".gz" else open
    with opener(a.file, "rt", encoding="utf-8") as f:
        text = f.read()
    mirrored, counts, similarity = mirror(text, a.seed)
    above = sum(j >= float(a.near_dup) for j in similarity)
    result = {"file": str(a.file), "documents": len(DOC.findall(text)), "mirror": counts,
              "mirror_at_or_above_near_dup": above}
    print(f"{a.file.name}: {result['documents']:,} documents; mirror: {counts}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mirror").mkdir()
        copy = Path(tmp) / "mirror" / "mirror.txt"
        copy.write_text(mirrored, encoding="utf-8")
        for name, flags in (("none", []), ("exact", ["--dedup"]), ("near", ["--near-dup", a.near_dup])):
            meta, seconds, log = prepare([a.file, copy], a.vocab, Path(tmp) / name, a.workers, flags)
            left_out = meta["counts"].get("duplicate_documents", 0)
            took = re.search(r"\(([\d.]+)s\)$", log)
            result[name] = {"left_out": left_out, "pass_s": float(took.group(1)) if took else 0.0,
                            "wall_s": round(seconds, 1), "train_tokens": meta["counts"]["train"]["tokens"]}
            print(f"{name:>5}: {left_out:,} documents left out, duplicate pass {result[name]['pass_s']:.1f}s, "
                  f"prepare {seconds:.1f}s, {meta['counts']['train']['tokens']:,} train tokens")
        within, found = decisions(a.file, copy, float(a.near_dup))
    sim = np.array(similarity)
    hit = np.zeros(len(sim), dtype=bool)
    hit[found] = True
    j = float(a.near_dup)
    bands = [(1.0, 1.01), (0.9, 1.0), (j, 0.9), (j - 0.1, j), (0.0, j - 0.1)]
    result["near_by_jaccard"] = {f"[{lo:.2f}, {hi:.2f})": [int(hit[(sim >= lo) & (sim < hi)].sum()),
                                                          int(((sim >= lo) & (sim < hi)).sum())] for lo, hi in bands}
    result["near_within_original"] = len(within)
    print(f"--near-dup {a.near_dup} by the mirror documents' exact Jaccard to their source (found / there): "
          + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in result["near_by_jaccard"].items())
          + f"; and {len(within)} documents of the original itself nearly repeat an earlier one of it")
    copies = counts["verbatim"] + counts["edited"]
    print(f"copies in the mirror {copies:,} (verbatim {counts['verbatim']:,} + edited {counts['edited']:,}); "
          f"not copies {counts['truncated'] + counts['rewritten']:,}; at Jaccard >= {a.near_dup} to their source "
          f"(5-word shingles, computed exactly): {above:,}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
