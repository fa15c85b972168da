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

__all__ = ["Interrupted", "interruptible", "raise_if_stopped"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The signal that stopped the run inside `interruptible`, kept beside the exception raised for it:
# code called back from C can swallow that exception (pydantic-core's union serializer takes it
# for a member that did not fit and tries the next), and the handlers then ignore any other.
_stopped: int | None = None


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

    global _stopped  # noqa: PLW0603 - one run at a time: signals reach the main thread only
    _stopped = None

    def stop(signum: int, frame: FrameType | None) -> None:
        global _stopped  # noqa: PLW0603
        for each in _SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        _stopped = signum
        raise Interrupted(signum)

    for signum in _SIGNALS:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        _stopped = None
        for signum, handler in previous.items():
            # None: a handler not set from Python, which cannot be put back; the default is.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def raise_if_stopped() -> None:
    """At a point where stopping is safe (between documents, before results are renamed into
    place): raise `Interrupted` for a signal whose exception was swallowed where it was raised."""
    if _stopped is not None:
        raise Interrupted(_stopped)
