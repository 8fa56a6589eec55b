"""What `electra finetune` writes into --out, and the rules that keep it from touching anything else.

    OUT/results.json, OUT/model/, OUT/test_predictions/          one task (OUT/progress/ while it runs: progress.py)
    OUT/<task>/{results.json, model/, test_predictions/}, OUT/results.json with every task and the GLUE score,
    OUT/glue_submission.zip (GLUE tasks with test files: every leaderboard file, WNLI's majority class too)

A re-run of the same task(s) replaces model/ and test_predictions/ whole (or removes them when it writes none);
results of other tasks are refused unless --overwrite. A model/ or test_predictions/ that `electra finetune`
did not write (no finetune.json; files other than leaderboard TSVs) is never replaced or removed: the run is
refused instead, as it is when --data or --model lies inside what would be replaced.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from electra.data.shards import foreign, lock_folder
from electra.errors import UserError
from electra.finetune.custom import CUSTOM_TASKS, PREDICTIONS_FILE
from electra.finetune.glue import GLUE_TASKS
from electra.finetune.progress import FOLDER, stamp_of
from electra.finetune.squad import SQUAD_TASKS
from electra.finetune.submission import ZIP_NAME
from electra.finetune.tagging import PREDICTIONS_FILE as TAG_PREDICTIONS_FILE
from electra.finetune.tagging import TAGGING_TASKS

ALL_TASKS = list(GLUE_TASKS) + list(SQUAD_TASKS) + list(TAGGING_TASKS) + list(CUSTOM_TASKS)
# the files test_predictions/ may hold: GLUE's leaderboard files and the prediction file of your own data
LEADERBOARD_FILES = {f"{name}.tsv" for task in GLUE_TASKS.values() for name in task.test} | {PREDICTIONS_FILE,
                                                                                           TAG_PREDICTIONS_FILE}


def task_folder(name: str, data: Path) -> Path:
    """The folder under --data that a task reads (a GLUE root's SST-2/, ...): its seeds' fingerprint stamps it,
    and --out may not be it."""
    if name in CUSTOM_TASKS:
        return data
    return (GLUE_TASKS.get(name) or SQUAD_TASKS.get(name) or TAGGING_TASKS[name]).task_dir(data)


def task_outs(out: Path, names: list[str]) -> list[Path]:
    """The output folder of each task: --out itself for one task, --out/<task> for several."""
    return [out] if len(names) == 1 else [out / name for name in names]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _our_file(folder: str, p: Path) -> bool:
    """Whether `p` is a file a fine-tuning run writes into its `folder` (test_predictions or progress)."""
    if folder == "progress":  # seed records, kept weights, saved seed states, the stamp and their temporary names
        if p.is_dir():
            return p.suffix == ".partial" or (p.name.startswith(".") and p.suffix in (".tmp", ".old"))
        return p.is_file() and (p.name == "fingerprint" or p.name.startswith(".tmp-")
                                or p.suffix in (".json", ".safetensors", ".tmp"))
    return p.is_file() and p.name in LEADERBOARD_FILES


def written_here(path: Path) -> bool:
    """Whether `path` (a task folder's model/, test_predictions/ or progress/) is what a fine-tuning run wrote
    (progress/: stamped by a run that finished a seed, or holding only what one writes before that)."""
    if path.name == "model":
        return (path / "finetune.json").is_file()
    if path.name == "progress" and stamp_of(path) is not None:
        return True
    return all(_our_file(path.name, p) for p in path.iterdir())


def not_ours(path: Path) -> str:
    """Why `path` (not `written_here`) is someone else's, completing "--out PATH ...": the file, or what it holds."""
    ours = "what `electra finetune` writes there"
    if not path.is_dir():
        return f"is a file, not {ours}"
    if path.name == "model":
        return f"has no finetune.json: it is not {ours}"
    odd = sorted(p.name for p in path.iterdir() if not _our_file(path.name, p))
    return f"holds {foreign(odd)} not {ours}" if odd else f"is not {ours}"


def check_out(args: argparse.Namespace, names: list[str]) -> None:
    """--out problems that would otherwise surface only when the results are saved, after the training: a file
    where a folder must go, a folder that cannot be written, one that would put results among the inputs, or
    results that are not this run's to replace."""
    out = args.out
    for folder in [out] + task_outs(out, names):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--out {folder} is a file; give a folder for the results")
    # the nearest folder that exists, which the missing ones are made in
    base = next((p for p in [out, *out.absolute().parents] if p.exists()), None)
    if base is not None and not base.is_dir():
        raise UserError(f"--out {out} is under {base}, which is a file; give a folder path")
    if base is not None and not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {base} is not writable; give a folder you can write to")
    out_r, data_r, model_r = out.resolve(), args.data.resolve(), args.model.resolve()
    if out_r == data_r:
        raise UserError(f"--out {out} is the --data folder; the results would be written among the task files: "
                        f"give a folder of their own")
    if _inside(out_r, model_r):
        raise UserError(f"--out {out} is {'the' if out_r == model_r else 'inside the'} --model folder; give a new "
                        f"folder for the fine-tuning results")
    # OUT/model and OUT/test_predictions are replaced whole: neither may hold an input, or anything not ours
    written = [f / sub for f in task_outs(out, names) for sub in ("model", "test_predictions", "progress")]
    for flag, given, path in (("--model", args.model, model_r), ("--data", args.data, data_r)):
        for w in written:
            if _inside(path, w.resolve()):
                raise UserError(f"{flag} {given} is inside {w}, which the results replace; give another --out")
    if _inside(model_r, out_r):  # e.g. the pre-training run that holds the --model checkpoint
        raise UserError(f"--out {out} holds --model {args.model}: the results would be written into it (and it "
                        f"would read as a fine-tuned model); give a folder of their own")
    for name, folder in zip(names, task_outs(out, names)):
        try:
            inputs = task_folder(name, args.data).resolve()
        except UserError:  # no such task folder: check_data says so
            continue
        if folder.resolve() == inputs:
            raise UserError(f"--out {folder} is {name}'s task folder under --data; the results would be written "
                            f"among its files: give a folder of their own")
    for w in written:
        if w.exists() and not (w.is_dir() and written_here(w)):
            raise UserError(f"--out {w} {not_ours(w)}; move it away or give another --out")
    if out.is_dir():  # a live run first: its folder looks like a stopped one
        os.close(lock_folder(out, "finetune"))
    other = other_results(out, names)
    if other is not None and not args.overwrite:
        raise UserError(f"--out {out} holds {other}; give another folder, or pass --overwrite to replace them with "
                        f"those of --task {','.join(names)}")


def other_results(out: Path, names: list[str]) -> str | None:
    """What `out` holds of another task list than `names` (which --overwrite clears), in words; None if nothing."""
    earlier = earlier_tasks(out)
    if earlier is not None and set(earlier) != set(names):
        what = "the results" if (out / "results.json").is_file() else "the unfinished seeds (re-run it to finish them)"
        return f"{what} of --task {','.join(earlier)}"
    stopped = stopped_tasks(out)
    if not set(stopped) <= set(names):
        return f"what a stopped run left in {', '.join(t + '/' for t in stopped)} (re-run that command to finish it)"
    return None


def stopped_tasks(out: Path) -> list[str]:
    """The tasks of a stopped several-task run in `out` (no OUT/results.json yet): the OUT/<task>/ folders that hold
    a finished task's results.json or a stopped one's seeds."""
    if (out / "results.json").is_file():
        return []
    return [t for t in ALL_TASKS if (out / t / "results.json").is_file() or stamp_of(out / t / FOLDER) is not None]


def earlier_tasks(out: Path) -> list[str] | None:
    """The tasks whose results an earlier run left in `out`, or whose seeds a stopped one-task run left in
    OUT/progress (None: neither there)."""
    try:
        earlier = json.loads((out / "results.json").read_text(encoding="utf-8"))
        tasks = list(earlier["tasks"]) if "tasks" in earlier else [earlier["task"]]
    except (OSError, ValueError, KeyError, TypeError):
        stamp = stamp_of(out / FOLDER)
        if stamp is None:
            return None
        tasks = [stamp[1]]
    return [t for t in tasks if t in ALL_TASKS]  # names that become paths: never anything else


def clear_results(out: Path, keep: list[Path]) -> None:
    """Remove what an earlier run wrote into `out` (--overwrite): its results.json, model/ and test_predictions/,
    and, after a run of several tasks (finished or stopped), each task's folder that holds its results.json or
    its seeds. A folder holding one of
    `keep` (the --data and --model paths) and anything else in `out` are left alone."""
    earlier = earlier_tasks(out) or []
    folders = [f for f in (out / "model", out / "test_predictions", out / "progress") if f.is_dir() and written_here(f)]
    if len(earlier) > 1:  # one task writes into OUT itself: OUT/<name> was never its folder
        folders += [out / name for name in earlier if (out / name / "results.json").is_file()]
    folders += [out / name for name in stopped_tasks(out)]
    for folder in folders:
        if not any(_inside(k.resolve(), folder.resolve()) for k in keep):
            shutil.rmtree(folder)
    (out / "results.json").unlink(missing_ok=True)
    (out / ZIP_NAME).unlink(missing_ok=True)
