"""The server's refusals in the log: each reason's first refusal in a window with its details, the rest counted.

Every refusal was one INFO line: a burst of connections shed or timed out (`service.http_protocol`) wrote about
1,000 lines a second, as much log as the attack itself. Here, per status and error, the first refusal of each
`window` is logged as it happens (request id, reason, client); the others in that window are only counted, and one
line at its end says how many (`refused_more`, with their `count`). The metrics (`http_protocol_refusals_total`)
still count every refusal one by one; the log keeps the count, not each request id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

#: How long a reason's refusals are gathered into one line after the one logged in full.
WINDOW_SECONDS = 1.0


class RefusalLog:
    """At most two lines per status and error per `window` seconds, whatever the rate of refusals."""

    def __init__(self, logger: logging.Logger, window: float = WINDOW_SECONDS) -> None:
        self.logger = logger
        self.window = window
        self._counted: dict[tuple[int, str], int] = {}  # reasons within their window: refusals not yet logged

    def refused(self, loop: asyncio.AbstractEventLoop, status: int, code: str, details: dict[str, Any]) -> None:
        key = (status, code)
        if key in self._counted:
            self._counted[key] += 1
            return
        self._counted[key] = 0
        self.logger.info("refused", extra={"status": status, "error": code, **details})
        loop.call_later(self.window, self._window_over, key)

    def _window_over(self, key: tuple[int, str]) -> None:
        count = self._counted.pop(key, 0)
        if count:
            status, code = key
            extra = {"status": status, "error": code, "count": count, "seconds": self.window}
            self.logger.info("refused_more", extra=extra)
