"""`electra status RUN`: where a pre-training run or a fine-tuning stands, read from its folder.

While it trains, or after:

    electra status runs/small            # progress, speed, ETA, the last training and held-out numbers, alerts
    electra status runs/small --json     # the same as one JSON object
    electra status ft/glue               # a fine-tuning output: tasks and seeds done, the seed training (finetune/status.py)

Only reads: config.json, tokenizer.json, metrics.jsonl, train.log and the checkpoints' state.json. The run's
process is not asked anything, so "last record 2m ago" is how you tell a run that still writes from one that
stopped.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from electra.checkpoint import latest_checkpoint, read_state
from electra.config import PretrainConfig
from electra.errors import ArgumentParser, UserError
from electra.logs import fmt_duration, read_metrics
from electra.model_card import read_json_object

ALERT = re.compile(r"health warning at step (\d+) \((\w+)\): (.*)")
CLEARED = re.compile(r"health: (\w+) cleared at step (\d+)")
TRAIN = ("loss", "mlm_loss", "gen_acc", "replaced_rate", "disc_acc", "tokens_per_s")
EVAL = ("gen_acc", "replaced_rate", "disc_auc", "disc_precision", "disc_recall")


def active_alerts(log: Path) -> dict[str, str]:
    """The health alerts train.log raised and did not clear since: {rule: the warning line}."""
    alerts: dict[str, str] = {}
    if log.is_file():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if m := ALERT.search(line):
                alerts[m[2]] = m[0]
            elif m := CLEARED.search(line):
                alerts.pop(m[1], None)
    return alerts


def run_status(run: Path, now: float | None = None) -> dict[str, Any]:
    """What `electra status` shows, as a dict."""
    if not run.exists():
        raise UserError(f"run folder {run} does not exist; give the --out of `electra pretrain` or `electra finetune`")
    if not run.is_dir():
        raise UserError(f"{run} is a file; give the --out folder of `electra pretrain` or `electra finetune`")
    if not (run / "config.json").is_file():
        raise UserError(f"{run} is neither a pre-training run (no config.json) nor a fine-tuning output; give the "
                        f"--out of `electra pretrain` or `electra finetune`")
    try:
        cfg = PretrainConfig.from_dict(json.loads((run / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError, UserError) as e:
        raise UserError(f"{run / 'config.json'} is not a readable run config ({' '.join(str(e).split())[:120]}); "
                        f"is {run} an `electra pretrain` run folder?") from None
    m, t = cfg.model, cfg.train
    tok = read_json_object(run / "tokenizer.json")  # {} if missing or damaged: the data is then not named
    ckpt = latest_checkpoint(run) if (run / "checkpoints").is_dir() else None
    state = read_state(ckpt) if ckpt is not None else {}
    records = read_metrics(run / "metrics.jsonl") if (run / "metrics.jsonl").is_file() else []
    train = next((r for r in reversed(records) if "train/loss" in r), None)
    held = next((r for r in reversed(records) if "eval/loss" in r), None)
    step = max([r["step"] for r in records] + [state.get("step", 0)])
    out: dict[str, Any] = {
        "run": str(run), "model": f"{m.num_layers} x {m.hidden_size}", "seq_len": t.seq_len,
        "global_batch_size": t.global_batch_size, "objective": cfg.objective.objective,
        "masking": cfg.objective.masking,
        "data": [x["dataset"] for x in tok["mixture"]] if tok.get("mixture") else tok.get("dataset"),
        "step": step, "max_steps": t.max_steps,
        "checkpoint": ckpt.name if ckpt is not None else None,
        "checkpoints": sorted(p.name for p in (run / "checkpoints").glob("step_*")) if ckpt is not None else [],
        "training_seconds": state.get("elapsed"), "tokens_seen": state.get("tokens_seen"),
        "train": {k: train[f"train/{k}"] for k in TRAIN if f"train/{k}" in train} if train else None,
        "eval": ({"step": held["step"]} | {k: held[f"eval/{k}"] for k in EVAL if f"eval/{k}" in held}) if held else None,
        "last_record_seconds_ago": (now or time.time()) - records[-1]["time"] if records and "time" in records[-1] else None,
        "alerts": list(active_alerts(run / "train.log").values()),
        "budget_plan": state.get("budget_plan"),
    }
    speed = (train or {}).get("train/tokens_per_s")
    remaining = max(0, t.max_steps - step)
    out["eta_seconds"] = 0.0 if not remaining else remaining * t.global_batch_size * t.seq_len / speed if speed else None
    return out


def describe(s: dict[str, Any]) -> str:
    data = ", ".join(s["data"]) if isinstance(s["data"], list) else s["data"] or "?"
    lines = [(f"{s['run']}: {s['objective']} ({s['masking']} masking), {s['model']} discriminator, "
              f"seq {s['seq_len']}, global batch {s['global_batch_size']}; data {data}")]
    done = f" ({100 * s['step'] / s['max_steps']:.0f}%)" if s["max_steps"] else ""
    progress = f"step {s['step']:,} / {s['max_steps']:,}{done}"
    if s["checkpoint"]:
        progress += f"; checkpoint {s['checkpoint']} ({len(s['checkpoints'])} kept)"
    if s["tokens_seen"]:
        progress += f"; {s['tokens_seen'] / 1e6:,.1f} M tokens"
    if s["training_seconds"]:
        progress += f" in {fmt_duration(s['training_seconds'])} of training"
    lines.append(progress)
    if s["eta_seconds"] is not None:
        lines.append("finished: max_steps reached" if s["eta_seconds"] == 0 else
                     f"eta {fmt_duration(s['eta_seconds'])} at {s['train']['tokens_per_s']:,.0f} tokens/s")
    if s["last_record_seconds_ago"] is not None:
        lines.append(f"last record {fmt_duration(s['last_record_seconds_ago'])} ago")
    if s["train"]:
        lines.append("train: " + " | ".join(f"{k} {v:.4g}" for k, v in s["train"].items() if k != "tokens_per_s"))
    if s["eval"]:
        lines.append(f"held-out @ {s['eval']['step']:,}: "
                     + " | ".join(f"{k} {v:.4g}" for k, v in s["eval"].items() if k != "step"))
    lines += [f"alert: {a}" for a in s["alerts"]] or ["health: no alert active"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="electra status", description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a pre-training run folder (the --out of `electra pretrain`), or the --out "
                                          "of `electra finetune`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    a = p.parse_args(argv)
    if a.run.is_dir() and not (a.run / "config.json").is_file():  # not a run: a fine-tuning output?
        from electra.finetune.status import describe_finetune, finetune_status
        if (f := finetune_status(a.run)) is not None:
            print(json.dumps(f, indent=1) if a.json else describe_finetune(f))
            return 0
    s = run_status(a.run)
    print(json.dumps(s, indent=1) if a.json else describe(s))
    return 0
