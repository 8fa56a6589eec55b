"""Command lines of `--field value` options, parsed into typed values: the part of config handling that knows
nothing of which configs exist (`electra pretrain` and `electra finetune` both use it).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from electra.errors import UserError


def parse_value(text: str, kind: type, where: str) -> Any:
    """Parse a command-line string as `kind` (bool, int, float or str); UserError naming `where` if it is not."""
    try:
        if kind is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            try:
                return int(text)  # exact, however large (a seed above 2^53 survives)
            except ValueError:
                value = float(text)  # accept 1e6 for step counts
            if value != int(value):
                raise ValueError
            return int(value)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        return text
    except (ValueError, OverflowError):  # OverflowError: int(float("inf")), e.g. --max-steps inf or 1e400
        raise UserError(f"bad value {text!r} for {where}: expected {kind.__name__}") from None


def parse_duration(text: str, where: str) -> float:
    """Seconds from '3600', '90s', '45m', '6h', '1.5d'."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    body, scale = (text[:-1], units[text[-1].lower()]) if text and text[-1].lower() in units else (text, 1)
    try:
        value = float(body) * scale
    except ValueError:
        raise UserError(f"bad value {text!r} for {where}: expected seconds, or a number with s, m, h or d "
                        f"(e.g. 6h)") from None
    if not math.isfinite(value):
        raise UserError(f"bad value {text!r} for {where}: expected a finite duration")
    return value


def split_argv(argv: list[str], field_type: Callable[[str], Any]) -> tuple[dict[str, str], list[str]]:
    """Pull `--field value` / `--field=value` pairs naming config fields out of argv; return them and the rest.
    `field_type(key)` is the field's type, or None when `key` names no field. A bool field given without a
    value (last, or before another --option) means true: `--compile` is `--compile true`."""
    overrides: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        kind = field_type(key) if key else None
        if kind is None:
            rest.append(arg)
            i += 1
            continue
        if not eq:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if kind is bool and (nxt is None or nxt.startswith("--")):
                value = "true"
            elif nxt is None or nxt.startswith("--"):  # `--lr --epochs 1`: the value was forgotten
                raise UserError(f"--{key} needs a value")
            else:
                value = nxt
                i += 1
        overrides[key] = value
        i += 1
    return overrides, rest
