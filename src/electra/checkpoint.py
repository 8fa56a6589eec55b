"""Run folders and checkpoints: atomic, safetensors + JSON only (loading never unpickles code).

    RUN_DIR/config.json                         the resolved PretrainConfig
    RUN_DIR/tokenizer.json                      vocab hash, lower-casing, accent stripping, special token ids
    RUN_DIR/vocab.txt                           the vocabulary the run was trained with
    RUN_DIR/checkpoints/step_00001000/          model.safetensors, optimizer.safetensors, state.json
    RUN_DIR/checkpoints/LATEST                  the name of the newest complete checkpoint
    RUN_DIR/metrics.jsonl, train.log, tb/       metrics and logs

A checkpoint folder is written under a temporary name and renamed into place, then LATEST is replaced
atomically, so a run killed at any moment leaves either the old or the new checkpoint, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from electra.config import PretrainConfig
from electra.data.dataset import PretrainData
from electra.data.mixture import Mixture
from electra.data.shards import atomic_write_bytes, foreign, lock_folder, replace_dir
from electra.data.tokenizer import vocab_sha256
from electra.errors import UserError


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------------
# run folders


def read_run_json(run_dir: Path, name: str, require: str | None = None) -> dict:
    """One of a run folder's JSON files, for a resume; a missing or damaged one (not an object, or without the
    `require`d string field) is a one-line error."""
    try:
        value = json.loads((run_dir / name).read_text(encoding="utf-8"))
        problem = "not a JSON object" if not isinstance(value, dict) else (
            f"no {require}" if require and not isinstance(value.get(require), str) else None)
    except (OSError, ValueError) as e:
        problem = str(e)[:120]
    if problem:
        raise UserError(f"cannot resume {run_dir}: its {name} is missing or damaged ({problem}); restore it "
                        f"or start a fresh run in another --out folder")
    return value


RUN_FILES = (".lock", "config.json", "tokenizer.json", "vocab.txt", "train.log", "metrics.jsonl", "curves.png", "tb",
             "checkpoints", "wandb_id", "wandb")


def check_fresh_out(run_dir: Path) -> None:
    """A fresh run goes into a new or empty folder, or over what an earlier start of it left before its first
    checkpoint; never among other files (a dataset, an export, a corpus). Logs a user redirects there are fine."""
    if run_dir.is_file():
        raise UserError(f"--out {run_dir} is a file; give a folder for the run")
    if run_dir.is_dir():
        others = sorted(p.name for p in run_dir.iterdir() if not (
            p.name in RUN_FILES or p.name.startswith(".") or p.suffix in (".log", ".out", ".err", ".txt")))
        if others:
            raise UserError(f"--out {run_dir} holds {foreign(others)} not a run's; give a new or empty folder")


def lock_run(run_dir: Path) -> int:
    """Hold RUN/.lock while this process trains into the folder (`lock_folder`): the same command run again
    meanwhile, or workers that outlived a killed torchrun, are refused instead of writing checkpoints beside it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; give a folder for the run")
    run_dir.mkdir(parents=True, exist_ok=True)
    return lock_folder(run_dir, "pretrain", stop="stop it (under torchrun, its worker processes too)")


def discard_failed_start(run_dir: Path, before: set[str] | None) -> None:
    """Remove what a fresh run that failed before it trained anything wrote into `run_dir` (config.json, logs,
    the vocab copy): a bad input leaves no half-made run behind. `before`: the folder's entries when the command
    began (None: it did not exist). A run with checkpoints, or with logged metrics, is kept as it is."""
    if not run_dir.is_dir() or (run_dir / "checkpoints").exists():
        return
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        return
    for name in RUN_FILES:
        path = run_dir / name
        if name not in (before or set()) and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    if before is None and not any(run_dir.iterdir()):
        run_dir.rmdir()


