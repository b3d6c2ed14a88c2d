"""`python -m service`: the app on one uvicorn worker, every option from the one `Settings`, and a graceful stop.

The image, `make serve`, `make demo` and the tests start the service this way, so the protocol with its limits and
deadlines, the keep-alive and the shutdown timing cannot differ between them: each is a setting
(`service.settings`), read once, given to the app and to the server alike.

A stop by SIGTERM (how ECS and Kubernetes stop a task) drains first: `/ready` answers 503 at once, while every
request is still served for `drain_seconds` (each answer closes its connection), so the load balancer takes the task
out of rotation before it stops listening. Then the listener closes, taking the connections the kernel had queued
on it (closing it with them queued would reset them; no more than its backlog, within 200 ms), requests whose body
is still arriving are answered 503, connections without a request get a second to send one, and the requests
already accepted get `shutdown_timeout_seconds` to finish. However busy the event loop, the process exits within
`stop_timeout_seconds` of the signal (a thread watches).

A repeated SIGTERM is ignored (logged once): a supervisor or an operator re-sending it once ended the drain at once,
unlogged, and the load balancer still sent requests to a closed listener. SIGINT (Ctrl-C) means "now": during the
drain it skips what is left of it (logged), the stop then goes on as above; a second SIGINT stops waiting for the
requests under way (uvicorn's force exit). SIGQUIT is left to its default: the process ends at once, nothing
answered or logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.api import create_app
from service.http_protocol import ConnectionPool, bound_socket_buffers, protocol_class
from service.observability import skip_unlogged_record_attributes
from service.refusal_log import RefusalLog
from service.settings import MIN_CONNECTIONS, Settings, unknown_variables

logger = logging.getLogger("service.server")
#: File descriptors kept out of `max_connections`: the listener, logs, the model's files, the metrics' /proc reads.
_RESERVED_FILES = 64
#: asyncio's own event loop, not uvloop: libuv (since 1.45) accepts one connection per turn of the loop, so while
#: a flood kept each turn busy (150 clients sending 2 MB batches, each refused one reconnecting) about 140
#: connections waited in the listener's queue, and a health check on a new connection (the ALB's and the kubelet's
#: are) took up to 1.8-2.8 s on 2 cores; asyncio takes every queued connection each turn: 0.5-0.7 s
#: (`tests/benchmarks/hostile_requests.py --only accept`). The price: ~8% more CPU per request, and existing
#: connections answered later during such a flood (`/health` p99 130-210 -> 330-400 ms).
EVENT_LOOP = "asyncio"
#: Longest the stop spends taking the connections queued on the listener (`Server._accept_backlog`).
BACKLOG_ACCEPT_SECONDS = 0.2


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How uvicorn runs `app`: the service's protocol with `settings`' limits, its keep-alive and shutdown timeout,
    no `server` header, no WebSockets, and the app's own logging (JSON) instead of uvicorn's."""
    app.state.served_with_limits = True
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(settings, app.state.metrics),
        loop=EVENT_LOOP,
        ws="none",
        lifespan="on",
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        server_header=False,
        log_config=None,
        access_log=False,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


