"""Stop signals as exceptions, so a stopped batch command unwinds like Ctrl-C and leaves no file behind.

A scheduler stops a job with SIGTERM; a closed terminal or a dropped ssh session sends SIGHUP. Each raises `Stopped`
(a BaseException, like KeyboardInterrupt, so no handler of errors catches it). This module imports only the
standard library: it is installed before the command's slow imports.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Stopped`; the earlier handlers come back after it."""
    previous = {signum: signal.signal(signum, _raise) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_code(exc: BaseException) -> int:
    """The shell's code for a command ended by a signal: 128 + its number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + (exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
