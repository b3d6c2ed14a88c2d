"""uvicorn's httptools protocol with the service's limits, deadlines and error shape.

uvicorn 0.54 leaves a server open to clients that hold it: it has no deadline for a request's head (every byte
received resets its keep-alive timer, encode/uvicorn#157), no limit on the size or number of headers (httptools
buffers whatever arrives: one 128 MB header held the event loop 7 s), and `--limit-concurrency` counts idle
connections, so 128 silent keep-alive connections refused everyone else for 75 s. This subclass of its httptools
protocol, configured from the service's `Settings` by `protocol_class` (which `python -m service` hands to uvicorn),
adds:

- limits on the head, counted before the parser buffers anything: the request line (414), each header line, the
  number of headers and the whole head (431). Bytes reach the parser only up to the end of the head
  (`\\r\\n\\r\\n`, the only ending llhttp accepts) or the head's room, whichever comes first;
- deadlines: for the head (from the connection's start or the request's first byte) and for the body of any
  request that announces one (from the end of its head), past them a 408 and the connection closed; an answer the
  client stops reading for as long as a body may take is dropped. A body that arrives with its head, as nearly all
  do, arms no timer;
- idle connections bounded by time (`keep_alive_seconds`) and by count (`max_idle_connections`: past it the
  longest idle is closed), and never counted against anything else: the work in flight is limited by the app
  (`service.middleware.Admission`), once a request's body has arrived;
- HTTP kept whole in three corners uvicorn drops: a valid request followed by malformed bytes is answered before
  the 400; an `Upgrade` the service does not speak is ignored and the request's body still read; while the server
  drains (`service.server`), answers close their connections, and a head under way at shutdown still gets its answer;
- its own 400s in the service's `ErrorResponse` shape, with a request id, and no `server` header;
- one write per response (`CoalescedWrites`): uvicorn writes a response's head and its body separately, and each
  write is a system call. Joined and sent when the answering task yields (after the request's log line), they cut
  the server's CPU on `POST /predict` from about 280 to 255 us at load, for about 70 us more latency on an idle
  server. Flushing as soon as a response completes kept the latency but lost the gain: the next requests then
  arrive one wake-up at a time (`tests/benchmarks/serve.py` measures both ends).

It overrides uvicorn's protocol hooks, hence the version pin in `pyproject.toml`; `tests/service/test_http_protocol.py`
checks each behaviour on a real server started as `python -m service`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.errors import ProblemError, raw_error
from service.settings import Settings

MALFORMED = (
    "The request is not valid HTTP/1.1 (for example a malformed or conflicting Content-Length and "
    "Transfer-Encoding, or an unknown method); it was not processed"
)
_HEAD_END = b"\r\n\r\n"
#: How long a connection refused by the protocol keeps reading (and dropping) what its client still sends.
LINGER_SECONDS = 2.0
#: While a chunked body arrives its end cannot be found without parsing it, so the parser gets it in steps this
#: large: a head that starts in the same packet is counted from the start of its step (at most this much early).
_CHUNKED_STEP = 4096


def _response(status: int, code: str, reason: str, field: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An `ErrorResponse` body under a fresh request id, and its headers (the connection closes after it)."""
    request_id = uuid.uuid4().hex
    body, headers = raw_error(ProblemError(status, code, reason, field=field), request_id)
    return body, [*headers, (b"x-request-id", request_id.encode()), (b"connection", b"close")]


