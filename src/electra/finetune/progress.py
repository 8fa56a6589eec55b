"""Resume for `electra finetune`: a stopped run loses at most the last --checkpoint-minutes of one seed.

The seeds of a task are independent fine-tunings (each starts from the same weights with its own seed), so
each is recorded as it ends, in the task's output folder:

    OUT/progress/fingerprint                       "FINGERPRINT TASK": what the seeds below were trained from
    OUT/progress/facts.json                        what the fingerprint is the digest of (to say what changed)
    OUT/progress/plan.json                         the command's seeds, grid points and metric (`electra status`)
    OUT/progress/lr0.0003_ld0.8_seed1.json         one finished seed: its dev metrics and training stats
    OUT/progress/lr0.0003_ld0.8_seed1.safetensors  the weights of the best seed so far of its --lr/--layer-decay
                                                   point (the others' are deleted as a better one ends)
    OUT/progress/lr0.0003_ld0.8_seed2.partial/     the state of the seed in training, saved every
                                                   --checkpoint-minutes (`SeedCheckpoint`, train.capture)

A re-run of the same command trains only the seeds that have no record and ends exactly as an uninterrupted
run would (the same metrics, the same best seed, the same weights in model/). Once the task's results.json is
written the folder goes: a finished task's seeds are then read back from results.json, and its best seed's
weights from model/, so `--seeds 10` after `--seeds 5` trains five more. Records count only under the same
fingerprint (`fingerprint`): the model's config, weights and vocabulary, the data files, the recipe, the device
and precision; never the seed or the --lr / --layer-decay point (part of each record), nor what moves a result
in its last digits only (--threads, --eval-batch-size: a resume under other values is not bit-identical) or
not at all (--log-every, --activation-checkpointing). `--fresh` ignores them all.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from electra.checkpoint import atomic_write_text, save_tensors
from electra.data.shards import atomic_write_bytes, staged_dir
from electra.model_card import read_json_object

FOLDER, PLAN, FACTS = "progress", "plan.json", "facts.json"
# recipe fields that are not part of the fingerprint: the per-run ones, and those that change a result in its
# last digits only (threads: the order of a matmul's sums; eval batch: padding) or not at all
UNHASHED = ("seed", "lr", "layer_decay", "eval_batch_size", "threads", "log_every", "activation_checkpointing",
            "checkpoint_minutes")
DATA_DEPTH, DATA_FILES = 3, 10_000  # how deep, and how many of --data's files are stamped


def _data_stamp(data: Path, out: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of the files under --data, down to DATA_DEPTH folders, leaving out hidden
    names and OUT (which may lie inside --data): a changed, added or removed task file changes the stamp."""
    if data.is_file():
        st = data.stat()
        return [(data.name, st.st_size, st.st_mtime_ns)]
    stamp: list[tuple[str, int, int]] = []
    out = out.resolve()
    for root, dirs, files in os.walk(data, followlinks=True):  # a task folder may be a link (depth-bounded)
        here = Path(root)
        depth = len(here.relative_to(data).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < DATA_DEPTH
                         and (here / d).resolve() != out)
        for name in sorted(f for f in files if not f.startswith(".")):
            st = (here / name).stat()
            stamp.append((str((here / name).relative_to(data)), st.st_size, st.st_mtime_ns))
            if len(stamp) >= DATA_FILES:
                return stamp
    return stamp


def model_digest(encoder: torch.nn.Module, vocab: Path) -> str:
    """sha256 of the encoder's config (dropout, norms, activation: what the weights do not show), its weights
    (every tensor's name, dtype, shape and bytes) and the vocabulary file."""
    h = hashlib.sha256(vocab.read_bytes())
    h.update(json.dumps(dataclasses.asdict(encoder.cfg), sort_keys=True).encode())
    for name, t in sorted(encoder.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().data)
    return h.hexdigest()


def fingerprint_facts(task: str, recipe: dict[str, Any], model: str, random_init: bool, lowercase: bool,
                      strip_accents: bool | None, data: Path, out: Path, arithmetic: str) -> dict[str, Any]:
    """What a seed's result depends on, besides the seed and the --lr / --layer-decay point: the task, the recipe,
    the model (`model_digest`), the text normalisation, the names, sizes and modification times of the files in
    the task's folder under --data (`data`; not those under --out; kept as their digest), and the `arithmetic`
    ("cuda bf16": device and precision, so that bf16 seeds of a GPU are never mixed with fp32 seeds of a CPU)."""
    stamp = json.dumps(_data_stamp(data, out)).encode()
    return {"task": task, "recipe": {k: v for k, v in recipe.items() if k not in UNHASHED}, "model": model,
            "random_init": random_init, "lowercase": lowercase, "strip_accents": strip_accents,
            "data": hashlib.sha256(stamp).hexdigest(), "arithmetic": arithmetic}


def _json_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def fingerprint(facts: dict[str, Any]) -> str:
    """sha256 of `fingerprint_facts`: seeds are reused only under the same one."""
    return _json_digest(facts)


