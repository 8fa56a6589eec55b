"""`electra status OUT` for an `electra finetune` output: which tasks and seeds are done, which seed is training
and how far it got, whether a run still holds OUT. Only reads: results.json, progress/ (progress.py) and the
lock (a probe that takes and drops it at once when no run holds it).

    ft/glue: fine-tuning, running (pid 4242)
      sst2  done: 10 seeds, accuracy median 91.20 (best seed 4)
      rte   lr 0.0003 ld 0.8: 3 of 10 seeds done, accuracy median so far 65.34; seed 4 at step 1,200 / 2,340 (saved 2m ago)
"""
from __future__ import annotations

import fcntl
import os
import statistics
import time
from pathlib import Path
from typing import Any

from electra.finetune.outputs import earlier_tasks, stopped_tasks, task_outs
from electra.finetune.progress import FOLDER, PLAN, intact, point_tag, stamp_of
from electra.logs import fmt_duration
from electra.model_card import read_json_object


def holder(out: Path) -> int | None:
    """The pid of the `electra finetune` that holds OUT/.lock, None when none does."""
    try:
        fd = os.open(out / ".lock", os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)


def task_folders(out: Path) -> list[tuple[str, Path]]:
    """(task, folder) of every task whose results or seeds are in OUT: OUT itself for one task, OUT/<task> for a
    task list (finished or stopped)."""
    earlier = earlier_tasks(out)
    if earlier:
        return list(zip(earlier, task_outs(out, earlier)))
    return [(t, out / t) for t in stopped_tasks(out)]


def task_status(task: str, folder: Path, now: float) -> dict[str, Any]:
    """One task: done (its results.json's summary), or in progress (the seeds on record per point, the seed in
    training and its last saved step)."""
    result = read_json_object(folder / "results.json")
    progress = folder / FOLDER
    if result.get("task") == task and stamp_of(progress) is None:
        metric = result.get("main_metric", "")
        return {"task": task, "state": "done", "seeds": len(result.get("runs", [])), "metric": metric,
                "median": result.get("summary", {}).get(metric, {}).get("median"), "best_seed": result.get("best_seed")}
    plan = read_json_object(progress / PLAN)
    metric, seeds = plan.get("main_metric"), plan.get("seeds") or []
    points = []
    for lr, ld in plan.get("points") or []:
        tag = point_tag(lr, ld)
        runs = [r for s in seeds if intact(r := read_json_object(progress / f"{tag}_seed{s}.json"))]
        scores = [r["metrics"][metric] for r in runs if metric in r["metrics"]]
        training = None
        for s in seeds:
            state = read_json_object(progress / f"{tag}_seed{s}.partial" / "state.json")
            if {"step", "steps", "saved_at"} <= state.keys():
                training = {"seed": s, "step": state["step"], "steps": state["steps"],
                            "saved_seconds_ago": max(0.0, now - state["saved_at"])}
        points.append({"lr": lr, "layer_decay": ld, "seeds_done": len(runs), "seeds": len(seeds),
                       "median": statistics.median(scores) if scores else None, "training": training})
    return {"task": task, "state": "in progress", "metric": metric, "points": points}


def finetune_status(out: Path, now: float | None = None) -> dict[str, Any] | None:
    """Where an `electra finetune` OUT stands, or None when OUT holds none of its results or seeds."""
    tasks = task_folders(out)
    if not tasks:
        return None
    now = time.time() if now is None else now
    return {"out": str(out), "running_pid": holder(out), "tasks": [task_status(t, f, now) for t, f in tasks]}


def describe_finetune(s: dict[str, Any]) -> str:
    pid = s["running_pid"]
    lines = [f"{s['out']}: fine-tuning, " + ("not running" if pid is None else
                                            f"running (pid {pid})" if pid > 0 else "running")]
    for t in s["tasks"]:
        if t["state"] == "done":
            median = "" if t["median"] is None else f", {t['metric']} median {t['median']:.2f}"
            lines.append(f"  {t['task']:<9} done: {t['seeds']} seed{'s' * (t['seeds'] != 1)}{median} "
                         f"(best seed {t['best_seed']})")
            continue
        if not t["points"]:
            lines.append(f"  {t['task']:<9} started, no seed saved yet")
        for p in t["points"]:
            text = f"  {t['task']:<9} lr {p['lr']:g} ld {p['layer_decay']:g}: {p['seeds_done']} of {p['seeds']} seeds done"
            if p["median"] is not None:
                text += f", {t['metric']} median so far {p['median']:.2f}"
            if (tr := p["training"]) is not None:
                text += (f"; seed {tr['seed']} at step {tr['step']:,} / {tr['steps']:,} (saved "
                         f"{fmt_duration(tr['saved_seconds_ago'])} ago)")
            lines.append(text)
    return "\n".join(lines)