class _LimitExceededError(Exception):
    """Raised from a parser callback: the request breaks a limit; answered with this status and closed."""

    def __init__(self, status: int, code: str, reason: str, field: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.field = status, code, reason, field


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


class ConnectionPool:
    """What the connections of one server share: the idle ones, longest idle first, and whether it is stopping."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self.stopping = False
        self._idle: dict[HttpProtocol, None] = {}  # insertion order: the longest idle first

    def idle(self, connection: HttpProtocol) -> None:
        """`connection` waits for a request; past the cap, the longest idle connections are closed."""
        self._idle[connection] = None
        while len(self._idle) > self.max_idle:
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            oldest.transport.close()

    def busy(self, connection: HttpProtocol) -> None:
        self._idle.pop(connection, None)

    def __len__(self) -> int:
        return len(self._idle)


def protocol_class(settings: Settings) -> type[HttpProtocol]:
    """The protocol uvicorn runs for one server: `HttpProtocol` with `settings`' limits and its own `ConnectionPool`."""
    return type(
        "HttpProtocol",
        (HttpProtocol,),
        {"settings": settings, "pool": ConnectionPool(settings.max_idle_connections)},
    )


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on heads and idle connections, deadlines, and JSON for its errors.

    Use `protocol_class(settings)`. The head deadline's timer is lazy: armed when a connection starts waiting for a
    head and re-armed only when it fires early, so a busy keep-alive connection costs a timer every
    `header_timeout_seconds`, not one per request.
    """

    settings: ClassVar[Settings]
    pool: ClassVar[ConnectionPool]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = self.settings
        self.head_timeout = settings.header_timeout_seconds
        self._max_head = settings.max_head_bytes
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None  # for a head: since the connection opened or its first bytes came
        self._head_clock = False  # bytes of the next head have arrived (its deadline runs from the first)
        self._head_started = False  # the parser began that head's request line
        self._head_bytes = 0  # of the head under way, fed to the parser
        self._head_tail = b""  # its last bytes, where the end of the head may begin
        self._in_body = False
        self._body_left: int | None = None  # bytes of a Content-Length body still to come; None: chunked
        self._unparsed_body = 0  # bytes of a body the parser skipped (an ignored Upgrade) still to come
        self._deferred_error = False  # malformed bytes after a request still being answered
        self._lingering = False  # answered with an error; closing

    # -- connection lifetime ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self._writes = CoalescedWrites(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(self._writes)  # type: ignore[arg-type]
        self.pool.idle(self)
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.busy(self)
        for timer in (self._head_deadline, self._body_deadline, self._send_deadline):
            if timer is not None:
                timer.cancel()
        self._head_deadline = self._body_deadline = self._send_deadline = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self.pipeline or not self.cycle.response_complete:
            return
        if self._deferred_error:
            self._unset_keepalive_if_required()
            self._send_error(400, "bad_request", MALFORMED, "request")
        else:
            self.pool.idle(self)

    def shutdown(self) -> None:
        """The server stops: close an idle connection; let a request under way, even one still sending its head,
        get its answer, then close."""
        if self.cycle is not None and not self.cycle.response_complete:
            last = self.pipeline[0][0] if self.pipeline else self.cycle
            last.keep_alive = False
        elif not self._head_started:
            self.transport.close()

    def pause_writing(self) -> None:
        """The client stopped reading: it has `body_timeout_seconds` to start again, then the answer is dropped."""
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.settings.body_timeout_seconds, self.transport.abort)

    def resume_writing(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None
        super().resume_writing()

    # -- bytes in: the head counted before the parser sees it ----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._deferred_error or self._lingering:
            return  # everything after malformed bytes, or after an error answer, is dropped
        self._unset_keepalive_if_required()
        self.pool.busy(self)
        if not self._in_body and not self._head_clock:  # the first bytes of a head start its deadline
            self._head_clock = True
            self._wait_for_head()
        while data and not self.transport.is_closing():
            if self._unparsed_body:
                data = self._skipped_body(data)
                continue
            size = min(self._next_piece(data), len(data))
            piece, data = data[:size], data[size:]
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserCallbackError as exc:
                if not isinstance(exc.__context__, _LimitExceededError):
                    raise
                self._refuse(exc.__context__)
                return
            except httptools.HttpParserUpgrade as exc:
                if not self._ignore_upgrade():
                    return
                data = piece[exc.args[0] :] + data
                continue
            except httptools.HttpParserError:
                self._malformed()
                return
            if not self._in_body and self._head_started:  # the head goes on past this piece
                self._head_bytes += size
                self._head_tail = (self._head_tail + piece)[-3:]
                if self._head_bytes >= self._max_head:
                    reason = f"The request's head is larger than {self._max_head:,} bytes; send less in its headers"
                    self._refuse(_LimitExceededError(431, "headers_too_large", reason, "headers"))
                    return
        if self._in_body and self._body_deadline is None and not self._lingering:  # a body still to come
            self._body_deadline = self.loop.call_later(self.settings.body_timeout_seconds, self._body_timed_out)

    def _next_piece(self, data: bytes) -> int:
        """How many bytes of `data` the parser may take now: through the end of a head, or the room the head has
        left, or the rest of a body (so that the next head starts a piece and is counted exactly)."""
        if self._in_body:
            if self._body_left is None:
                return _CHUNKED_STEP
            return self._body_left or len(data)
        if self._head_tail:
            end = (self._head_tail + data[: len(_HEAD_END)]).find(_HEAD_END)
            if end >= 0:
                return end + len(_HEAD_END) - len(self._head_tail)
        room = self._max_head - self._head_bytes
        end = data.find(_HEAD_END, 0, room)
        return end + len(_HEAD_END) if end >= 0 else room

    def _refuse(self, limit: _LimitExceededError) -> None:
        self._send_error(limit.status, limit.code, limit.reason, limit.field)

    def _malformed(self) -> None:
        """400 now; or, when the malformed bytes follow a request still being answered, once it is answered (its
        client gets that answer first)."""
        self._waiting_since = None
        if not self._in_body and self.cycle is not None and not self.cycle.response_complete:
            self._deferred_error = True
            self.flow.pause_reading()
        else:
            self._send_error(400, "bad_request", MALFORMED, "request")

    def _ignore_upgrade(self) -> bool:
        """An `Upgrade` the service does not speak: answer over HTTP/1.1 (RFC 9110 7.8 lets a server ignore it).

        llhttp stops at such a head and hands back what follows as the new protocol's bytes; the request's body is
        among them, so it is passed on here (`_skipped_body`), and the parser takes the next request after it.
        False when the request was refused (a chunked body, whose end only the parser could find).
        """
        if self._body_left is None:
            reason = "Upgrade with a chunked body is not supported; send the request without Upgrade"
            self._send_error(400, "bad_request", reason, "headers")
            return False
        if self._body_left:
            self._unparsed_body = self._body_left
            self._in_body = True
            self.cycle.more_body = True
        return True

    def _skipped_body(self, data: bytes) -> bytes:
        """Pass on the bytes of a body the parser skipped; the rest of `data` is the next request's."""
        chunk, rest = data[: self._unparsed_body], data[self._unparsed_body :]
        self._unparsed_body -= len(chunk)
        self.on_body(chunk)
        if not self._unparsed_body:
            self.on_message_complete()
        return rest

    # -- parser callbacks -----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        if not self._head_clock:  # a pipelined request: its head is read once the one before is answered
            self._head_clock = True
            self._wait_for_head()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        limit = self.settings.max_request_line_bytes
        if len(self.url) > limit:
            reason = f"The request line is longer than {limit:,} bytes; send a shorter path and query"
            raise _LimitExceededError(414, "uri_too_long", reason, "url")

    def on_header(self, name: bytes, value: bytes) -> None:
        settings = self.settings
        if len(name) + len(value) + 2 > settings.max_header_line_bytes:
            shown = name[:40].decode("latin-1")
            reason = f"The header line {shown!r} is longer than {settings.max_header_line_bytes:,} bytes"
            raise _LimitExceededError(431, "headers_too_large", reason, "headers")
        if len(self.headers) >= settings.max_headers:
            reason = f"The request has more than {settings.max_headers:,} headers; send fewer"
            raise _LimitExceededError(431, "headers_too_large", reason, "headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._waiting_since = None
        self._head_clock = self._head_started = False
        self._head_bytes = 0
        self._head_tail = b""
        self._in_body = True
        self._body_left = 0
        for name, value in self.headers:
            if name == b"content-length":
                self._body_left = int(value)
            elif name == b"transfer-encoding":
                self._body_left = None
                break
        super().on_headers_complete()
        if self.pool.stopping:
            self.cycle.keep_alive = False  # while draining, every answer closes its connection

    def on_body(self, body: bytes) -> None:
        if self._body_left:
            self._body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        super().on_message_complete()

    # -- deadlines and errors -------------------------------------------------------------------------------------

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
            self._send_error(408, "request_timeout", reason, "request")
        else:  # nothing sent yet, or a response under way on this connection: just close
            self.transport.close()

    def _body_timed_out(self) -> None:
        """The body did not all arrive in time: 408, and the app, still waiting for it, sees a disconnect."""
        self._body_deadline = None
        if self.transport.is_closing() or self._lingering:
            return
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            timeout = self.settings.body_timeout_seconds
            reason = f"The request body did not arrive within {timeout:g} s; send it at once."
            self._send_error(408, "request_timeout", reason, "body")
        else:
            self.transport.close()

    def _send_error(self, status: int, code: str, reason: str, field: str) -> None:
        """Answer and close, lingering: a client still sending (a large head) would otherwise get a reset, which
        may destroy the answer before it reads it; so the answer and a FIN go first, what arrives meanwhile is
        dropped, and the connection closes when the client closes it or after `LINGER_SECONDS`."""
        self._waiting_since = None
        body, headers = _response(status, code, reason, field)
        head = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        if self._lingering or not self.transport.can_write_eof():
            self.transport.close()
            return
        self._lingering = True
        self._writes.flush()
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