_FACT_NAMES = {"task": "task", "model": "model (its config, weights or vocabulary)", "data": "data files",
               "arithmetic": "device or precision", "random_init": "--random-init",
               "lowercase": "text normalisation", "strip_accents": "text normalisation"}


def what_changed(earlier: Any, now: dict[str, Any]) -> str:
    """The facts that differ between an earlier fingerprint's and this one's, in words ("recipe (weight_decay 0
    -> 0.01), data files"); "model, data or recipe" when the earlier facts are not at hand."""
    if not isinstance(earlier, dict) or not isinstance(earlier.get("recipe"), dict):
        return "model, data or recipe"
    words = []
    for key, value in now.items():
        if key == "recipe":
            fields = sorted(set(value) | set(earlier["recipe"]))
            diff = [f"{f} {earlier['recipe'].get(f)} -> {value.get(f)}" for f in fields
                    if earlier["recipe"].get(f) != value.get(f)]
            if diff:
                words.append(f"recipe ({', '.join(diff)})")
        elif earlier.get(key) != value and _FACT_NAMES[key] not in words:
            words.append(_FACT_NAMES[key])
    return ", ".join(words) or "model, data or recipe"


def point_tag(lr: float, layer_decay: float) -> str:
    return f"lr{lr:.6g}_ld{layer_decay:.6g}"


def stamp_of(folder: Path) -> tuple[str, str] | None:
    """(fingerprint, task) of a progress folder, None when it has no readable stamp (not ours, or no seed yet)."""
    try:
        fp, task = (folder / "fingerprint").read_text(encoding="utf-8").split()
        return fp, task
    except (OSError, ValueError):
        return None


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check(record: dict[str, Any]) -> str:
    return _json_digest({k: v for k, v in record.items() if k != "check"})[:16]


def intact(record: Any) -> bool:
    """A seed's record in OUT/progress/ as it was written: the run's shape, its point, and its `check` (a digest of
    the rest: a record edited by hand is trained again rather than trusted)."""
    return (valid_run(record) and _number(record.get("lr")) and _number(record.get("layer_decay"))
            and record.get("check") == _check(record))


def valid_run(run: Any) -> bool:
    """A recorded run's shape: {'seed': int, 'metrics': {name: number}, 'train': {...}} (one out of shape is
    trained again)."""
    return (isinstance(run, dict) and isinstance(run.get("seed"), int) and isinstance(run.get("train"), dict)
            and isinstance(run.get("metrics"), dict) and bool(run["metrics"])
            and all(_number(v) for v in run["metrics"].values()))


