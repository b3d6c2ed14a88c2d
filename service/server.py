"""`python -m service`: the app on one uvicorn worker, every option from the one `Settings`, and a graceful stop.

The image, `make serve`, `make demo` and the tests start the service this way, so the protocol with its limits and
deadlines, the keep-alive and the shutdown timing cannot differ between them: each is a setting
(`service.settings`), read once, given to the app and to the server alike.

A stop by SIGTERM (how ECS and Kubernetes stop a task) drains first: `/ready` answers 503 at once, while every
request is still served for `drain_seconds` (each answer closes its connection), so the load balancer takes the
task out of rotation before it stops listening. Then the listener closes, idle connections close, and the requests
already accepted get `shutdown_timeout_seconds` to finish. A second signal, or Ctrl-C, skips the drain.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from service.api import create_app
from service.http_protocol import ConnectionPool, protocol_class
from service.settings import Settings

logger = logging.getLogger("service.server")


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How uvicorn runs `app`: the service's protocol with `settings`' limits, its keep-alive and shutdown timeout,
    no `server` header, no WebSockets, and the app's own logging (JSON) instead of uvicorn's."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(settings),
        ws="none",
        lifespan="on",
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        server_header=False,
        log_config=None,
        access_log=False,
    )


class Server(uvicorn.Server):
    """uvicorn's server with a drain before a SIGTERM stop (`/ready` 503, answers close their connections)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.drain_ends: float | None = None

    @property
    def pool(self) -> ConnectionPool:
        pool: ConnectionPool = self.config.http.pool  # type: ignore[union-attr]
        return pool

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_ends is None and self.drain_seconds > 0 and not self.should_exit:
            self._captured_signals.append(sig)  # re-raised once stopped, as uvicorn does
            self.drain_ends = time.monotonic() + self.drain_seconds
            self._stopping()
            logger.info(
                "SIGTERM: draining; /ready answers 503, requests are still served",
                extra={"drain_seconds": self.drain_seconds},
            )
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_ends is not None and time.monotonic() >= self.drain_ends:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self._stopping()
        await super().shutdown(sockets)

    def _stopping(self) -> None:
        self.app.state.draining = True
        self.pool.stopping = True


def serve(settings: Settings) -> None:
    """Serve until stopped (SIGTERM drains first; see the module's doc)."""
    app = create_app(settings)
    Server(uvicorn_config(app, settings), app, settings.drain_seconds).run()


def _settings_help() -> str:
    lines = ["settings (environment variables):"]
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias if isinstance(field.validation_alias, str) else f"SERVICE_{name.upper()}"
        lines.append(f"  {variable} (default {field.get_default(call_default_factory=True)!r})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve the diabetes-status API; every option is an environment variable (docs/api-guide.md).",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: invalid service settings\n{exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, re-raised by uvicorn once it stopped
        serve(settings)
    return 0
