"""The server's refusals in the log: each reason's first refusal in a window with its details, the rest counted.

Every refusal was one INFO line: a burst of connections shed or timed out (`service.http_protocol`) wrote about
1,000 lines a second, as much log as the attack itself. Here, per status and error, the first refusal of each
`window` is logged as it happens (request id, reason, client); the others in that window are only counted, and one
line at its end says how many (`refused_more`, with their `count`). The metrics (`http_protocol_refusals_total`)
still count every refusal one by one; the log keeps the count, not each request id.

Connections closed unanswered to make room (`service.http_protocol.ConnectionPool`) are logged the same way, per
limit (`shed`, then `shed_more`): a burst that lost 1,008 requests to `max_idle_connections` once left no line. So
are answers cut because their clients did not take them (`answer_dropped`, `answer_dropped_more`, per rule): their
access lines, written when the app had answered, say 200. And so are the access lines of requests the app refuses
before any route's work (401, 404, 405, 415, per status and route: `request`, then `request_more`): one client
sending them wrote 1.0-1.6 MB of log a second (reviews 7 and 8, R7-9, R8-5).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

#: How long a reason's refusals are gathered into one line after the one logged in full.
WINDOW_SECONDS = 1.0
#: Every refusal log alive, for `RefusalLog.flush_all` at the stop.
_LOGS: weakref.WeakSet[RefusalLog] = weakref.WeakSet()


class RefusalLog:
    """At most two lines per kind (status and error, or the limit a connection was shed for) per `window` seconds,
    whatever the rate."""

    def __init__(self, logger: logging.Logger, window: float = WINDOW_SECONDS) -> None:
        self.logger = logger
        self.window = window
        self._counted: dict[tuple[str, int, str], int] = {}  # kinds within their window: events not yet logged
        _LOGS.add(self)

    @staticmethod
    def flush_all() -> None:
        """`flush` every refusal log (the protocol's, the app's admission's and access lines'): the server stops."""
        for log in list(_LOGS):
            log.flush()

    def refused(self, loop: asyncio.AbstractEventLoop, status: int, code: str, details: dict[str, Any]) -> None:
        """A request answered with an error by the server itself."""
        self._note(loop, ("refused", status, code), {"status": status, "error": code, **details})

    def shed(self, loop: asyncio.AbstractEventLoop, limit: str, details: dict[str, Any]) -> None:
        """A connection closed with no request under way, to keep within `limit`."""
        self._note(loop, ("shed", 0, limit), {"limit": limit, **details})

    def dropped(self, loop: asyncio.AbstractEventLoop, rule: str, details: dict[str, Any]) -> None:
        """A connection reset with its answer not all sent: its client did not take it fast enough (`rule`)."""
        self._note(loop, ("answer_dropped", 0, rule), {"limit": rule, **details})

    def answered(self, loop: asyncio.AbstractEventLoop, status: int, route: str, details: dict[str, Any]) -> None:
        """An access line of a request refused by the app before any route's work (`details` are its fields)."""
        self._note(loop, ("request", status, route), details)

    def flush(self) -> None:
        """Log the counts of every window still open: the server is stopping, and its loop will not run their
        timers (24 answers cut at the stop left one line, the first)."""
        for key in list(self._counted):
            self._window_over(key)

    def _note(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int, str], extra: dict[str, Any]) -> None:
        if key in self._counted:
            self._counted[key] += 1
            return
        self._counted[key] = 0
        self.logger.info(key[0], extra=extra)
        loop.call_later(self.window, self._window_over, key)

    def _window_over(self, key: tuple[str, int, str]) -> None:
        count = self._counted.pop(key, 0)
        if count:
            message, status, code = key
            kinds = {"refused": {"status": status, "error": code}, "request": {"status": status, "route": code}}
            kind = kinds.get(message, {"limit": code})
            self.logger.info(f"{message}_more", extra={**kind, "count": count, "seconds": self.window})