class Server(uvicorn.Server):
    """uvicorn's server with a drain before a SIGTERM stop (`/ready` 503, answers close their connections)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float, stop_timeout: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.stop_timeout = stop_timeout
        self.drain_ends: float | None = None
        self.stop_deadline: threading.Timer | None = None
        self.terminated = False  # a SIGTERM came
        self.repeat_logged = False  # a repeated SIGTERM was logged

    @property
    def pool(self) -> ConnectionPool:
        pool: ConnectionPool = self.config.http.pool  # type: ignore[union-attr]
        return pool

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stop_deadline is None:
            self.stop_deadline = _hard_stop_after(self.stop_timeout)
        if sig == signal.SIGTERM and self.terminated:
            if not self.repeat_logged:
                self.repeat_logged = True
                logger.warning(
                    "SIGTERM again: ignored, the stop goes on (SIGINT stops at once)",
                    extra={"draining": self.drain_ends is not None and not self.should_exit},
                )
            return
        self.terminated = self.terminated or sig == signal.SIGTERM
        if sig == signal.SIGINT and self.drain_ends is not None and not self.should_exit:
            logger.warning("SIGINT while draining: the drain is cut short, closing the listener now")
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
        if self.drain_ends is not None and not self.should_exit and time.monotonic() >= self.drain_ends:
            self.should_exit = True
            logger.info("drain over: closing the listener", extra={"drain_seconds": self.drain_seconds})
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, the listeners' kernel buffers bounded as the connections' (they inherit them)."""
        await super().startup(sockets)
        for server in getattr(self, "servers", ()):  # none when the start failed
            for listener in server.sockets:
                bound_socket_buffers(listener, self.config.http.settings)  # type: ignore[union-attr]

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self._stopping()
        await self._accept_backlog()
        await super().shutdown(sockets)
        RefusalLog.flush_all()  # the counts of refusals and answers cut at the stop: no loop after
        if self.stop_deadline is not None:
            self.stop_deadline.cancel()

    async def _accept_backlog(self) -> None:
        """Close the listener, taking the connections the kernel had already accepted for it: closing it with them
        queued would reset them (their clients would see a request fail that was never refused). Each gets its
        answer, then closes.

        The asyncio listener stops first (a copy of its socket keeps the kernel's queue), or it would keep accepting.
        The queue is emptied without yielding to the event loop, then the copy closes: a busy loop given a turn
        between accepts let clients refill the queue as fast as it was taken, and the process ran until the stop
        timeout killed it. At most the listener's backlog (`config.backlog`) and `BACKLOG_ACCEPT_SECONDS`, against
        a client connecting as fast as the kernel accepts; connections arriving after are refused."""
        loop = asyncio.get_running_loop()
        copies = [
            socket.socket(fileno=os.dup(listening.fileno())) for server in self.servers for listening in server.sockets
        ]
        for server in self.servers:
            server.close()
        started = time.monotonic()
        queued: list[socket.socket] = []
        for listener in copies:
            with listener:
                listener.setblocking(False)
                while len(queued) < self.config.backlog and time.monotonic() - started < BACKLOG_ACCEPT_SECONDS:
                    try:
                        queued.append(listener.accept()[0])
                    except (BlockingIOError, InterruptedError):
                        break
        logger.info(
            "listener closed; queued connections taken",
            extra={"accepted": len(queued), "seconds": round(time.monotonic() - started, 3)},
        )
        protocol = functools.partial(
            self.config.http_protocol_class,  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        for connection in queued:
            await loop.connect_accepted_socket(protocol, connection)

    def _stopping(self) -> None:
        self.app.state.draining = True
        self.pool.stopping = True


def _hard_stop_after(seconds: float) -> threading.Timer:
    """Exit `seconds` from now whatever the event loop is doing: the platform would kill the process then anyway,
    without a word in the log."""

    def stop() -> None:
        logger.error("stop timeout reached: exiting now", extra={"stop_timeout_seconds": seconds})
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(max(seconds - 0.5, 0.1), stop)
    timer.daemon = True
    timer.start()
    return timer


def open_file_limit(max_connections: int) -> int:
    """Raise the soft limit on open files to the hard one, and return how many connections fit in it (a few dozen
    descriptors stay for the model, logs and the listener): past it the kernel's accept fails silently. Each
    connection counts twice: as many again, new ones and those shed for `max_connections` lingering with their
    answer, may be open past it (`service.http_protocol.ConnectionPool`). Raises `ValueError` when fewer than
    `MIN_CONNECTIONS` fit: the service could not serve."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    fit = (soft - _RESERVED_FILES) // 2
    room = max_connections if soft == resource.RLIM_INFINITY else min(max_connections, fit)
    if room < MIN_CONNECTIONS:
        raise ValueError(
            f"the open-file limit ({soft:,}) leaves room for {max(room, 0):,} connections, fewer than "
            f"{MIN_CONNECTIONS}; raise it (`ulimit -n`, or the container's nofile limit) to at least "
            f"{2 * MIN_CONNECTIONS + _RESERVED_FILES}"
        )
    if room < max_connections:
        logger.warning(
            "max_connections lowered to fit the open-file limit",
            extra={"max_connections": max_connections, "open_file_limit": soft, "lowered_to": room},
        )
    return room


def serve(settings: Settings) -> None:
    """Serve until stopped (SIGTERM drains first; see the module's doc)."""
    skip_unlogged_record_attributes()
    app = create_app(settings)
    Server(uvicorn_config(app, settings), app, settings.drain_seconds, settings.stop_timeout_seconds).run()


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
    unknown = unknown_variables(os.environ)
    if unknown:
        print(
            f"error: unknown service settings {', '.join(unknown)}; the settings are listed by "
            "`python -m service --help`",
            file=sys.stderr,
        )
        return 2
    try:
        settings = Settings()
        room = open_file_limit(settings.max_connections)
    except ValidationError as exc:
        print(f"error: invalid service settings\n{exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a list setting that is not JSON: pydantic-settings cannot even read it
        print(f'error: invalid service settings\n{exc}: list settings are JSON, e.g. ["a", "b"]', file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if room != settings.max_connections:
        settings = settings.model_copy(update={"max_connections": room})
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, re-raised by uvicorn once it stopped
        serve(settings)
    return 0
