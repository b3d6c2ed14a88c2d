"""uvicorn's HTTP protocol with a deadline and the service's error shape (`--http service.http_protocol:HttpProtocol`).

uvicorn 0.54 has no timeout for a request's head: its keep-alive timeout covers only the idle time between requests,
and every byte received resets it, so a client trickling headers holds a connection forever (encode/uvicorn#157).
It also answers requests the app never sees (malformed HTTP, or over `--limit-concurrency`) in plain text. This
subclass of its httptools protocol adds:

- a deadline for the request head (`SERVICE_HEADER_TIMEOUT_SECONDS`, from the connection's start or the request's
  first byte): past it, a 408 and the connection closed. Idle keep-alive connections are left to uvicorn's
  `--timeout-keep-alive`, which must outlast the load balancer's idle timeout. The body has its own deadline in
  `service.middleware.BodyLimit`;
- uvicorn's 400 and 503 in the service's `ErrorResponse` shape, with a request id;
- one write per response (`CoalescedWrites`): uvicorn writes a response's head and its body separately, and each
  write is a system call. Joined and sent when the answering task yields (after the request's log line), they cut
  the server's CPU on `POST /predict` from about 280 to 255 us at load, for about 70 us more latency on an idle
  server (p50 0.29 -> 0.37 ms at c=1). Flushing as soon as a response completes kept the latency but lost the gain:
  the next requests then arrive one wake-up at a time (`tests/benchmarks/serve.py` measures both ends).

It overrides uvicorn's protocol hooks (`connection_made`, `send_400_response`, `_start_asgi_task`), hence the
version pin in `pyproject.toml`; `tests/service/test_http_protocol.py` checks each behaviour on a real server.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from service.errors import ProblemError, raw_error
from service.settings import Settings

MALFORMED = (
    "The request is not valid HTTP/1.1 (for example a malformed or conflicting Content-Length and "
    "Transfer-Encoding, an unknown method, or a request line or header too large); nothing was processed"
)
OVERLOADED = "The service is answering as many requests as it can; retry in a second"


@functools.cache
def _head_timeout_seconds() -> float:
    return Settings().header_timeout_seconds


def _response(status: int, code: str, reason: str, field: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An `ErrorResponse` body under a fresh request id, and its headers (the connection closes after it)."""
    request_id = uuid.uuid4().hex
    body, headers = raw_error(ProblemError(status, code, reason, field=field), request_id)
    return body, [*headers, (b"x-request-id", request_id.encode()), (b"connection", b"close")]


async def overloaded(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer over `--limit-concurrency` (`service_unavailable`), as an `ErrorResponse`."""
    body, headers = _response(503, "overloaded", OVERLOADED, "server")
    await send({"type": "http.response.start", "status": 503, "headers": [*headers, (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body})


class CoalescedWrites:
    """The connection's transport with its writes joined until the event loop's next turn: one send per response.

    A response's head and body are written in one step of the task that answers, so they leave together when it
    yields; past `FLUSH_BYTES` (a large or streamed body) pending bytes go at once, and `close` sends them first.
    Everything else (flow control, addresses, `abort`) is the transport's own.
    """

    #: Pending bytes sent without waiting for the loop's next turn.
    FLUSH_BYTES = 65536

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size = 0
            if not self._transport.is_closing():  # a connection lost meanwhile: nobody to send to
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for request heads and JSON for its own errors.

    The deadline timer is lazy: it is armed when a connection starts waiting for a head and re-armed only when it
    fires early, so a busy keep-alive connection costs a timer every `head_timeout` seconds, not one per request.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_timeout = _head_timeout_seconds()
        self._head_deadline: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None  # for a head: since the connection opened or a request began
        self._head_started = False  # bytes of that head have arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(CoalescedWrites(cast(asyncio.Transport, transport), self.loop))  # type: ignore[arg-type]
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._wait_for_head()
        self._head_started = True

    def on_headers_complete(self) -> None:
        self._waiting_since = None
        self._head_started = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        self._waiting_since = None
        self._send_error(400, "bad_request", MALFORMED)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        super()._start_asgi_task(cycle, overloaded if app is service_unavailable else app)

    def _wait_for_head(self) -> None:
        self._waiting_since = self.loop.time()
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._waiting_since is None or self.transport.is_closing():
            return  # no head awaited (between requests the keep-alive timeout applies)
        remaining = self._waiting_since + self.head_timeout - self.loop.time()
        if remaining > 0:  # this head began after the timer was armed
            self._head_deadline = self.loop.call_later(remaining, self._head_timed_out)
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._head_started and not answering:
            reason = f"The request's head did not arrive within {self.head_timeout:g} s; the connection is closed"
            self._send_error(408, "request_timeout", reason)
        else:  # nothing sent yet, or a response under way on this connection: just close
            self.transport.close()

    def _send_error(self, status: int, code: str, reason: str) -> None:
        body, headers = _response(status, code, reason, "request")
        head = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
