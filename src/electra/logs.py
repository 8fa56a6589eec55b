"""Where a run's numbers go: one line per interval to the terminal and RUN_DIR/train.log, every metric to
RUN_DIR/metrics.jsonl, TensorBoard (RUN_DIR/tb) and, with `--wandb PROJECT`, Weights & Biases; a progress bar on
a terminal, and curves as a PNG. Only rank 0 constructs one; other ranks get `NullLogger`.

W&B: the run's id is kept in RUN_DIR/wandb_id, so a resumed run logs into the same W&B run (resume="allow").
W&B ignores steps at or below the last one it holds: the steps that a killed run logged after its last
checkpoint are not replaced when the resume logs them again (an exact resume logs the same values).
Entity, mode (WANDB_MODE=offline) and key come from W&B's own environment variables."""
from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class NullLogger:
    def print(self, text: str) -> None: ...
    def log(self, step: int, metrics: dict[str, float], line: str | None = None) -> None: ...
    def progress(self, step: int) -> None: ...
    def set_total(self, steps: int) -> None: ...
    def update_config(self, config: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class RunLogger(NullLogger):
    def __init__(self, run_dir: Path, start_step: int, total_steps: int, tensorboard: bool = True,
                 wandb_project: str | None = None, config: dict[str, Any] | None = None):
        self.run_dir = run_dir
        self.wandb = start_wandb(run_dir, wandb_project, config or {}) if wandb_project else None
        forget_after(run_dir / "metrics.jsonl", start_step)
        self.log_file = open(run_dir / "train.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.metrics_file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
            except ImportError:  # tensorboard is a dependency, but a stripped environment should still train
                self.tb = None
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, leave=False)

    def print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)
        self.log_file.write(text + "\n")
        self.log_file.flush()

    def log(self, step: int, metrics: dict[str, float], line: str | None = None) -> None:
        record = {"step": step, "time": round(time.time(), 3), **metrics}
        self.metrics_file.write(json.dumps(record) + "\n")
        self.metrics_file.flush()
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)
        if line is not None:
            self.print(line)

    def progress(self, step: int) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.refresh()

    def set_total(self, steps: int) -> None:
        """The schedule's new length (a --time-budget plan)."""
        if self.bar is not None:
            self.bar.total = steps
            self.bar.refresh()

    def update_config(self, config: dict[str, Any]) -> None:
        """The run's config changed (a --time-budget plan): W&B shows the one the steps run on."""
        if self.wandb is not None:
            self.wandb.config.update(config, allow_val_change=True)

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        self.log_file.close()
        self.metrics_file.close()


def require_wandb(project: str, without: str = "TensorBoard and metrics.jsonl are always written") -> None:
    """A one-line error, before anything is built, for --wandb without a project name or without the package;
    `without`: what the command logs anyway."""
    import importlib.util

    from electra.errors import UserError
    if not project.strip():
        raise UserError("--wandb needs a project name: --wandb my-project")
    if importlib.util.find_spec("wandb") is None:
        raise UserError(f"--wandb needs the wandb package: pip install wandb (or drop --wandb; {without})")


def start_wandb(run_dir: Path, project: str, config: dict[str, Any]) -> Any:
    """A W&B run for this run folder: a new one, or the one its earlier commands logged into (RUN_DIR/wandb_id)."""
    from electra.checkpoint import atomic_write_text
    id_file = run_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
    atomic_write_text(id_file, run_id + "\n")
    return wandb_run(project, config, id=run_id, resume="allow", name=run_dir.name, dir=str(run_dir))


def wandb_run(project: str, config: dict[str, Any], **init: Any) -> Any:
    """wandb.init, with its failures (no API key, no network, a bad entity) as a one-line error."""
    import wandb

    try:
        return wandb.init(project=project, config=config, **init)
    except Exception as e:  # noqa: BLE001 - W&B's exception types vary by version
        from electra.errors import UserError
        raise UserError(f"--wandb {project}: W&B did not start ({' '.join(str(e).split())[:200]}); run `wandb "
                        f"login`, or set WANDB_MODE=offline to log locally and `wandb sync` later") from None


