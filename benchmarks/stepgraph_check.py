#!/usr/bin/env python
"""Checks `--compile-mode step-graph` (electra.device.StepGraph) on CUDA: the same model, batches and seeds trained
for a few steps as the compiled step and as the replayed whole-step graph must give the same losses (to bf16
kernel nondeterminism).

    python benchmarks/stepgraph_check.py --load-inputs inputs_b128.pt [--preset small] [--steps 12]
"""
from __future__ import annotations

import argparse
import sys

import torch
from pretrain_steps import ROOT, OursStep, load_inputs

sys.path.insert(0, str(ROOT / "src"))
from electra.config import build_config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--load-inputs", required=True)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--lr", default="1e-12", help="peak learning rate; the default all but freezes the weights, so that "
                   "every step compares the two on the same weights (trajectories of a real rate diverge chaotically)")
    args = p.parse_args()
    data = load_inputs(args.load_inputs)
    device = torch.device("cuda")
    batches = [tuple(t.to(device) for t in b) for b in data["batches"]]
    B, T = batches[0][0].shape
    cfg = build_config(args.preset, {"seq_len": str(T), "micro_batch_size": str(B), "global_batch_size": str(B),
                                      "lr": args.lr})
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    curves = {}
    for mode in ("compile-bf16", "stepgraph-bf16"):
        step = OursStep(cfg, data["special"], device, mode, "off")  # both padded, as the graph
        losses = []
        for i in range(args.steps):
            loss, norm = step(batches[i % len(batches)], i, autocast)
            losses.append((float(loss), float(norm)))
        curves[mode] = losses
        print(mode, " ".join(f"{x:.4f}/{n:.3f}" for x, n in losses), flush=True)
    worst = max(abs(a[0] - b[0]) / abs(a[0]) for a, b in zip(*curves.values()))
    print(f"largest relative loss difference: {worst:.2e} ({'ok' if worst < 2e-2 else 'MISMATCH'})")
    return 0 if worst < 2e-2 else 1


if __name__ == "__main__":
    sys.exit(main())
