#!/usr/bin/env python
"""Training-step benchmark: this project's `Electra` step against the common PyTorch peer setup, side by side.

    python benchmarks/bench_pretrain.py --preset small --batch 32 --seq-len 128 --modes fp32,bf16
    python benchmarks/bench_pretrain.py --preset small --modes compile-bf16 --steps 5
    python benchmarks/bench_pretrain.py --preset tiny --env stock,malloc      # both allocator settings
    python benchmarks/bench_pretrain.py --profile ours --modes bf16           # + a torch.profiler table

"peer" = Hugging Face `transformers` `ElectraForMaskedLM` (generator) + `ElectraForPreTraining`
(discriminator), embeddings shared, LM head tied, wired as `richarddwang/electra_pytorch` does it:
Bernoulli(15%) masking (85% [MASK], 15% kept), the generator reads the masked input with labels -100 off
the masked positions so HF computes its MLM loss over all B x T positions' logits, fp32 Gumbel-max
sampling of `logits[is_mlm]`, the discriminator reads the corrupted input, loss = mlm + 50 * disc,
clip 1.0, torch AdamW (lr 5e-4, eps 1e-6, wd 0.01). "ours" = `electra.objective.Electra` driven exactly
as `electra.pretrain` drives it (seed per micro-step, autocast, backward, clip, our optimizer).

How it measures (noise on a shared 2-core VM is +-5-10% between processes, so nothing is compared across
runs): for every mode and allocator environment one worker subprocess per side is started (so peak RSS
never mixes), both are warmed up, then their timed steps are INTERLEAVED one by one (ours, peer, peer,
ours, ...) so that background load hits both alike. The same batches of real tokenized Wikipedia text
(ELECTRA-like examples from `ExampleBuilder`, some short and padded) feed both. Reported per side: step
time (median, min, max), tokens/s (B*T / median), peak RSS of the worker (and its growth over the
post-import RSS) or max allocated on CUDA, model FLOPs per token (`electra.flops.model_flops_per_token`:
ours with the generator head on masked slots only, the peer as executed with the head on all positions)
and MFU against a matmul peak measured here, in fp32 and bf16. Timers synchronize CUDA.
The last line of output is JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from pretrain_steps import ROOT, OursStep, PeerStep, load_inputs, make_batches  # the two sides, same folder

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
MODES = ("fp32", "bf16", "compile", "compile-bf16", "graphs", "graphs-bf16", "stepgraph", "stepgraph-bf16")
# graphs*: torch.compile(mode="reduce-overhead"), i.e. compiled and replayed as CUDA graphs (CUDA only)
# stepgraph*: ours only (CUDA): --compile-mode step-graph, the whole step (with clip and optimizer) as one CUDA graph
# --env experiments, joined with "+" to combine (malloc / mallopt: glibc's allocator told to keep freed memory)
EXPERIMENTS = {  # name: what the worker changes (passed to it in ELECTRA_BENCH_EXPERIMENTS)
    "combo": "compiled modes: Inductor's combo kernels (fewer launches in a CUDA graph)",
    "coord": "compiled modes: Inductor's coordinate-descent tuning of its kernels' block sizes",
    "rng": "compiled modes: AOTAutograd regenerates dropout masks in the backward",
    "lt": "CUDA: cuBLASLt for the matmuls that use cuBLAS by default",
    "bf16res": "ours: --residual bf16 (the peer has no such option)",
}
SIDES = ("ours", "ours-unpad", "ours-pad", "peer", "before")
# ours: as `electra pretrain` runs (unpad=auto: unpadded on CUDA unless CUDA graphs); ours-unpad / ours-pad force it


# ---------------------------------------------------------------------------------------------------
# worker: one side, one mode, driven over stdin/stdout


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    import contextlib
    if os.environ.get("ELECTRA_BENCH_MALLOPT") == "1":
        from electra.cli import tune_allocator
        tune_allocator()
    import torch
    torch.set_num_threads(args.threads)
    experiments = set(os.environ.get("ELECTRA_BENCH_EXPERIMENTS", "").split("+"))
    if experiments & {"combo", "coord"}:
        import torch._inductor.config as inductor_config
        inductor_config.combo_kernels = "combo" in experiments
        inductor_config.coordinate_descent_tuning = "coord" in experiments
    if "lt" in experiments:
        torch.backends.cuda.preferred_blas_library("cublaslt")
    if "rng" in experiments:
        import torch._functorch.config as functorch_config
        functorch_config.functionalize_rng_ops = True
    base_rss = rss_mib()
    from electra.config import build_config
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    data = load_inputs(args.inputs)
    batches = [tuple(t.to(device) for t in b) for b in data["batches"]]
    masks_cpu = [b[2] for b in data["batches"]]  # what the loop packs from: the batch before its transfer
    residual = {"residual": "bf16"} if "bf16res" in experiments else {}
    cfg = build_config(args.preset, {**data["overrides"], **residual})
    if args.side == "peer":
        step = PeerStep(cfg, data["special"], device, args.mode)
    else:
        step = OursStep(cfg, data["special"], device, args.mode,
                        {"ours-unpad": "on", "ours-pad": "off"}.get(args.side, "auto"))
    bf16 = args.mode.endswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    block = args.block or (10 if cuda else 1)
    i = 0

    cpu_times: list[float] = []

    def one() -> float:
        """Seconds per step, over `block` steps: on CUDA the loop never waits for the device between steps
        (it syncs on log steps only), so steps are timed in blocks, synchronized at both ends."""
        nonlocal i
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(block):
            k = i % len(batches)
            loss, _ = step(batches[k], i, autocast, masks_cpu[k])
            if not cuda:
                float(loss)  # the CPU loop's per-step finite check reads the loss
            i += 1
        sync()
        cpu_times.append((time.process_time() - c0) / block)
        return (time.perf_counter() - t0) / block

    print(json.dumps({"ready": True, "import_rss_mib": base_rss}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "step":
            print(json.dumps({"t": one()}), flush=True)
        elif cmd == "warmup":
            ts = [one() for _ in range(args.warmup)]
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            print(json.dumps({"warmup": ts}), flush=True)
        elif cmd == "profile":
            from torch.profiler import ProfilerActivity, profile
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with profile(activities=acts, record_shapes=False) as prof:
                t = one()
            key = "self_device_time_total" if cuda else "self_cpu_time_total"
            table = prof.key_averages().table(sort_by=key, row_limit=args.profile_rows, max_name_column_width=48)
            print(json.dumps({"t": t, "table": table}), flush=True)
        elif cmd == "stats":
            timed = cpu_times[args.warmup:args.warmup + args.steps]
            out = {"peak_rss_mib": peak_rss_mib(), "rss_mib": rss_mib(), "import_rss_mib": base_rss,
                   "cpu_median_s": statistics.median(timed) if timed else float("nan")}
            if cuda:
                out["max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
            print(json.dumps(out), flush=True)
        elif cmd == "quit":
            return


class Worker:
    def __init__(self, args, side, mode, env_name, inputs):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH", "")]))
        if side == "before":  # ours at another revision (e.g. `git archive HEAD src | tar -x -C /tmp/head`)
            if not args.before_src:
                raise SystemExit("side 'before' needs --before-src DIR")
            env["PYTHONPATH"] = os.pathsep.join([args.before_src, env["PYTHONPATH"]])
        for k in MALLOC_ENV:
            env.pop(k, None)
        parts = env_name.split("+")  # e.g. bf16res+coord: both
        if "malloc" in parts:
            env.update(MALLOC_ENV)
        elif "mallopt" in parts:  # the same two settings applied from Python at start-up (ctypes mallopt)
            env["ELECTRA_BENCH_MALLOPT"] = "1"
        env["ELECTRA_BENCH_EXPERIMENTS"] = "+".join(x for x in parts if x in EXPERIMENTS)
        cmd = [sys.executable, __file__, "--worker", "--side", side, "--mode", mode, "--inputs", inputs,
               "--preset", args.preset, "--threads", str(args.threads), "--device", args.device,
               "--warmup", str(args.warmup), "--steps", str(args.steps), "--profile-rows", str(args.profile_rows),
               "--block", str(args.block)]
        self.side, self.mode, self.env_name = side, mode, env_name
        self.label = side if not getattr(args, "interleave_env", False) else f"{side}/{env_name}"
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()  # read by a thread, so that a wait can have a deadline
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in iter(self.p.stdout.readline, ""):
            self.lines.put(line)
        self.lines.put("")  # end of output: the worker exited

    def read(self, timeout: float | None = None) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.p.kill()
            raise RuntimeError(f"worker {self.side}/{self.mode} gave no answer in {timeout:.0f} s: stopped") from None
        if not line:
            raise RuntimeError(f"worker {self.side}/{self.mode} died (rc {self.p.wait()})")
        return json.loads(line)

    def send(self, cmd: str) -> None:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()

    def ask(self, cmd: str) -> dict:
        self.send(cmd)
        return self.read()

    def close(self) -> None:
        close_all([self])


def close_all(workers: list[Worker], timeout: float = 20.0) -> None:
    """Tell every worker to quit, then give them `timeout` seconds together before killing the rest. Their
    results are in hand by then; a compiled worker's exit can hang (on the first H200 lease, nine of them one
    after the other, each waited for in turn, ran the stage out of time before its last two rows printed)."""
    for w in workers:
        try:
            w.p.stdin.write("quit\n")
            w.p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
    deadline = time.monotonic() + timeout
    for w in workers:
        try:
            w.p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.p.kill()
            w.p.wait()


# ---------------------------------------------------------------------------------------------------
# peak matmul rate


def matmul_peak(threads: int, device: str, repeats: int = 5) -> dict:
    """Best GFLOP/s of torch.mm over a few GEMM shapes (the square ones and the ELECTRA-Small step's), each
    timed as a loop of calls lasting >= 50 ms, best of `repeats` loops. Single-call timings on this VM
    are unreliable (sub-millisecond calls sometimes read faster than the hardware can go)."""
    import torch
    torch.set_num_threads(threads)
    dev = torch.device(device)
    shapes = [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 256, 256), (4096, 256, 1024), (4096, 1024, 256)]
    if dev.type == "cuda":
        shapes = [(8192, 8192, 8192), (4096, 4096, 4096)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        best = 0.0
        for (M, K, N) in shapes:
            a = torch.randn(M, K, device=dev, dtype=dtype)
            b = torch.randn(K, N, device=dev, dtype=dtype)
            c = torch.empty(M, N, device=dev, dtype=dtype)
            sync()
            t0 = time.perf_counter()
            for _ in range(3):
                torch.mm(a, b, out=c)
            sync()
            n = max(3, int(0.05 / max((time.perf_counter() - t0) / 3, 1e-6)))
            for _ in range(repeats):
                sync()
                t0 = time.perf_counter()
                for _ in range(n):
                    torch.mm(a, b, out=c)
                sync()
                best = max(best, 2 * M * K * N * n / (time.perf_counter() - t0))
        out[str(dtype).replace("torch.", "")] = best
    return out


# ---------------------------------------------------------------------------------------------------


def summarize(ts: list[float]) -> dict:
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "n": len(ts)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small", "base", "large"])
    p.add_argument("--batch", type=int, default=32, help="micro-batch (sequences per step)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--modes", default="fp32,bf16", help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--env", default="malloc", help="comma list of stock, malloc (glibc env: keep freed memory), "
                   f"mallopt (the same via ctypes mallopt at start-up), or experiments ({', '.join(EXPERIMENTS)}); "
                   "join with + to combine")
    p.add_argument("--skip", default="", help="comma list of side/mode or side/env pairs not to run, e.g. "
                   "ours-unpad/graphs-bf16, peer/bf16res")
    p.add_argument("--modes-together", action="store_true", help="warm every mode's workers up at once and "
                   "time them all interleaved (saves the sequential compile time on a lent GPU)")
    p.add_argument("--interleave-env", action="store_true", help="run all envs in one interleaved group "
                   "(sides labelled side/env) instead of one group per env")
    p.add_argument("--sides", default="ours,peer", help=f"comma list of {', '.join(SIDES)} (before: see --before-src)")
    p.add_argument("--before-src", default="", help="src dir of another revision of ours, run as side 'before'")
    p.add_argument("--steps", type=int, default=6, help="timed steps per side (interleaved)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--warmup-timeout", type=float, default=0, help="seconds all workers have to warm up (compile); "
                   "one that is not warm by then is stopped and reported as failed, the others go on (0: no limit)")
    p.add_argument("--block", type=int, default=0, help="steps per timing (default 1 on CPU, 10 on CUDA)")
    p.add_argument("--save-inputs", default="", help="write the batches to this file and exit (to carry them "
                   "to a machine without the shared data)")
    p.add_argument("--load-inputs", default="", help="use batches written by --save-inputs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--profile", default="", help="side(s) to profile one extra step of (prints a table)")
    p.add_argument("--profile-rows", type=int, default=25)
    p.add_argument("--no-peak", action="store_true", help="skip the matmul peak measurement")
    p.add_argument("--overrides", default="", help="config overrides, k=v,k=v (both sides)")
    # worker-only
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--side", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from electra.config import build_config
    from electra.flops import model_flops_per_token

    modes = [m for m in args.modes.split(",") if m]
    envs = [e for e in args.env.split(",") if e]
    sides = [s for s in args.sides.split(",") if s]
    known = ("stock", "malloc", "mallopt", *EXPERIMENTS)
    bad = [m for m in modes if m not in MODES] + [e for e in envs if any(x not in known for x in e.split("+"))]
    bad += [x for x in sides if x not in SIDES]
    if bad:
        p.error(f"unknown mode/env {bad}")
    overrides = {"seq_len": str(args.seq_len), "micro_batch_size": str(args.batch), "global_batch_size": str(args.batch)}
    overrides.update(dict(kv.split("=", 1) for kv in args.overrides.split(",") if kv))
    cfg = build_config(args.preset, overrides)
    n_batches = max(4, args.warmup + args.steps + 1)
    if args.load_inputs:
        saved = load_inputs(args.load_inputs)
        batches, special, source, pad = saved["batches"], saved["special"], saved["source"], saved["padding"]
        if batches[0][0].shape != (args.batch, args.seq_len):
            p.error(f"{args.load_inputs} holds {tuple(batches[0][0].shape)} batches, not ({args.batch}, {args.seq_len})")
    else:
        batches, special, source, pad = make_batches(args.seq_len, args.batch, min(n_batches, 8))
    if args.save_inputs:
        torch.save({"batches": batches, "special": special, "source": source, "padding": pad}, args.save_inputs)
        print(f"wrote {len(batches)} batches of {args.batch} x {args.seq_len} from {source} to {args.save_inputs}")
        return 0
    flops = {"ours": model_flops_per_token(cfg, lm_head="masked"), "peer": model_flops_per_token(cfg, lm_head="all")}
    for side in SIDES:
        flops.setdefault(side, flops["ours"])  # model FLOPs: the unpadded variant saves work, not model FLOPs
    print(f"# {args.preset} B={args.batch} T={args.seq_len} | data: {source}, {pad:.1%} padding | "
          f"threads {args.threads} | device {args.device} | torch {torch.__version__}")
    print(f"# model FLOPs/token (fwd+bwd matmuls): ours {flops['ours'] / 1e6:.1f} M (LM head on masked slots), "
          f"peer {flops['peer'] / 1e6:.1f} M (LM head on all positions)")
    peak = {} if args.no_peak else matmul_peak(args.threads, args.device)
    if peak:
        print(f"# matmul peak: fp32 {peak['float32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bfloat16'] / 1e9:.0f} GFLOP/s")

    results, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "inputs.pt")
        torch.save({"batches": batches, "special": special, "overrides": overrides}, inputs)
        by_env = [[(s, e) for e in envs for s in sides]] if args.interleave_env else [[(s, e) for s in sides] for e in envs]
        if args.modes_together:  # one group: every (mode, side) warms up at once, then all are timed interleaved
            groups = [[(s, e, m) for m in modes for s, e in g] for g in by_env]
        else:
            groups = [[(s, e, m) for s, e in g] for g in by_env for m in modes]
        skip = set(filter(None, args.skip.split(",")))
        groups = [[(s, e, m) for s, e, m in g if f"{s}/{m}" not in skip and f"{s}/{e}" not in skip] for g in groups]
        for group in groups:
            results += run_group(args, group, inputs, flops, peak, failed, label_mode=args.modes_together)
        if len(modes) > 1:  # the best mode of each side against the best of the others
            best = {}
            for r in results:
                if r["side"] not in best or r["tokens_per_s"] > best[r["side"]]["tokens_per_s"]:
                    best[r["side"]] = r
            if "ours" in best:
                o = best["ours"]
                for side, q in best.items():
                    if side != "ours":
                        print(f"   best ours ({o['mode']}) / best {side} ({q['mode']}): tokens/s "
                              f"x{o['tokens_per_s'] / q['tokens_per_s']:.2f}{_mem_ratio(o, q)}", flush=True)
    summary = {"preset": args.preset, "batch": args.batch, "seq_len": args.seq_len, "threads": args.threads,
               "device": args.device, "torch": torch.__version__, "data": source, "padding": pad,
               "peak_flops": peak, "flops_per_token": flops, "machine": platform.machine(), "results": results,
               "failed": failed}
    if args.device.startswith("cuda"):
        summary["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(summary))
    return 0


def run_group(args, group, inputs, flops, peak, failed, label_mode=False) -> list[dict]:
    """Start one worker per (side, env, mode), warm them all up at once, time their steps interleaved one by
    one (alternating who goes first), print a row each and the ratios of ours to the others."""
    started = []
    for s, e, mode in group:
        w = Worker(args, s, mode, e, inputs)
        if label_mode:
            w.label = f"{w.label}/{mode}"
        started.append(w)
    for w in started:  # compilation is the long part of a warm-up: let them overlap
        w.send("warmup")
    workers = []
    deadline = time.monotonic() + args.warmup_timeout
    for w in started:
        try:
            w.ready = w.read()
            w.warm = w.read(timeout=max(1.0, deadline - time.monotonic()) if args.warmup_timeout else None)["warmup"]
            workers.append(w)
        except (RuntimeError, ValueError) as err:
            print(f"# {w.label} {w.mode}: failed to start or warm up: {err}", flush=True)
            failed.append({"side": w.side, "mode": w.mode, "env": w.env_name, "error": str(err)})
            w.close()
    if not workers:
        return []
    times = {w.label: [] for w in workers}
    print("# warm-up " + ", ".join(f"{w.label} {w.mode} {' '.join(f'{t:.2f}' for t in w.warm)} s" for w in workers),
          file=sys.stderr, flush=True)
    for k in range(args.steps):
        for w in list(workers if k % 2 == 0 else workers[::-1]):
            try:
                times[w.label].append(w.ask("step")["t"])
            except (RuntimeError, ValueError) as err:
                print(f"# {w.label} {w.mode}: failed at timed step {k}: {err}", flush=True)
                failed.append({"side": w.side, "mode": w.mode, "env": w.env_name, "error": str(err)})
                workers.remove(w)
                times.pop(w.label)
        print(f"# step {k}: " + ", ".join(f"{s} {times[s][-1]:.3f} s" for s in times), file=sys.stderr, flush=True)
    results = []
    for w in workers:
        if w.side in args.profile.split(","):
            prof = w.ask("profile")
            print(f"\n## profile: {w.label} {w.mode} {w.env_name} (one step, {prof['t']:.3f} s)\n{prof['table']}")
        st = w.ask("stats")
        r = {"side": w.side, "label": w.label, "mode": w.mode, "env": w.env_name, **summarize(times[w.label]),
             "warmup_s": w.warm, **st}
        r["tokens_per_s"] = args.batch * args.seq_len / r["median_s"]
        r["flops_per_token"] = flops.get(w.side, flops["ours"])
        r["achieved_gflops"] = r["flops_per_token"] * r["tokens_per_s"] / 1e9
        if peak:
            r["mfu"] = r["achieved_gflops"] * 1e9 / peak["bfloat16" if w.mode.endswith("bf16") else "float32"]
        results.append(r)
        print(_row(r), flush=True)
    close_all(workers)
    for o in results:
        if o["side"] != "ours":
            continue
        for q in results:
            # same env; or, for an --env experiment, against the peer and against ours in the stock env
            if q is not o and q["mode"] == o["mode"] and (q["env"] == o["env"] or (
                    q["side"] in ("peer", "ours") and q["env"] in ("stock", "malloc") and o["env"] not in ("stock", "malloc"))):
                print(f"   {o['label']}/{q['label']} {o['mode']}: tokens/s x{o['tokens_per_s'] / q['tokens_per_s']:.2f}"
                      f"{_mem_ratio(o, q)}", flush=True)
    return results


def _mem_ratio(o: dict, q: dict) -> str:
    if "max_allocated_mib" in o and "max_allocated_mib" in q:
        return f", max allocated {o['max_allocated_mib'] / q['max_allocated_mib']:.0%} of {q['label']}'s"
    return (f", peak RSS {o['peak_rss_mib'] / q['peak_rss_mib']:.0%} of {q['label']}'s (growth "
            f"{(o['peak_rss_mib'] - o['import_rss_mib']) / (q['peak_rss_mib'] - q['import_rss_mib']):.0%})")


def _row(r: dict) -> str:
    mfu = f" | MFU {r['mfu']:.0%}" if "mfu" in r else ""
    mem = f"peak RSS {r['peak_rss_mib'] / 1024:.2f} GiB (+{(r['peak_rss_mib'] - r['import_rss_mib']) / 1024:.2f} over import)"
    if "max_allocated_mib" in r:
        mem += f", max allocated {r['max_allocated_mib'] / 1024:.2f} GiB"
    return (f"{r['label']:>14} {r['mode']:>12} {r['env']:>7} | {r['tokens_per_s']:8.0f} tok/s | step median "
            f"{r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}, n {r['n']}; CPU {r['cpu_median_s']:.3f} s) | "
            f"{r['achieved_gflops']:.0f} GFLOP/s{mfu} | {mem}")


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
