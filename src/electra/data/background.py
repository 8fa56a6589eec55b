"""Running a generator in a background thread, so producing items overlaps with consuming them.

    for item in in_background(produce(), depth=4):   # produce() runs in a daemon thread
        ...

Used by the prepare pipeline (reading and tokenizing overlap with building examples) and by
BatchStream's prefetching (the next steps are built while the trainer works on this one).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Raised:
    """An exception from the producer, wrapped so that an exception *value* it yields is not raised."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def in_background(items: Iterator[T], depth: int = 4) -> Generator[T, None, None]:
    """Yield `items` in order while a daemon thread produces them, at most `depth` ahead.

    An exception raised by `items` is re-raised here, in the consumer, where its item would have
    come. Closing this generator (explicitly, or by dropping it) stops the thread, closes `items` in
    that thread (so its files are closed) and waits for the thread to end, so nothing keeps running
    behind the consumer's back.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        # Time out now and then so a stopped consumer never leaves the thread blocked on a full queue.
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(_Raised(e))
        finally:
            # A generator can only be closed by the thread that runs it.
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="electra-background", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
