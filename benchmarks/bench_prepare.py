"""Benchmark `electra prepare` on the Wikipedia shards: wall time, MB/s of raw text, tokens/s, peak RSS.

    python benchmarks/bench_prepare.py [FILES...] [--vocab VOCAB] [--seq-len 128] [--workers N] [--out DIR]

Defaults: ../shared/data/pretrain/enwiki-2015-wikiextractor/enwiki_A{A,B,C}.txt.gz (~308 MB raw text,
~65 M word pieces) with the BERT uncased vocab, seq-len 128, into a temporary folder (deleted).
`electra prepare` runs as a subprocess; peak RSS is the largest sum over the whole process tree
(sampled every 20 ms from /proc), next to the kernel's max RSS of the largest single process.
tokens/s counts every word piece the tokenizer produced (the builder later drops overflow).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
WIKI = SHARED / "pretrain" / "enwiki-2015-wikiextractor"
DEFAULT_FILES = [WIKI / f"enwiki_A{c}.txt.gz" for c in "ABC"]


def tree_rss_bytes(root_pid: int) -> int:
    """Sum of VmRSS over `root_pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            ppid = int(fields["PPid"])
            children.setdefault(ppid, []).append(int(d))
            rss[int(d)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        except (OSError, ValueError, KeyError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", default=[str(f) for f in DEFAULT_FILES])
    p.add_argument("--vocab", default=str(SHARED / "vocab" / "vocab.txt"))
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--workers", type=int, default=None, help="default: electra prepare's own default")
    p.add_argument("--out", default=None, help="dataset folder (default: a temporary one, deleted)")
    a = p.parse_args()
    missing = [f for f in a.files if not Path(f).exists()]
    if missing:
        print(f"bench_prepare: missing input {missing[0]} (the shared data folder lives at {SHARED})", file=sys.stderr)
        return 2
    tmp = None if a.out else tempfile.mkdtemp(prefix="bench_prepare_")
    out = Path(a.out) if a.out else Path(tmp) / "ds"
    cmd = [sys.executable, "-m", "electra", "prepare", *a.files, "--vocab", a.vocab, "--seq-len", str(a.seq_len),
           "--out", str(out)]
    if a.workers is not None:
        cmd += ["--workers", str(a.workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print("command:", " ".join(cmd), flush=True)
    load_before = os.getloadavg()
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_bytes(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    sampler.join()
    if rc != 0:
        print(f"bench_prepare: electra prepare failed with exit code {rc}", file=sys.stderr)
        return rc
    meta = json.loads((out / "meta.json").read_text())
    c = meta["counts"]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    max_single = usage.ru_maxrss * 1024
    cpu = usage.ru_utime + usage.ru_stime
    kept = c["train"]["tokens"] + c["valid"]["tokens"]
    print(f"wall time:         {wall:.1f} s")
    print(f"raw text:          {c['bytes_read'] / 1e6:.1f} MB -> {c['bytes_read'] / 1e6 / wall:.2f} MB/s")
    print(f"tokens (tokenized): {c['tokens_encoded'] / 1e6:.2f} M -> {c['tokens_encoded'] / wall / 1e6:.3f} M tokens/s")
    print(f"tokens in examples: {kept / 1e6:.2f} M ({c['train']['examples'] + c['valid']['examples']} examples, "
          f"{c['valid']['examples']} held out)")
    print(f"peak RSS:          {peak[0] / 2**20:.0f} MiB (process tree, sampled); "
          f"{max_single / 2**20:.0f} MiB (largest single process)")
    print(f"CPU time:          {cpu:.1f} s user+sys ({cpu / wall:.2f} cores busy on average, {os.cpu_count()} cores)")
    print(f"load average:      {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
          "(other work on the machine slows the wall time)")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
