#!/usr/bin/env python
"""Data-loader benchmark: `electra.data.dataset.BatchStream` + `collate` alone, no model.

    python benchmarks/bench_loader.py                       # prepares the Wikipedia sample into a temp dir
    python benchmarks/bench_loader.py --data DATASET_DIR --batch 128 --micro 32 --seq-len 128
    python benchmarks/bench_loader.py --micro 128 --unpad --prefetch 2 --step-ms 14.5   # as the GPU loop runs it
    python benchmarks/bench_loader.py --data A B --data-weights 3,1 --steps 600        # a mixture (crosses a block)

Measures, over `--steps` optimizer steps after one warm-up step: seconds per step of `stream.next_step()`
(random access into the memory-mapped shards, padding, masks and segment ids for every micro-batch), and
sequences/s and tokens/s it can feed. Compare with the training step's tokens/s from bench_pretrain.py:
the loader is never the bottleneck while its tokens/s is orders of magnitude above the step's. CPU time
(process time) is reported next to wall time because other jobs share this machine. Last line: JSON.

`--unpad` adds the loop's per-micro-batch host work (`device.host_batch`: the packing of the real tokens);
`--prefetch N --step-ms X` builds in the loop's background thread while the main thread "trains" for X ms a
step (a sleep: the GPU step leaves the CPU free), and then the step time is what the loop waits for data.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WIKI = SHARED / "pretrain" / "enwiki-2015-wikiextractor" / "sample"
VOCAB = SHARED / "vocab" / "vocab.txt"


def prepare(out: Path, seq_len: int) -> Path:
    cmd = [sys.executable, "-m", "electra", "prepare", str(WIKI), "--vocab", str(VOCAB), "--out", str(out),
           "--seq-len", str(seq_len), "--workers", "1", "--quiet"]
    env = dict(os.environ)  # the repository's src first, whatever PYTHONPATH was
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    subprocess.run(cmd, check=True, env=env)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, nargs="+", help="prepared dataset folder (default: prepare the Wikipedia "
                                                         "sample); several: their mixture (data/mixture.py)")
    p.add_argument("--data-weights", help="with several --data: their shares, comma-separated (default: sizes)")
    p.add_argument("--batch", type=int, default=128, help="global batch (sequences per optimizer step)")
    p.add_argument("--micro", type=int, default=32, help="micro-batch")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--unpad", action="store_true", help="also pack each micro-batch (the GPU loop's host work)")
    p.add_argument("--prefetch", type=int, default=0, help="steps built ahead in a background thread")
    p.add_argument("--step-ms", type=float, default=0.0, help="simulated training step between fetches")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from electra.data.dataset import BatchStream, PretrainData
    from electra.device import host_batch
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        roots = args.data or [prepare(Path(tmp) / "ds", args.seq_len)]
        prep_s = time.perf_counter() - t0 if args.data is None else 0.0
        datasets = [PretrainData(r) for r in roots]
        data, rows = datasets[0], datasets[0].train
        if len(datasets) > 1:
            from electra.data.mixture import Mixture
            weights = [float(w) for w in args.data_weights.split(",")] if args.data_weights else [len(x.train) for x in datasets]
            rows = Mixture([x.train for x in datasets], weights)
        stream = BatchStream(rows, args.batch, args.micro, seed=1234, prefetch=args.prefetch,
                             transform=lambda b: host_batch(b, args.unpad, pin=False)[0])
        stream.next_step()  # warm: opens the shards, first permutation
        wall, cpu = [], []
        real = 0
        for _ in range(args.steps):
            w0, c0 = time.perf_counter(), time.process_time()
            batches = stream.next_step()
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            real += sum(int(b.attention_mask.sum()) for b in batches)
            if args.step_ms:
                time.sleep(args.step_ms / 1e3)
        stream.close()
        n_tokens = args.batch * data.seq_len
        med = statistics.median(wall)
        res = {"examples": len(rows), "datasets": len(datasets), "seq_len": data.seq_len, "batch": args.batch, "micro": args.micro,
               "steps": args.steps, "step_wall_median_s": med, "step_wall_max_s": max(wall),
               "step_cpu_median_s": statistics.median(cpu), "sequences_per_s": args.batch / med,
               "tokens_per_s": n_tokens / med, "tokens_per_cpu_s": n_tokens / statistics.median(cpu),
               "real_token_fraction": real / (n_tokens * args.steps), "prepare_s": prep_s,
               "unpad": args.unpad, "prefetch": args.prefetch, "simulated_step_ms": args.step_ms}
    print(f"# BatchStream + collate{' + pack' if args.unpad else ''}: {res['examples']} examples of {res['seq_len']} "
          f"tokens, global batch {args.batch} = {args.batch // args.micro} x {args.micro}"
          + (f" | prefetch {args.prefetch}, {args.step_ms} ms simulated step" if args.prefetch or args.step_ms else ""))
    print(f"step: median {med * 1e3:.2f} ms wall ({res['step_cpu_median_s'] * 1e3:.2f} ms CPU), max "
          f"{max(wall) * 1e3:.2f} ms | {res['sequences_per_s']:,.0f} sequences/s | {res['tokens_per_s']:,.0f} "
          f"tokens/s ({res['tokens_per_cpu_s']:,.0f} per CPU-second) | {res['real_token_fraction']:.1%} real tokens")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