def write_run_files(run_dir: Path, cfg: PretrainConfig, data: PretrainData, mixture: Mixture | None = None,
                    held: PretrainData | None = None) -> None:
    """config.json, tokenizer.json (the vocabulary's identity, the dataset or the mixture of them, the dataset
    whose held-out split is evaluated) and vocab.txt."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    tok = {"vocab_sha256": vocab_sha256(data.vocab_path), "lowercase": data.lowercase,
           "strip_accents": data.strip_accents, "special": data.special._asdict(), "dataset": str(data.root)}
    tok["eval_dataset"] = str((held or data).root)
    if mixture is not None:
        tok["mixture"] = [{"dataset": name, "share": w} for name, w in zip(mixture.names, mixture.weights)]
    atomic_write_text(run_dir / "tokenizer.json", json.dumps(tok, indent=2))
    if not (run_dir / "vocab.txt").exists():
        shutil.copyfile(data.vocab_path, run_dir / "vocab.txt")


# ---------------------------------------------------------------------------------------------------
# optimizer state <-> (tensors, json)


def optimizer_to_flat(optimizer: torch.optim.Optimizer | dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer (or its index-form state dict) as safetensors-ready tensors plus JSON-ready the rest."""
    sd = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    # a learning rate held as a device tensor (the step-graph mode) is saved as the number it holds
    groups = [{k: v.item() if torch.is_tensor(v) else v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for flat, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, key = flat.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


# ---------------------------------------------------------------------------------------------------
# save / find / load


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors' save_file, with the permissions any other file gets: it creates its file 0600 whatever the
    umask, so a model shared with a group (or published from a shared folder) was unreadable to the others."""
    save_file(tensors, str(path), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_checkpoint(run_dir: Path, step: int, weights: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer | dict, state: dict[str, Any], keep_last: int,
                    keep_every: int = 0) -> Path:
    """Write checkpoints/step_<8-digit step> atomically, point LATEST at it, prune to the newest `keep_last`
    and those at a multiple of `keep_every` (0: none)."""
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:08d}"
    tmp = ckpt_root / f".tmp_step_{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # one metadata key: safetensors writes several in hash-map order, so equal checkpoints got unequal bytes
    save_tensors({k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / "model.safetensors",
                 metadata={"format": "electra"})
    opt_tensors, opt_meta = optimizer_to_flat(optimizer)
    save_tensors(opt_tensors, tmp / "optimizer.safetensors")
    # checksums of the tensor files: bit rot that keeps a file's size and header would otherwise load quietly
    sums = {name: file_sha256(tmp / name) for name in ("model.safetensors", "optimizer.safetensors")}
    state = dict(state, step=step, optimizer=opt_meta, sha256=sums)
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    # the same step saved again (e.g. Ctrl-C right after a save): its old copy waits aside as .old_<name>, where
    # latest_checkpoint finds it if this process is killed between the two renames
    replace_dir(tmp, final, aside=ckpt_root / f".old_{final.name}")
    atomic_write_text(ckpt_root / "LATEST", final.name)
    # LATEST now names a complete checkpoint: what a killed save left behind (half-written .tmp_ folders,
    # set-aside .old_ copies) is no longer needed, nor are checkpoints beyond the newest keep_last (but milestones)
    leftovers = [*ckpt_root.glob(".tmp_step_*"), *ckpt_root.glob(".old_step_*")]
    older = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())[:-keep_last]
    kept = lambda p: keep_every > 0 and p.name[5:].isdigit() and int(p.name[5:]) % keep_every == 0
    for old in leftovers + [p for p in older if not kept(p)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def amend_state(ckpt: Path, updates: dict[str, Any]) -> None:
    """Update fields of a saved checkpoint's state.json in place, atomically (its tensor files are untouched)."""
    atomic_write_text(ckpt / "state.json", json.dumps({**read_state(ckpt), **updates}, indent=1))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None if it has none yet."""
    pointer = run_dir / "checkpoints" / "LATEST"
    name = pointer.read_text().strip() if pointer.is_file() else ""
    if not name:  # lost, emptied or never written: step folders are only ever renamed into place whole
        done = sorted(p for p in (run_dir / "checkpoints").glob("step_*") if (p / "state.json").is_file())
        return done[-1] if done else None
    path = run_dir / "checkpoints" / name
    previous = path.parent / f".old_{path.name}"
    if not path.exists() and (previous / "state.json").exists():  # killed while re-saving this step: the old copy
        try:
            os.replace(previous, path)
        except OSError:  # a read-only run folder (export, detect): read the copy where it is
            return previous
    if not (path / "state.json").exists():
        raise UserError(f"{pointer} names {path.name}, which is missing or incomplete; point LATEST at another "
                        f"step_* folder there, or delete LATEST to resume from the newest complete one")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


EARLIER = "restore it, or use an earlier checkpoint (point checkpoints/LATEST at another step_* folder)"


def read_weights(path: Path, sha256: str | None = None, fix: str = EARLIER) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning a truncated or corrupt file (or one whose bytes no longer match the
    `sha256` recorded when it was saved) into a one-line error that ends with `fix`."""
    if not path.exists():
        raise UserError(f"checkpoint file {path} is missing; {fix}")
    damaged = f"checkpoint file {path} is damaged ({{}}); {fix}"
    if sha256 is not None and file_sha256(path) != sha256:
        raise UserError(damaged.format("its bytes do not match the sha256 recorded when it was saved"))
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(damaged.format(f"corrupt or truncated: {str(e).splitlines()[0]}")) from None


def checkpoint_weights(ckpt: Path, name: str = "model.safetensors",
                       state: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """One tensor file of a checkpoint folder, checked against the sha256 its state.json (`state`, when the
    caller has read it already) records, if any."""
    state = read_state(ckpt) if state is None else state
    return read_weights(ckpt / name, state.get("sha256", {}).get(name))


def read_state(ckpt: Path) -> dict[str, Any]:
    try:
        return json.loads((ckpt / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"checkpoint state {ckpt / 'state.json'} is unreadable ({' '.join(str(e).split())[:120]}); "
                        f"{EARLIER}") from None


# ---------------------------------------------------------------------------------------------------
# a trained run, for detect / finetune / export


class Pretrained(NamedTuple):
    cfg: PretrainConfig
    weights: dict[str, torch.Tensor]  # Electra.weights() names (discriminator.*, generator.*, heads)
    vocab_path: Path
    lowercase: bool
    step: int
    strip_accents: bool | None = None  # None: as lowercase (BERT's rule); the dataset's setting


def task_models(path: Path) -> list[Path]:
    """The OUT/<task>/model folders of a several-task `electra finetune` output (none for anything else)."""
    return sorted(p.parent for p in path.glob("*/model/finetune.json"))


def folder_kind(path: Path) -> str | None:
    """Which of this project's folders `path` is: "finetuned" (`electra finetune`'s OUT or OUT/model; with several
    tasks "finetuned_tasks", OUT holding OUT/<task>/model), "checkpoint"
    (a run's checkpoints/step_*), "run" (an `electra pretrain` --out), or None; for errors that expected another."""
    if (path / "finetune.json").is_file() or (path / "model" / "finetune.json").is_file():
        return "finetuned"
    if task_models(path):
        return "finetuned_tasks"
    if (path / "model.safetensors").is_file() and (path / "state.json").is_file():
        return "checkpoint"
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return "run" if isinstance(cfg, dict) and {"model", "train"} <= cfg.keys() else None


def resolve_checkpoint(path: Path) -> tuple[Path, Path]:
    """(run_dir, checkpoint_dir) for a run folder (its latest checkpoint) or one checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model folder {path} does not exist")
    if path.is_file():
        raise UserError(f"model {path} is a file; pass a run folder of `electra pretrain`, one of its "
                        f"checkpoints/step_* folders or a Hugging Face ELECTRA folder")
    kind = folder_kind(path)
    if kind == "checkpoint":
        return path.parent.parent, path
    if kind == "run":
        ckpt = latest_checkpoint(path) if (path / "checkpoints").exists() else None
        if ckpt is None:
            raise UserError(f"run folder {path} has no checkpoint yet: `electra pretrain` saves one every "
                            f"--save-every steps and when it stops; wait for one, or run its pretrain command again")
        return path, ckpt
    if kind == "finetuned":
        raise UserError(f"{path} is a fine-tuned model (`electra finetune` output): run it with `electra predict "
                        f"--model {path}`; this command takes a pre-training run, a checkpoint or a Hugging Face "
                        f"ELECTRA folder")
    if kind == "finetuned_tasks":
        tasks = ", ".join(str(m.parent) for m in task_models(path)[:4])
        raise UserError(f"{path} holds the fine-tuned models of several tasks ({tasks}); pass one")
    raise UserError(f"{path} is neither an electra run folder (config.json and checkpoints/ from `electra pretrain`) "
                    f"nor a Hugging Face ELECTRA folder (config.json with model_type 'electra')")


def load_pretrained(path: Path) -> Pretrained:
    run_dir, ckpt = resolve_checkpoint(path)
    try:
        cfg = PretrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        tok = json.loads((run_dir / "tokenizer.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"run folder {run_dir} has an unreadable config.json or tokenizer.json ({e})") from None
    state = read_state(ckpt)
    return Pretrained(cfg, checkpoint_weights(ckpt, state=state), run_dir / "vocab.txt", bool(tok["lowercase"]),
                      state["step"], tok.get("strip_accents"))  # absent from runs before it was recorded: BERT's rule


def load_discriminator(path: Path, allow_pickle: bool = False) -> tuple[torch.nn.Module, Pretrained]:
    """The discriminator encoder of a run (what fine-tuning starts from), with its run info. For an MLM run
    the (full-size) generator encoder is the model. `allow_pickle`: a Hugging Face folder may hold a
    pytorch_model.bin (read with torch.load(weights_only=True))."""
    from electra.hf import is_hf_folder, load_hf_encoder  # a Hugging Face ELECTRA folder (docs/hf.md)
    if is_hf_folder(path, any_model_type=True):
        return load_hf_encoder(path, allow_pickle=allow_pickle)
    from electra.model import Encoder

    pre = load_pretrained(path)
    encoder = Encoder(pre.cfg.model)
    try:
        weights = encoder_weights(pre.weights, pre.cfg, "discriminator")
    except KeyError as e:  # sharing=gdes: the generator's table that the residual adds to is missing
        raise UserError(f"checkpoint under {path} lacks {e}; the run folder is incomplete or from another version") from None
    from electra.hf import check_encoder
    check_encoder(weights, pre.cfg.model, f"the weights of the checkpoint under {path}")  # names and shapes
    encoder.load_state_dict(weights)
    return encoder, pre


def strip_prefix(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix`, named without it: one module's state dict out of a whole model's."""
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def encoder_weights(weights: dict[str, torch.Tensor], cfg: PretrainConfig, which: str) -> dict[str, torch.Tensor]:
    """The state dict of one plain `Encoder`, "discriminator" or "generator", from `Electra.weights()` (a
    checkpoint), whatever the sharing: shared tensors are taken from where they are saved, and with sharing=gdes
    the discriminator's embeddings are the sum the discriminator reads, the generator's tables plus its residual.
    What exports, fine-tuning and `detect` load."""
    o = cfg.objective
    if not o.joint:
        return strip_prefix(weights, "generator.")
    if which == "generator" and not o.trained_generator:
        raise ValueError(f"objective.generator={o.generator} has no generator network")
    if which == "generator" and o.objective == "electric":
        raise ValueError("Electric's two-tower generator is not one encoder")
    disc, gen = strip_prefix(weights, "discriminator."), strip_prefix(weights, "generator.")
    if o.sharing == "all":
        return disc
    if o.sharing == "embeddings":
        return disc if which == "discriminator" else gen | {k: v for k, v in disc.items() if k.startswith("embeddings.")}
    if o.sharing == "gdes" and which == "discriminator":
        delta = {k.replace("embeddings.delta.", "embeddings.", 1): v for k, v in disc.items() if k.startswith("embeddings.delta.")}
        rest = {k: v for k, v in disc.items() if not k.startswith("embeddings.")}
        return rest | {k: gen[k] + v for k, v in delta.items()}
    return disc if which == "discriminator" else gen
