"""Ctrl-C and SIGTERM as a request to stop, for the commands that run until told to."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_stop_signal(handler: Callable[[int], None]) -> Iterator[None]:
    """Calls ``handler(signum)`` on SIGINT/SIGTERM while inside; the previous handlers come back after.

    Only the main thread may install handlers; elsewhere (a test runner's worker) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handle(signum: int, _frame: FrameType | None) -> None:
        handler(signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, _handle)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
