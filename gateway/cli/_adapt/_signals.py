"""SIGINT and SIGTERM while `cafx adapt` runs: the run ends as an exception, so that its cleanup
runs (temporaries removed, a commit under way rolled back), and exits 128 + the signal's number
(130 for Ctrl-C, 143 for SIGTERM), never 1 ("rejected") or 2.

Left to their defaults, SIGTERM ends the process at once, leaving every temporary of the run
behind (tens of thousands, for a large register written one file per episode), and SIGINT becomes
click's "Aborted!" with exit 1, which says "documents rejected".
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "interruptible"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(SystemExit):
    """The run was stopped by `signum`; its exit code is 128 + `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signal = signal.Signals(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """While inside: the first SIGINT or SIGTERM raises `Interrupted` where the run is; any that
    follow are ignored, so the cleanup is not cut short (SIGKILL still ends it). The handlers in
    place before are put back after. Signals can be handled in the main thread only: elsewhere
    (a test runner's thread, say) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {
        signum: signal.getsignal(signum) for signum in _SIGNALS
    }

    def stop(signum: int, frame: FrameType | None) -> None:
        for each in _SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        raise Interrupted(signum)

    for signum in _SIGNALS:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler not set from Python, which cannot be put back; the default is.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