def forget_after(path: Path, step: int) -> None:
    """Drop the records past `step` that a killed run logged after its last checkpoint: the resumed run logs those
    steps again, so metrics.jsonl reads as one uninterrupted run (as TensorBoard's purge_step does for tb/)."""
    if not path.is_file():
        return
    keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    text = "".join(json.dumps(r) + "\n" for r in keep)
    if text.encode("utf-8") != path.read_bytes():
        from electra.data.shards import atomic_write_bytes
        atomic_write_bytes(path, text.encode("utf-8"))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a line cut short by a crash (the run was killed mid-write) is skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:  # a torn or empty line
                continue
    return records


def curve_panels(records: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The panels of curves.png, (title, metric keys); every held-out key also for each `--also-eval` split
    (eval_NAME/...) the records hold."""
    panels = [("loss", ["train/mlm_loss", "eval/mlm_loss"]), ("rtd loss", ["train/rtd_loss", "eval/rtd_loss"]),
              ("generator accuracy", ["train/gen_acc", "eval/gen_acc", "eval/sampled_acc"]),
              ("replaced rate", ["train/replaced_rate", "eval/replaced_rate"]),
              ("discriminator", ["eval/disc_auc", "eval/disc_precision", "eval/disc_recall"]),
              ("learning rate", ["train/lr"])]
    splits = sorted({k.split("/", 1)[0] for r in records for k in r if k.startswith("eval_")})
    return [(title, keys + [f"{split}/{k[len('eval/'):]}" for split in splits for k in keys if k.startswith("eval/")])
            for title, keys in panels]


def plot_curves(run_dir: Path) -> Path | None:
    """Training and held-out curves (losses, generator accuracy, replaced rate, discriminator AUC) as a PNG."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(path)
    panels = curve_panels(records)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in keys:
            pts = [(r["step"], r[key]) for r in records if key in r]
            if pts:
                ax.plot(*zip(*pts), label=key, marker="." if key.startswith("eval") else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:  # e.g. the held-out panel of a run without a validation split
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    out = run_dir / "curves.png"
    tmp = out.with_name("curves.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(out)
    return out


def disc_columns(metrics: dict[str, float], split: str, joint: bool) -> list[str]:
    """The discriminator's part of a log line (none for the MLM baseline): the replaced rate, its loss and accuracy
    (its LM's for replace_mlm / all_tokens_mlm), and for held-out metrics the AUC, precision and recall of its
    detector when it has one."""
    if not joint:
        return []
    m = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(split + "/")}
    lm = "disc_lm_acc" in m
    parts = [f"replaced {m['replaced_rate']:.3f}", f"{'disc_lm' if lm else 'rtd'} {m['rtd_loss']:.4f}",
             f"disc_lm_acc {m['disc_lm_acc']:.3f}" if lm else f"disc_acc {m['disc_acc']:.3f}"]
    if "disc_auc" in m:
        parts += [f"disc_auc {m['disc_auc']:.3f}", f"precision {m['disc_precision']:.3f}", f"recall {m['disc_recall']:.3f}"]
    return parts


def log_also(log: NullLogger, step: int, prefix: str, metrics: dict[str, float]) -> None:
    """An --also-eval held-out split's numbers, under `prefix/` (no alerts: those judge the main split)."""
    shown = [f"{name} {metrics[f'eval/{name}']:.3f}" for name in ("mlm_loss", "gen_acc", "replaced_rate", "disc_auc")
             if f"eval/{name}" in metrics]
    log.log(step, {f"{prefix}/{k.removeprefix('eval/')}": v for k, v in metrics.items()},
            f"  {prefix} @ {step}: " + " | ".join(shown))


def log_eval(log: NullLogger, step: int, metrics: dict[str, float], health: Any, joint: bool) -> None:
    """Log a held-out evaluation and the health monitor's alerts on it (health.Monitor)."""
    if not metrics:
        log.print(f"step {step}: no held-out examples, skipping evaluation")
        return
    log.log(step, metrics, " | ".join([
        f"eval @ {step}: mlm {metrics['eval/mlm_loss']:.3f}", f"gen_acc {metrics['eval/gen_acc']:.3f}",
        *([f"sampled_acc {metrics['eval/sampled_acc']:.3f}"] if joint else []), *disc_columns(metrics, "eval", joint)]))
    for line in health.update(step, metrics):  # alerts on the two-player dynamics (health.py)
        log.print(line)
