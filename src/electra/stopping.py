"""Stopping a training loop at the end of a step: Ctrl-C or SIGTERM (a scheduler's time limit or preemption) is
noted, the loop finishes its step, saves and stops; a second signal stops at once. Used by `electra pretrain`
and by `electra finetune`'s seeds."""
from __future__ import annotations

import signal
import threading
from typing import Any, Self

from electra.errors import Terminated


class StopAtStepEnd:
    """Note the first of `signals` in `signum` for the loop to act on; raise at the second. Installed from the main
    thread only (elsewhere signals cannot be handled); `restore` (or leaving the `with`) puts the previous
    handlers back."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signals, self.signum = signals, None
        self.previous: dict[int, Any] = {}

    def install(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self.note) for sig in self.signals}
        return self

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def note(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            self.stop()
        self.signum = signum

    def stop(self) -> None:
        """Stop as the noted signal would have: KeyboardInterrupt for Ctrl-C, Terminated for SIGTERM."""
        raise KeyboardInterrupt if self.signum == signal.SIGINT else Terminated

    @property
    def reason(self) -> str:
        return "interrupted (Ctrl-C)" if self.signum == signal.SIGINT else "terminated (SIGTERM)"