class Progress:
    """The finished seeds of one task under one fingerprint, and the weights of each point's best seed."""

    def __init__(self, out: Path, task: str, facts: dict[str, Any], fresh: bool = False, log: Any = print):
        self.out, self.task, self.facts, self.folder = out, task, facts, out / FOLDER
        self.fp = fp = fingerprint(facts)
        self.runs: dict[tuple[str, int], dict[str, Any]] = {}  # (point tag, seed) -> the run's record
        self.plan: dict[str, Any] = {}  # what this command trains ({seeds, points, main_metric}), for `electra status`
        self.earlier_model: tuple[str, int] | None = None  # the (point, seed) whose weights model/ holds
        if self.folder.is_dir() and (fresh or stamp_of(self.folder) != (fp, task)):
            if not fresh and any(self.folder.glob("*_seed*")):  # records, weights or a seed's saved state
                changed = what_changed(read_json_object(self.folder / FACTS), facts)
                log(f"{self.folder} holds seeds trained with other {changed}: every seed is trained")
            shutil.rmtree(self.folder)
        if fresh:
            return
        self._read_finished(log)
        for f in sorted(self.folder.glob("*_seed*.json")):
            record = read_json_object(f)  # {} when damaged: that seed is trained again
            if intact(record):
                self.runs[(point_tag(record["lr"], record["layer_decay"]), record["seed"])] = {
                    k: v for k, v in record.items() if k != "check"}
            else:
                log(f"{f} is damaged or was edited: that seed is trained again")

    def _read_finished(self, log: Any) -> None:
        """The seeds of an earlier, finished run of this task (results.json) under the same fingerprint."""
        result = read_json_object(self.out / "results.json")
        if result.get("task") != self.task or "fingerprint" not in result:
            return
        if result["fingerprint"] != self.fp:
            changed = what_changed(result.get("fingerprint_facts"), self.facts)
            log(f"{self.out / 'results.json'} was trained with other {changed}: every seed is trained")
            return
        try:
            points = result.get("grid") or [{"lr": result["config"]["lr"], "layer_decay": result["config"][
                "layer_decay"], "runs": result["runs"]}]
            for p in points:
                for run in p["runs"]:
                    if valid_run(run):
                        self.runs[(point_tag(p["lr"], p["layer_decay"]), run["seed"])] = {
                            "lr": p["lr"], "layer_decay": p["layer_decay"], **run}
            meta = read_json_object(self.out / "model" / "finetune.json")
            if meta.get("fingerprint") == self.fp:
                self.earlier_model = (point_tag(meta["config"]["lr"], meta["config"]["layer_decay"]), meta["seed"])
        except (TypeError, KeyError, AttributeError):  # a results.json edited out of shape: its seeds are retrained
            return

    def done(self, lr: float, layer_decay: float, seed: int, metric: str) -> dict[str, Any] | None:
        """The recorded run ({'seed', 'metrics', 'train'}) of this seed at this point, if it finished earlier
        (and scored the task's `metric`)."""
        record = self.runs.get((point_tag(lr, layer_decay), seed))
        if record is None or metric not in record["metrics"]:
            return None
        return {k: record[k] for k in ("seed", "metrics", "train")}

    def stamp(self) -> None:
        """Make the folder this run's (before the first thing is written into it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if stamp_of(self.folder) != (self.fp, self.task):
            atomic_write_text(self.folder / FACTS, json.dumps(self.facts, indent=1))
            atomic_write_text(self.folder / "fingerprint", f"{self.fp} {self.task}\n")
        if self.plan and read_json_object(self.folder / PLAN) != self.plan:
            atomic_write_text(self.folder / PLAN, json.dumps(self.plan))

    def seed_state(self, lr: float, layer_decay: float, seed: int, every: float) -> SeedCheckpoint:
        """Where the seed's training state is saved every `every` seconds while it trains (train.SeedState)."""
        return SeedCheckpoint(self, self._file(lr, layer_decay, seed, ".partial"), every)

    def _file(self, lr: float, layer_decay: float, seed: int, suffix: str) -> Path:
        return self.folder / f"{point_tag(lr, layer_decay)}_seed{seed}{suffix}"

    def add(self, lr: float, layer_decay: float, run: dict[str, Any], best: torch.nn.Module | None,
            replaced: int | None) -> None:
        """Record a finished seed; `best`: its model when it is its point's best so far (whose weights are kept,
        and those of the `replaced` seed deleted). Weights first, record second: a seed on record whose point
        it led always has its weights."""
        self.stamp()
        seed = run["seed"]
        if best is not None:
            atomic_write_bytes(self._file(lr, layer_decay, seed, ".safetensors"),
                               save({k: v.detach().cpu().contiguous() for k, v in best.state_dict().items()}))
        record = {"lr": lr, "layer_decay": layer_decay, **run}
        atomic_write_text(self._file(lr, layer_decay, seed, ".json"),
                          json.dumps({**record, "check": _check(record)}, indent=1))
        self.runs[(point_tag(lr, layer_decay), seed)] = record
        if best is not None and replaced is not None:
            self._file(lr, layer_decay, replaced, ".safetensors").unlink(missing_ok=True)
        shutil.rmtree(self._file(lr, layer_decay, seed, ".partial"), ignore_errors=True)

    def weights(self, lr: float, layer_decay: float, seed: int) -> dict[str, torch.Tensor] | None:
        """The saved weights of this seed (kept while it led its point, or model/ of a finished run), or None."""
        files = [self._file(lr, layer_decay, seed, ".safetensors")]
        if self.earlier_model == (point_tag(lr, layer_decay), seed):
            files.append(self.out / "model" / "model.safetensors")
        for f in files:
            try:
                return load_file(str(f))
            except (OSError, SafetensorError):
                continue
        return None

    def finish(self) -> None:
        """The task's results are written: its records and weights are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)


class SeedCheckpoint:
    """One seed's training state (train.capture) in progress/<point>_seed<k>.partial/: tensors.safetensors (weights,
    optimizer state, RNG states) and state.json (step, position in the epoch, smoothed loss, ...), replaced whole
    at each save; removed once the seed is on record."""

    def __init__(self, progress: Progress, folder: Path, every: float):
        self.progress, self.folder, self.every = progress, folder, every
        self.extra: dict[str, Any] = {}  # saved in state.json beside the loop's own (the seed's W&B run id)
        self._read: tuple[Any] | None = None  # what peek() read, for load() to hand over

    def peek(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The saved state, or None (none saved, or unreadable: the seed starts over); kept for load()."""
        if self._read is None:
            try:
                meta = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
                tensors = load_file(str(self.folder / "tensors.safetensors"))
                self._read = ((tensors, meta) if isinstance(meta, dict) else None,)
            except (OSError, ValueError, SafetensorError):
                self._read = (None,)
        return self._read[0]

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The saved state (read once, also after a peek), no longer held here: the loop copies it into the model."""
        saved, self._read = self.peek(), None
        return saved

    def save(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self._read = None
        self.progress.stamp()
        with staged_dir(self.folder) as tmp:
            save_tensors(tensors, tmp / "tensors.safetensors")
            (tmp / "state.json").write_text(json.dumps({**meta, **self.extra}))

    def drop(self) -> None:
        self._read = None
        shutil.rmtree(self.folder, ignore_errors=True)
