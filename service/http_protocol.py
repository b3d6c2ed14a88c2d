"""uvicorn's httptools protocol with the service's limits, deadlines and error shape.

uvicorn 0.54 leaves a server open to clients that hold it: it has no deadline for a request's head (every byte
received resets its keep-alive timer, encode/uvicorn#157), no limit on the size or number of headers (httptools
buffers whatever arrives: one 128 MB header held the event loop 7 s), and `--limit-concurrency` counts idle
connections, so 128 silent keep-alive connections refused everyone else for 75 s. This subclass of its httptools
protocol, configured from the service's `Settings` by `protocol_class` (which `python -m service` hands to uvicorn),
adds:

- limits on the head, counted before the parser buffers anything: the request line (414), each header line (its
  unfinished part too, as it arrives), the number of headers and the whole head (431). Bytes reach the parser only
  up to the end of the head (`\\r\\n\\r\\n`, the only ending llhttp accepts) or the head's room, whichever comes
  first; blank lines before a head are skipped in bulk, 400 past `MAX_BLANK_LINE_BYTES`;
- chunked bodies walked ahead of the parser (`service.chunked_framing`): their framing counts toward the body limit
  (plus one head), their chunks toward `max_body_chunks`, and they reach the parser `CHUNKS_PER_TURN` chunks a turn
  of the event loop; trailer lines have the head's limits and are never merged into the request's headers;
- one request at a time: the parser stops at the end of a request whose answer is under way, and what follows is
  kept, with reading paused, until it is answered. A pipelining client is read as fast as it is answered, no
  faster, and whatever its next request breaks is answered after the one before;
- deadlines: for the head (from the connection's start or the request's first byte) and for the body of any
  request that announces one (from the end of its head: all of it within `body_timeout_seconds`, and after
  `body_grace_seconds` at `min_body_bytes_per_second` on average, and once started with no pause longer than
  `body_stall_seconds`), past them a 408 and the connection closed. A body that arrives with its head, as nearly
  all do, arms no timer;
- answers bounded once the client is slower than the service (`UnsentAnswers`): the kernel's buffers of each
  connection at `send_buffer_bytes` and `receive_buffer_bytes`, the bytes the service holds past them, all
  connections together, at `max_unsent_answer_bytes` (past it a new request whose answer may not fit in the
  kernel's buffer drops the slowest holder past its grace, or gets 503 `overloaded` when none is), and each such
  answer must leave at `min_send_bytes_per_second` after `send_grace_seconds` and never stall for
  `send_timeout_seconds`: else the connection is reset, logged (`answer_dropped`) and counted;
- connections bounded (`ConnectionPool`): idle ones by time (`keep_alive_seconds`) and count
  (`max_idle_connections`, fresh silent ones shed before keep-alive ones, however fast they come), all of them by
  count (`max_connections`, and as many more shared by new connections, whose requests are answered, and those
  lingering after an error; bodies still arriving and requests already sent shed with a 503 before any keep-alive
  connection), unfinished
  heads by their bytes together (`max_head_bytes_buffered`), chunked bodies by their chunks (`max_body_chunks` a
  body, and as many a second on a connection);
  none is counted against the work in flight, which the app limits (`service.middleware.Admission`) once a
  request's body arrived;
- HTTP kept whole in the corners uvicorn drops: an `Upgrade` the service does not speak is ignored and the request's
  body still read; HTTP/1.1 without `Host` and versions but 1.0 and 1.1 are refused; every parser error (a request
  target llhttp cannot split included) is a 400; while the server drains (`service.server`), answers close their
  connections, a head under way at shutdown still gets its answer, a body still arriving a 503 at once (its request
  has not started) unless at its rate so far it arrives within half the shutdown timeout, and a connection with
  none gets `SHUTDOWN_GRACE_SECONDS` to send one;
- its own errors in the service's `ErrorResponse` shape, with a request id, and no `server` header; each counted
  (`http_protocol_refusals_total`) and logged, the first of each reason in a second in full and the rest as one
  count (`service.refusal_log`);
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
import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import struct
import sys
import termios
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, ClassVar, cast

import httptools
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ml.schema import FEATURES
from service.batch_admission import records_at_most
from service.chunked_framing import ChunkedFraming, RefusedError
from service.errors import ProblemError, raw_error
from service.middleware import (
    ANSWER_LEAVING,
    ANSWERED_BY_SERVER,
    BODY_HELD,
    BODY_WAITING,
    CLIENT_GONE,
    DROP_BODY,
    explains,
)
from service.observability import Metrics as ServiceMetrics  # ml.manifest.Metrics too: one name for Sphinx
from service.refusal_log import RefusalLog
from service.routes import ALWAYS_ANSWERED, BATCH_PATH, PREDICT_PATH
from service.settings import BODY_RATE_WINDOW_SECONDS, DROPPABLE_BODY_BYTES_PER_SECOND, Settings

MALFORMED = (
    "The request is not valid HTTP/1.1 (for example a malformed or conflicting Content-Length and "
    "Transfer-Encoding, or an unknown method); it was not processed"
)
_HEAD_END = b"\r\n\r\n"
#: How long a connection refused by the protocol keeps reading (and dropping) what its client still sends.
LINGER_SECONDS = 2.0
#: Most bytes of blank lines skipped before a request (RFC 9112 2.2 asks servers to skip at least one).
MAX_BLANK_LINE_BYTES = 1024
_BLANK_LINES = re.compile(rb"[\r\n]*")
#: A connection that sent nothing yet is shed before keep-alive ones only once it is this old: a client that just
#: connected sends its request within a round trip.
FRESH_GRACE_SECONDS = 0.1
#: The same grace before a fresh connection is shed for `max_idle_connections`, which bounds what costs little: a
#: client process opening 600 connections at once took more than 0.1 s to send on the last of them (loaded 2 cores).
IDLE_GRACE_SECONDS = 1.0
#: Past `max_connections`, a keep-alive connection reused (answered twice or more) and idle less than this goes after
#: a new connection's request waiting unread: its client is between two requests, and closing it races the next one
#: (EOF or a reset). At most half of `max_connections` of them (`ConnectionPool._stale_kept`).
KEPT_ALIVE_SECONDS = 5.0
#: Most bytes of a request waiting unread looked at to tell whether it is whole (`HttpProtocol.request_waiting_whole`).
WHOLE_PEEK_BYTES = 16 * 1024
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d{1,19})")
#: How many of the newest bodies still arriving are compared when one must be shed (`ConnectionPool._body_victim`).
BODY_SHED_SCAN = 64
#: Most chunks of a chunked body handed to the parser in one turn of the event loop (about 1 ms of work); the rest
#: waits for the next turn, other connections served in between.
CHUNKS_PER_TURN = 256
#: The 503 `shutting_down` of a body still arriving when the service stops listening.
_STOPPING = "This instance is stopping and the request's body had not all arrived; send it to another one"
#: The 503 `overloaded` of a request refused while the answers waiting for their clients pass their budget.
_UNSENT = "The service holds as many answers for slow clients as it can; retry in a second"
#: The 503 `overloaded` of a body dropped to make room in `max_pending_body_bytes` (`HttpProtocol._drop_body`).
_DROPPED_BODY = (
    f"The request body arrived slower than {DROPPABLE_BODY_BYTES_PER_SECOND // 1024} KB a second over its last "
    f"{BODY_RATE_WINDOW_SECONDS:g}-{2 * BODY_RATE_WINDOW_SECONDS:g} s while the bodies arriving filled the "
    "service's budget, and was dropped to make room; send the body at once and retry"
)
#: SO_LINGER on, with no time: closing the socket resets the connection and frees what its send buffer held.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)
#: How long a connection takes to earn back `max_body_chunks` chunks, once spent (`HttpProtocol._framing`).
CHUNK_REFILL_SECONDS = 1.0
#: Once the server stopped listening, how long a body that starts then may show its rate before it is judged able
#: to arrive within half the shutdown timeout or not (`HttpProtocol._check_arrival`).
ARRIVAL_CHECK_SECONDS = 1.0
#: While the app leaves a body's bytes untaken (a batch waiting for room, `service.middleware.Admission`), how often
#: its deadline looks whether it took them (`HttpProtocol._body_timed_out`).
BODY_HELD_RECHECK_SECONDS = 1.0
#: Most reads (of 64 KB) of what a refused connection sent, dropped before it closes (`HttpProtocol.refuse`).
REFUSED_READS = 16
#: At shutdown, how long a connection with no request under way may still start one: it may have been accepted a
#: moment before the listener closed, its request on the way.
SHUTDOWN_GRACE_SECONDS = 1.0
#: A holder of the answers' budget may be dropped to make room only while its client receives less than this many
#: bytes a second or `DROPPABLE_RATE_FACTOR` times `min_send_bytes_per_second`, whichever is more (`UnsentAnswers`).
DROPPABLE_BYTES_PER_SECOND = 16 * 1024
DROPPABLE_RATE_FACTOR = 4
#: A client (address) holding more than the answers' budget divided by this may lose its answers past their grace
#: to a newcomer from a client holding less (`UnsentAnswers._drop_past_share`): 7 MB on 512 MiB.
UNSENT_CLIENT_SHARES = 4
#: A Host header's value: RFC 3986's host (a name, an IPv4 address or a bracketed IP literal) and port characters.
_HOST_VALUE = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=%:\[\]]*")
#: Most bytes of an answer's head (status line and headers) and of a batch's wrapper: 160 measured.
ANSWER_HEAD_BYTES = 512
#: Most bytes of one record's answer without its explanation: 1,481 measured, the most of 300 random records (one
#: outside the care system, whose `care_access` message is most of it), 580 for a person in care; floats of the
#: longest form Python writes add up to 5 bytes each.
ANSWER_BYTES_PER_RECORD = 2048
#: Most bytes of one feature of an explanation (`explain_top_k` a record): its longest name and label, two floats of
#: the longest form Python writes (24 bytes), a label of a number (`%g`, 12) and the JSON around them.
CONTRIBUTION_BYTES = (
    max(
        len(feature.name) + max([12, *(len(json.dumps(label)) for label in feature.labels.values())])
        for feature in FEATURES
    )
    + 2 * 24
    + len('{"feature":"","value":,"value_label":,"contribution":},')
)
logger = logging.getLogger("service.http")


def _response(
    status: int, code: str, reason: str, field: str, request_id: str | None = None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An `ErrorResponse` body under `request_id` (a fresh one when None), and its headers (the connection closes
    after it)."""
    request_id = request_id or uuid.uuid4().hex
    body, headers = raw_error(ProblemError(status, code, reason, field=field), request_id)
    retry = [(b"retry-after", b"1")] if status == 503 else []
    return body, [*headers, *retry, (b"x-request-id", request_id.encode()), (b"connection", b"close")]


class CoalescedWrites:
    """The connection's transport with its writes joined until the event loop's next turn: one send per response.

    A response's head and body are written in one step of the task that answers, so they leave together when it
    yields; past `FLUSH_BYTES` (a large or streamed body) pending bytes go at once, and `close` sends them first,
    then closes unless `lingers` (the protocol's) says it lingers instead. Each write is reported to `written`
    once the transport has it. Everything else (flow control, addresses, `abort`) is the transport's own.
    """

    #: Pending bytes sent without waiting for the loop's next turn.
    FLUSH_BYTES = 65536

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        lingers: Callable[[], bool] = lambda: False,
        written: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._lingers = lingers
        self._written = written
        self._pending: list[bytes] = []
        self._size = 0
        self.failed = False  # a write found the connection reset (or already gone): what it held never left

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
            if self._transport.is_closing():  # a connection lost meanwhile: nobody to send to
                self.failed = True
                return
            self._transport.write(data)
            if self._transport.is_closing():  # asyncio closes a transport whose write failed (the client reset)
                self.failed = True
            else:
                self._written(len(data))

    def close(self) -> None:
        self.flush()
        if not self._lingers():
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ConnectionPool:
    """What the connections of one server share: how many are open, which are fresh (opened, nothing sent yet),
    idle (between keep-alive requests: after their first, or reused), with a request waiting unread, in a head or in
    a body (one arriving), oldest first; the bytes of all unfinished heads; whether the server is stopping.

    Past `max_idle` fresh and idle connections together, the oldest fresh one past `IDLE_GRACE_SECONDS` is closed,
    an idle one (answered once before a reused one) only when the newest is the only fresh one: a flood of silent
    connections, however fast, must not push out the load balancer's pooled connections (whose next request would
    fail), and a new client must still get in. Fresh connections within their grace are never shed for `max_idle`:
    the pool looks again once the oldest of them is past it (`_grace_over`), and one with bytes waiting in its
    socket is in its head, not silent. The newest of a burst were shed at once: 88 of 600 clients that opened their
    connections together lost their requests, sent a moment after the connections were accepted (all of which run
    `connection_made` before any is read).
    Past `max_connections`, new connections (`_arriving`: opened and silent, or with a whole request waiting unread
    or being handled) take the places that lingering ones (below) leave, up to
    `max_connections` more, and nothing is shed for them: answered, a reconnect holding a place is idle and goes
    first. Among 1,000-2,000 connections that sent one GET /health, idled and reconnected at once when shed, every
    place past `max_connections` was held by such reconnects, and the newest new connection was shed: a health check
    on a new connection got 503 10-28% of the time (review 9, R9-4; 5 of 66 with 1,000 keep-alive posers beside,
    6 of 91 with 2,000 reconnecting), now 0 of 50 and 0 of 78 (the answers to the flood's requests slow the others:
    a pooled client's median 45-61 ms became 138-171 ms beside the posers, 9-13 ms 27-34 ms without).
    Past those places too, the oldest fresh one past `FRESH_GRACE_SECONDS` is closed, then the oldest in a
    head, then a body not keeping up (answered 503: bodies trickled a byte a second filled every place): of the
    newest, the one that has sent least (`_body_victim`); then the newest silent fresh one when others opened with
    it; then an idle one answered once (a client reconnecting to hold places looks so: one request, then nothing)
    and a reused one idle `KEPT_ALIVE_SECONDS` or more (or, past half of `max_connections` of them, the least
    recent: one client re-sending on every place cannot lock new ones out); then a body keeping up (an upload under
    way: review 16, F1); then a new connection whose request waits unread in its
    socket (the newest seen), one whose body is still to come before one whose whole request is there (a health
    check, `HttpProtocol.request_waiting_whole`), then a single new connection still silent; a keep-alive connection
    between two requests of its client last. Shed before every idle one, the health checks on new connections (the
    ALB's and the kubelet's) got 503 53-76% of the time from a client holding 1,000 keep-alive connections, 13-19%
    among 1,500 trickled bodies (review 6, R6-7, R6-2); shed after every idle one, they took the places of
    keep-alive clients between two requests: among 800 and 1,500 bodies trickled at 1.1 KB/s, clients sending a
    /predict every 0.1 s on connections opened before lost 16-55% of them (EOF, resets, then 503 as they
    reconnected; review 7, R7-2), now none of 310-570, and health checks on new connections there got 503 in about 4
    of 20, now none of 12-18 (whole requests last). Connections whose request is being handled are never shed; an
    idle one whose next request has arrived unread is no longer idle: it goes after all these, answered 503 (closed
    unanswered, its client saw a reset). A fresh connection or one in a head shed for `max_connections` is answered
    503 `overloaded` with `Retry-After` (`HttpProtocol.refuse`), its request sent or on its way: closed unanswered,
    200 of 600 honest clients of a burst past 400 connections lost their requests (EOF), most of them connections
    just opened whose request came a moment later. It lingers as the protocol's errors do (so that a client still
    sending reads the answer, not a reset) while the lingering ones and the new ones open past `max_connections`
    are fewer than `max_connections` together (`linger`), else it closes at once: the open files stay within twice
    `max_connections`. Not accepting past `max_connections` instead
    (new connections left in the listen backlog) would lose no request either, but connections holding a place
    (heads or bodies trickled) could then no longer be shed to let new clients in. An idle keep-alive connection is
    closed unanswered (it has no request): its client may be sending its next one at that moment, which then meets
    EOF or a reset (an ALB answers 502). Past `max_head_bytes` buffered in unfinished heads, the oldest connections
    in a head are closed.
    """

    def __init__(
        self,
        *,
        max_idle: int,
        max_connections: int,
        max_head_bytes: int,
        metrics: ServiceMetrics | None,
        refusals: RefusalLog | None = None,
    ) -> None:
        self.max_idle = max_idle
        self.max_connections = max_connections
        self.max_head_bytes = max_head_bytes
        self.metrics = metrics
        self.stopping = False
        self.refusals = refusals  # where sheds are logged
        self.open = 0
        self.head_bytes = 0
        self.lingering = 0  # connections answered with an error, lingering (`linger`): not open
        # insertion order: the oldest first
        self._fresh: dict[HttpProtocol, None] = {}
        self._idle: dict[HttpProtocol, None] = {}  # idle after their first request (or a reconnect holding a place)
        self._kept: dict[HttpProtocol, None] = {}  # idle after a second request or more: keep-alive clients
        self._heads: dict[HttpProtocol, None] = {}
        self._bodies: dict[HttpProtocol, None] = {}
        self._requested: dict[HttpProtocol, None] = {}  # a new connection's request waiting unread, not whole
        self._whole: dict[HttpProtocol, None] = {}  # a new connection's whole request waiting unread (a health check)
        self._returned: dict[HttpProtocol, None] = {}  # a keep-alive connection's next request waiting unread
        self._first: dict[HttpProtocol, None] = {}  # a new connection's request being handled (never shed)
        self._recheck: asyncio.TimerHandle | None = None  # when fresh connections within their grace are looked at
        self._retrim: asyncio.Handle | None = None  # when connections no longer new are looked at (`_trim_soon`)

    def opened(self, connection: HttpProtocol) -> None:
        self.open += 1
        self._fresh[connection] = None
        self._trim(connection)

    def closed(self, connection: HttpProtocol) -> None:
        """`connection` is gone (or shed, or lingers): it no longer counts."""
        if connection.pooled:
            connection.pooled = False
            self.open -= 1
            self.head_bytes -= connection.buffered_head
            connection.buffered_head = 0
            self._forget(connection)
        elif connection.counted_lingering:
            connection.counted_lingering = False
            self.lingering -= 1

    def linger(self, connection: HttpProtocol) -> bool:
        """Whether `connection`, answered with an error, may linger: it then counts among the lingering ones, not
        among those open. They share `max_connections` places with the new connections open past it (`_trim`): a
        burst past them is shed down to them, not all of it for the lingering its own sheds would take. One already
        closing (its client gone before the answer) does not linger: counted, it was never uncounted (its
        `connection_lost` had run), and 16 bodies whose clients left took every place for good."""
        if connection.counted_lingering:
            return True
        if connection.transport.is_closing() or not self._room_to_linger(self.open - connection.pooled):
            return False
        self.closed(connection)
        connection.counted_lingering = True
        self.lingering += 1
        return True

    def _room_to_linger(self, open_after: int) -> bool:
        return self.lingering + max(open_after - self.max_connections, 0) < self.max_connections

    def idle(self, connection: HttpProtocol) -> None:
        """`connection` was answered and waits for its next request."""
        self._forget(connection)
        connection.answered += 1
        connection.idle_since = time.monotonic()
        (self._kept if connection.answered > 1 else self._idle)[connection] = None
        self._trim(connection)

    def heading(self, connection: HttpProtocol) -> None:
        """A head arrives on `connection` (kept in place when it was already arriving)."""
        if connection not in self._heads:
            self._forget(connection)
            self._heads[connection] = None

    def receiving(self, connection: HttpProtocol) -> None:
        """The body of a request arrives on `connection`: the request is not handled yet."""
        self._forget(connection)
        self._bodies[connection] = None
        self._trim_soon(connection)

    def _trim_soon(self, connection: HttpProtocol) -> None:
        """`connection` may have taken a new connection's place past `max_connections` (`_arriving`) and be no
        longer new: the pool looks again on the loop's next turn, not from within the parser's callback. Else bodies
        begun by a burst's last connections held those places until their deadline (408), not shed (503)."""
        if self.open > self.max_connections and self._retrim is None:
            self._retrim = connection.loop.call_soon(self._retrim_now)

    def _retrim_now(self) -> None:
        self._retrim = None
        self._trim(None)

    def busy(self, connection: HttpProtocol) -> None:
        """A request is being handled on `connection`: it is never shed."""
        self._forget(connection)
        if not connection.answered:
            self._first[connection] = None

    def head_grew(self, connection: HttpProtocol, size: int) -> None:
        connection.buffered_head += size
        self.head_bytes += size
        while self.head_bytes > self.max_head_bytes and self._heads:
            self._shed(next(iter(self._heads)), "head_bytes")

    def head_done(self, connection: HttpProtocol) -> None:
        self.head_bytes -= connection.buffered_head
        connection.buffered_head = 0

    def _forget(self, connection: HttpProtocol) -> None:
        self._first.pop(connection, None)
        self._requested.pop(connection, None)
        self._whole.pop(connection, None)
        self._returned.pop(connection, None)
        self._fresh.pop(connection, None)
        self._idle.pop(connection, None)
        self._kept.pop(connection, None)
        self._heads.pop(connection, None)
        self._bodies.pop(connection, None)

    def _trim(self, newest: HttpProtocol | None) -> None:
        while len(self._fresh) + len(self._idle) + len(self._kept) > self.max_idle:
            victim = self._older_fresh(newest, IDLE_GRACE_SECONDS)
            if victim is None and len(self._fresh) > 1:  # a burst within its grace: its requests may be in the sockets
                self._look_again_after_grace()
                break
            victim = victim or self._oldest_idle(self._idle) or self._oldest_idle(self._kept)
            if victim is None:
                break
            self._shed(victim, "idle")
        while self.open > self.max_connections:
            # new connections (`_arriving`) may also take the places the lingering ones leave (`linger`)
            arriving, room = self._arriving(), self.max_connections - self.lingering
            if self.open <= self.max_connections + min(arriving, room):
                return
            spare = arriving > room  # new connections past their reserve: they may be shed too
            victim = (
                self._older_fresh(newest, FRESH_GRACE_SECONDS)
                or next(iter(self._heads), None)
                or self._body_victim(slow=True)
                or (self._fresh_victim(newest) if spare and newest else None)
                or self._oldest_idle(self._idle)
                or self._stale_kept()
                or self._body_victim(slow=False)
                or next(reversed(self._requested), None)
                or (next(reversed(self._whole), None) if spare else None)
                or (newest if spare and newest in self._fresh else None)  # a single new connection, on its way
                or self._oldest_idle(self._kept)
                or next(iter(self._returned), None)
            )
            if victim is None:
                return  # every connection has a request being handled, or is new within the reserve
            self._shed(victim, "connections")

    def _arriving(self) -> int:
        """New connections: with a whole request waiting unread or being handled, or opened and silent (those past
        `FRESH_GRACE_SECONDS` are shed first once there are too many). Counted in constant time: it is asked on
        every connection opened past `max_connections`."""
        return len(self._whole) + len(self._first) + len(self._fresh)

    def _look_again_after_grace(self) -> None:
        """Trim again once the oldest fresh connection is past its grace (one timer for all of them)."""
        if self._recheck is None:
            oldest = next(iter(self._fresh))
            delay = max(oldest.opened_at + IDLE_GRACE_SECONDS - time.monotonic(), 0.0)
            self._recheck = oldest.loop.call_later(delay, self._grace_over)

    def _grace_over(self) -> None:
        self._recheck = None
        self._trim(None)

    def _older_fresh(self, newest: HttpProtocol | None, grace: float) -> HttpProtocol | None:
        """The oldest fresh connection, unless it opened less than `grace` seconds ago (its client is about to
        send: shedding it would fail a request already on the way). One with bytes waiting in its socket, not read
        yet, is no longer fresh: its request is there (a timer due in the same turn of the loop may run before the
        socket is read)."""
        while (oldest := next(iter(self._fresh), None)) is not None and oldest is not newest:
            if time.monotonic() - oldest.opened_at < grace:
                return None
            if not oldest.bytes_waiting():
                return oldest
            self._request_arrived(oldest)
        return None

    def _oldest_idle(self, idle: dict[HttpProtocol, None]) -> HttpProtocol | None:
        """The oldest of `idle` with nothing in its socket. One whose next request has arrived, not read yet, is no
        longer idle (`_returned`): shed as idle, it was closed unanswered and its client saw a reset on a request it
        had sent (review 7, R7-2)."""
        while (oldest := next(iter(idle), None)) is not None and oldest.bytes_waiting():
            self._request_arrived(oldest)
        return oldest

    def _stale_kept(self) -> HttpProtocol | None:
        """The oldest keep-alive connection reused, if its client has not come back for `KEPT_ALIVE_SECONDS` or if
        they hold more than half of `max_connections` (then the clients least recent: one client re-sending on
        every place cannot hold them all against new connections)."""
        oldest = self._oldest_idle(self._kept)
        if oldest is None:
            return None
        stale = time.monotonic() - oldest.idle_since >= KEPT_ALIVE_SECONDS
        return oldest if stale or len(self._kept) > self.max_connections // 2 else None

    def _request_arrived(self, connection: HttpProtocol) -> None:
        """`connection`'s request is in its socket, not read yet. Called oldest first (`_older_fresh`,
        `_fresh_victim`), so that the last of `_requested` and `_whole` is the newest seen, the one shed first."""
        self._forget(connection)
        if connection.answered:
            self._returned[connection] = None
        elif connection.request_waiting_whole():
            self._whole[connection] = None
        else:
            self._requested[connection] = None

    def _body_victim(self, *, slow: bool) -> HttpProtocol | None:
        """The body to shed: of the `BODY_SHED_SCAN` newest, the one that has sent the fewest bytes (the newest among
        equals); with `slow`, of those not keeping up (`HttpProtocol.body_keeping_up`). A burst of new connections
        that announce bodies sheds its own, not an upload well under way: the oldest body was shed first, and three
        honest uploads at 20 KB/s got 503 in a burst of 1,000 connections a second. An upload that has sent little is
        not told from the burst's; one older than the newest `BODY_SHED_SCAN` is shed only when all of those are
        gone (the scan keeps a shed cheap in a burst). Bodies keeping up go after the idle connections answered once:
        shed before them, honest batches of 100 and 1,000 records (more than the socket's buffer: a body for a few
        milliseconds) got 503 59-82% of the time among 600-1,000 connections that each sent a `GET /health`, idled
        and reconnected when closed, while those reconnects were answered (review 16, F1)."""
        victim: HttpProtocol | None = None
        for scanned, connection in enumerate(reversed(self._bodies)):
            if scanned == BODY_SHED_SCAN:
                break
            if slow and connection.body_keeping_up():
                continue
            if victim is None or connection.body_received < victim.body_received:
                victim = connection
        return victim

    def _fresh_victim(self, newest: HttpProtocol) -> HttpProtocol | None:
        """Past `max_connections`, the fresh connection to shed before any keep-alive one: the oldest past its grace;
        else the newest when others opened with it (a burst, however fast, makes room among its own connections:
        the open files must stay bounded); None when a single new connection finds the pool full."""
        victim = self._older_fresh(newest, FRESH_GRACE_SECONDS)
        if victim is None:  # of the `BODY_SHED_SCAN` newest, the newest silent one of a burst; requests waiting seen
            burst = len(self._fresh) > 1
            scanned = list(islice(reversed(self._fresh), BODY_SHED_SCAN))  # copied: the loop moves them
            for connection in reversed(scanned):  # the oldest first: `_whole` and `_requested` keep their order
                if connection.bytes_waiting():
                    self._request_arrived(connection)
            if burst:
                victim = next((c for c in scanned if c in self._fresh), None)
        return victim

    def _shed(self, connection: HttpProtocol, reason: str) -> None:
        receiving = connection in self._bodies
        requested = reason == "connections" and connection not in self._idle and connection not in self._kept
        self.closed(connection)
        answer = "The service has too many connections open; retry in a second"
        if receiving:  # a request on its way: its client, maybe a slow uploader, learns why
            connection.refuse_body(503, "overloaded", answer, linger=False)
        elif requested:  # answered, not lost; lingering if there is room (`linger`)
            connection.refuse(503, "overloaded", answer, linger=self._room_to_linger(self.open))
        else:
            connection.transport.close()
            if self.refusals is not None:
                age = round(time.monotonic() - connection.opened_at, 3)
                self.refusals.shed(connection.loop, reason, {"client": connection.client, "open_seconds": age})
        if self.metrics is not None:
            self.metrics.connection_shed(reason)


class UnsentAnswers:
    """The bytes of answers the service holds for clients slower than it, all connections together, their budget, and
    who holds them.

    Review 5, R5-1: an answer leaves the budgets of the work in flight once written, and what the kernel's send
    buffer does not take waits in the process until the client reads it. 1,500 connections from one client, each
    sending a 1,000-record batch and reading its 580 KB answer 2 KB every 3 s, held 585 answers: 393 MB of RSS on
    the 512 MiB task. An answer counts here from the write the kernel did not take whole (writing pauses) until its
    last byte has left (writing resumes) or its connection is gone: all of it, what uvloop holds (the written
    object, until its last byte is sent) and more than asyncio's transport does (a copy of what the kernel did not
    take). Each answer is held to a rate (`min_send_bytes_per_second`), so one client cannot keep it for long.

    Past `limit`, a new request whose answer may be held (`answer_may_be_held`: not one that fits in the kernel's
    send buffer) makes room (`make_room`): the holder whose client received the fewest bytes a second since its
    answer first waited, among those past `send_grace_seconds` and slower than `droppable_below`
    (`DROPPABLE_BYTES_PER_SECOND`), is dropped (logged `answer_dropped`, counted `unsent_budget`) until the budget is
    no longer passed; only when none is droppable is the newcomer refused (503 `overloaded`, at its head).
    Refusing the newcomer instead let any set of readers just above the minimum rate hold the budget against
    everyone for as long as they read (review 7, R7-1: 53 connections reading 580 KB answers at 5 KB/s got 56 of 58
    other clients' explained predictions and batches 503). Dropping the slowest holder, the budget goes to whoever
    reads fastest: an honest reader's answer leaves in milliseconds and is hardly ever a holder past its grace, so
    to keep its answers a flood must read at `droppable_below` or faster (each answer it loses is one it asked the
    service to compute); without that bar, honest clients slower than the flood lost theirs (review 8, R8-2).
    Measured on 512 MiB settings, 60 connections
    reading at 5 KB/s: another client's explained predictions, 1-record and 100-record batches, 58-62 of 62-64
    refused before, now 0-3 of 43-51 (in the first 6 s, every answer held still within its grace); the readers'
    batches are now computed as fast as they are dropped (6 a second, was 1), and that client's p90 rose from 4 to
    up to 300 ms. The cost, under honest overload (many real clients on slow links at once): each newcomer costs
    the slowest of them its answer, work done and wasted, where a 503 to the newcomer wastes none; the budget is
    sized for many slow readers (28 MiB on 512 MiB: 48 answers of 1,000 records), so that is a task far past its
    traffic. A per-connection share was not chosen: connections cost
    a client nothing, so a share of the budget per connection is still the whole budget for who opens the most; a
    client (address) holding more than its share loses its answers past their grace to others
    (`_drop_past_share`).
    Not covered: clients that read as fast as honest ones and send new requests as fast as their answers are
    dropped or served, a request rate from many addresses only a rate limit in front of the service (a WAF) tells
    from real traffic; answers fresher than `send_grace_seconds` are never dropped for the budget, so a flood of
    new batches every few seconds still fills it (the batch budgets and `max_requests_in_flight` bound that rate).
    """

    def __init__(self, limit: int, grace: float, droppable_below: float) -> None:
        self.limit = limit
        self.grace = grace
        self.droppable_below = droppable_below  # bytes a second
        self.bytes = 0
        self.holders: set[HttpProtocol] = set()  # connections with bytes counted here

    @property
    def passed(self) -> bool:
        return self.bytes > self.limit

    def make_room(self, asking: HttpProtocol, now: float, client: str | None = None) -> bool:
        """Drop the slowest holders past their grace, and slower than `droppable_below`, but `asking` (its next
        request may arrive while its answer before waits) until the budget is no longer passed; whether it no
        longer is. Any holder slower than the others, a client reading at 20 KB/s (5 times the minimum rate) lost
        all 14 of its answers to 60 connections reading at 30 KB/s (review 8, R8-2): a client at the bar or faster
        keeps its answer, and newcomers get 503 while such clients fill the budget (48 answers of 1,000 records
        at 16 KB/s, 770 KB/s of download, on 512 MiB)."""
        if self.passed:
            droppable = (
                (rate, id(holder), holder)
                for holder in self.holders
                if holder is not asking
                and holder.waited(now) >= self.grace
                and (rate := holder.received_rate(now)) < self.droppable_below
            )
            for _, _, holder in sorted(droppable):
                holder.drop_answer("unsent_budget")
                if not self.passed:
                    break
        if self.passed:
            self._drop_past_share(asking, client, now)
        return not self.passed

    def _drop_past_share(self, asking: HttpProtocol, client: str | None, now: float) -> None:
        """For a newcomer whose `client` holds less than `limit / UNSENT_CLIENT_SHARES`, drop the answers past their
        grace of the clients holding more, the slowest first, while they do and the budget is passed. Without it,
        60 connections of one client reading 1,000-record answers at 20 KB/s (above the bar, 1.2 MB/s in all) held
        the budget, and 194 of 195 other clients' batches of 100 and 1,000 records got 503 (review 16, F9). The
        client is the address the app sees (`_client_of`: behind a trusted proxy, the one it names). Not counted:
        a client of many addresses, each holding less than its share, which only a rate limit in front tells."""
        share = self.limit // UNSENT_CLIENT_SHARES
        held: Counter[str | None] = Counter()
        for holder in self.holders:
            held[holder.answer_client] += holder.held_bytes
        if held[client] >= share:
            return
        heavy = sorted(
            (holder.received_rate(now), id(holder), holder)
            for holder in self.holders
            if holder is not asking and held[holder.answer_client] > share and holder.waited(now) >= self.grace
        )
        for _, _, holder in heavy:
            if not self.passed:
                break
            if held[holder.answer_client] > share:
                held[holder.answer_client] -= holder.held_bytes
                holder.drop_answer("unsent_budget")


def _client_of(peer: Any, headers: Iterable[tuple[bytes, bytes]], trusted: _TrustedHosts) -> str | None:
    """A request's client address as the app sees it (uvicorn's proxy headers): behind a trusted proxy, the
    right-most untrusted address of its `X-Forwarded-For`; else the connection's peer."""
    host: str | None = peer[0] if peer else None
    if host is None or host not in trusted:
        return host
    forwarded = [value for name, value in headers if name == b"x-forwarded-for"]
    if not forwarded:
        return host
    named: str = trusted.get_trusted_client_address(b", ".join(forwarded).decode("latin-1"))[0]
    return named or host


def answer_may_be_held(url: Any, body_bytes: int | None, settings: Settings) -> bool:
    """Whether a request's answer may wait for its client in `UnsentAnswers`: not the probes' and the metrics'
    (`ALWAYS_ANSWERED`), nor one whose largest answer (`answer_bytes_at_most`) the kernel's send buffer takes
    whole. Refusing those too, slow readers holding the budget got 88% of other clients' `POST /predict` 503
    (review 6, R6-1), then 56 of 58 of their explained predictions and 1-record batches (review 7, R7-1), though
    they could never add to it more than a kernel buffer a connection (bounded with `max_connections`)."""
    path = url.path.decode("latin-1")
    if path in ALWAYS_ANSWERED:
        return False
    most = answer_bytes_at_most(path, explains(url.query or b""), body_bytes, settings)
    return most is None or most > settings.send_buffer_bytes


def answer_bytes_at_most(path: str, explain: bool, body_bytes: int | None, settings: Settings) -> int | None:
    """The most bytes a prediction's answer can take, head included, from what its head says: one record for
    `/predict`, `records_at_most` of a batch's `Content-Length`; None for a chunked batch and any other path."""
    if path == PREDICT_PATH:
        records = 1
    elif path == BATCH_PATH and body_bytes is not None:
        records = records_at_most(body_bytes, settings.batch_limit)
    else:
        return None
    per_record = ANSWER_BYTES_PER_RECORD + (settings.explain_top_k * CONTRIBUTION_BYTES if explain else 0)
    return ANSWER_HEAD_BYTES + records * per_record


def bound_socket_buffers(sock: Any, settings: Settings) -> None:
    """Set a socket's kernel buffers to `send_buffer_bytes` and `receive_buffer_bytes` (Linux doubles them). On the
    listener too, whose accepted connections inherit them from their first packet: set on a connection once
    accepted, its receive window was already open at the default, and 47 KB waited unread behind an answer."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings.receive_buffer_bytes)


def protocol_class(settings: Settings, metrics: ServiceMetrics | None = None) -> type[HttpProtocol]:
    """The protocol uvicorn runs for one server: `HttpProtocol` with `settings`' limits, its own `ConnectionPool`
    and `UnsentAnswers`, and `metrics` to count what it refuses."""
    pool = ConnectionPool(
        max_idle=settings.max_idle_connections,
        max_connections=settings.max_connections,
        max_head_bytes=settings.max_head_bytes_buffered,
        metrics=metrics,
        refusals=RefusalLog(logger),
    )
    droppable_below = max(DROPPABLE_BYTES_PER_SECOND, DROPPABLE_RATE_FACTOR * settings.min_send_bytes_per_second)
    unsent = UnsentAnswers(settings.max_unsent_answer_bytes, settings.send_grace_seconds, droppable_below)
    if metrics is not None:
        metrics.unsent_answer_bytes.set_function(lambda: unsent.bytes)
    trusted = _TrustedHosts(settings.forwarded_allow_ips)
    attributes = {
        "settings": settings,
        "pool": pool,
        "metrics": metrics,
        "refusals": pool.refusals,
        "unsent": unsent,
        "trusted": trusted,
    }
    return type("HttpProtocol", (HttpProtocol,), attributes)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on heads and connections, deadlines, and JSON for its errors.

    Use `protocol_class(settings)`. The head deadline's timer is lazy: armed when a connection starts waiting for a
    head and re-armed only when it fires early, so a busy keep-alive connection costs a timer every
    `header_timeout_seconds`, not one per request.

    Bytes reach the parser in pieces that end where a head or a body ends, so that a request whose answer is still
    under way is the last one parsed: what follows it is kept (`_unread`, with reading paused) until the answer is
    complete. A client pipelining requests is read no faster than it is answered, and whatever the next request
    breaks (a limit, the syntax) is answered after the request before it.
    """

    settings: ClassVar[Settings]
    pool: ClassVar[ConnectionPool]
    metrics: ClassVar[ServiceMetrics | None]
    refusals: ClassVar[RefusalLog]
    unsent: ClassVar[UnsentAnswers]
    trusted: ClassVar[_TrustedHosts]  # the proxies whose `X-Forwarded-For` names the client (`_client_of`)
    answer_client: str | None = None  # whose answer it holds in `unsent`, once it holds one

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
        self._send_deadline: asyncio.TimerHandle | None = None  # while writing is paused: when it is checked
        self._written_bytes = 0  # handed to the transport, all answers of the connection
        self._held = 0  # counted in `unsent`: written since writing paused
        self._send_since = 0.0  # when writing paused (loop time)
        self._send_from: int | None = None  # bytes the client had received then (`_delivered`)
        self._send_progress = 0  # bytes it received since, at the last check
        self._send_moved = 0.0  # when that check saw them move (loop time)
        self._answer_left: Callable[[str | None], None] | None = None  # told when the answer waiting leaves
        self._lost = False  # the connection is gone
        self._linger_deadline: asyncio.TimerHandle | None = None  # the close of a lingering connection
        self._waiting_since: float | None = None  # for a head: since the connection opened or its first bytes came
        self._head_clock = False  # bytes of the next head have arrived (its deadline runs from the first)
        self._head_started = False  # the parser began that head's request line
        self._head_bytes = 0  # of the head under way, fed to the parser
        self._head_tail = b""  # its last bytes, where the end of the head may begin
        self._line_bytes = 0  # of the head's unfinished line, fed to the parser
        self._past_request_line = False
        self._blank_bytes = 0  # blank lines skipped before the next head
        self._in_body = False
        self._body_left: int | None = None  # bytes of a Content-Length body still to come; None: chunked
        self._chunked: ChunkedFraming | None = None
        self._body_since = 0.0  # when the body's head ended (loop time)
        self._body_bytes = 0  # of the body, as sent, received so far
        self._body_moved = 0.0  # when bytes of the body last arrived (loop time)
        self._unparsed_body = 0  # bytes of a body the parser skipped (an ignored Upgrade) still to come
        self._chunk_allowance = float(self.settings.max_body_chunks)  # chunks the connection may still send now
        self._chunks_counted_at = 0.0  # when the allowance was last brought up to date (loop time)
        self._finish_by: float | None = None  # once the server stops: when any body must have arrived (loop time)
        self._unread = b""  # received after a request whose answer is under way, from `_unread_at`
        self._unread_at = 0
        self._read_when_sent = False  # the next pipelined request waits for the answer before it to leave
        self._lingering = False  # answered with an error; closing
        self.pooled = False  # counted in the pool
        self.counted_lingering = False  # answered with an error and lingering: counted in the pool's `lingering`
        self.opened_at = 0.0
        self.answered = 0  # times answered and left idle (`ConnectionPool.idle`); more than once, its client reuses it
        self.idle_since = 0.0  # when it was last left idle
        self.buffered_head = 0  # bytes counted in the pool's head budget

    def bytes_waiting(self) -> bool:
        """Whether the client sent bytes not read yet (in the socket's receive queue)."""
        return self._queued(termios.FIONREAD) > 0

    def request_waiting_whole(self) -> bool:
        """Whether what waits unread in the socket is a whole request (a head, and all the body it announces, within
        `WHOLE_PEEK_BYTES`): a health check or a single prediction, not a head whose body is still to come."""
        try:
            peek = socket.socket(fileno=self.transport.get_extra_info("socket").fileno())
        except (AttributeError, OSError, ValueError):  # no socket (closed: its descriptor is -1; a test's transport)
            return False
        try:
            waiting = peek.recv(WHOLE_PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            return False
        finally:
            peek.detach()  # the descriptor stays the transport's
        return starts_with_whole_request(waiting)

    def _body_waiting(self) -> int:
        """Bytes its client sent that the app has not read: uvicorn's buffer and the socket's receive queue
        (`service.middleware.BODY_WAITING`)."""
        buffered = len(self.cycle.body) if self.cycle is not None else 0
        return buffered + self._queued(termios.FIONREAD)

    def _queued(self, request: int) -> int:
        """Bytes in the socket's receive (`FIONREAD`) or send (`TIOCOUTQ`: not yet acknowledged) queue."""
        try:
            queued = fcntl.ioctl(self.transport.get_extra_info("socket").fileno(), request, bytes(4))
        except (AttributeError, OSError, ValueError):  # no socket (closed: its descriptor is -1; a test's transport)
            return 0
        return int.from_bytes(queued, sys.byteorder)

    @property
    def body_received(self) -> int:
        """Bytes of the body under way received so far, as sent (framing included)."""
        return self._body_bytes

    def body_keeping_up(self) -> bool:
        """Whether the body under way has come at `DROPPABLE_BODY_BYTES_PER_SECOND` or faster since its head, and
        the app reads it (a batch waiting for room does not: its client cannot show its rate). An upload under way
        (`ConnectionPool._body_victim`); a body trickled, or a head with a few bytes of body, soon is not."""
        elapsed = self.loop.time() - self._body_since
        return not self._app_holds_body() and self._body_bytes >= elapsed * DROPPABLE_BODY_BYTES_PER_SECOND

    # -- connection lifetime ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._writes = CoalescedWrites(
            cast(asyncio.Transport, transport), self.loop, self._lingers_after_answer, self._answer_written
        )
        self._bound_unsent(cast(asyncio.Transport, transport))
        super().connection_made(self._writes)  # type: ignore[arg-type]
        self.pooled = True
        self.opened_at = time.monotonic()
        self.pool.opened(self)
        self._wait_for_head()

    def _bound_unsent(self, transport: asyncio.Transport) -> None:
        """Bound what an answer the client does not read may hold: the kernel's send buffer at `send_buffer_bytes`
        (Linux grew it to 4 MB, so answers to a client that never read stayed there and `send_timeout_seconds`
        rarely applied: 20 such connections held 56 MB), and the transport's own buffer at nothing, so that any
        byte the kernel does not take pauses writing (counting the answer in `unsent`, arming the send deadline)
        and the next pipelined request waits until the answer before it has left (`_read_on`). The receive buffer
        too (`receive_buffer_bytes`): what is pipelined behind an answer waits there, unread, and Linux had grown it
        to 1.3 MB for a client that sent fast before it paused (review 5, R5-4: the stacks size `max_connections`
        by these buffers)."""
        sock = transport.get_extra_info("socket")
        if sock is not None:  # the listener's, inherited (`service.server`); again for connections taken at the stop
            bound_socket_buffers(sock, self.settings)
        transport.set_write_buffer_limits(high=0)

    def eof_received(self) -> None:
        """The client closed its side: the connection closes, an answer complete but not sent yet
        (`CoalescedWrites`) sent first. A FIN says nothing more: a client that half-closes (`nc -N`) and one that
        left look the same, and the service drops the batches of clients that left (`service.middleware`)."""
        self._writes.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.cycle is not None and not self.cycle.response_complete:  # its answer will not be sent: logged 499
            self.cycle.scope.setdefault("state", {})[CLIENT_GONE] = True
        self.pool.closed(self)
        for timer in (self._head_deadline, self._body_deadline, self._send_deadline, self._linger_deadline):
            if timer is not None:
                timer.cancel()
        self._head_deadline = self._body_deadline = self._send_deadline = self._linger_deadline = None
        self._unread = b""
        self._release_unsent()
        self._lost = True
        self._answer_has_left("client_gone" if self.flow.write_paused else None)
        super().connection_lost(exc)

    def _lingers_after_answer(self) -> bool:
        """Whether the connection, closed after its answer, lingers: it does while the request's body is still
        arriving (the app refused it unread, `service.middleware.Admission`'s 413 and 503), as after the protocol's
        own errors (`_send_error`); closed with the body unread, the kernel reset the connection and some clients
        under load lost the answer. So it does while requests pipelined after this one are unread (an answer that
        closes, `Connection: close` or the stop's: at a stop, 3 of 5 pipelined batches met a reset, review 16,
        F10); their client learns from the FIN after the answer that they were not handled."""
        unread = self._in_body or self._unread or self.bytes_waiting()
        if not unread or self._lingering or not self._writes.can_write_eof():
            return False
        return self._linger()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or not self.cycle.response_complete or self._in_body:
            return
        if self._unread:
            self.flow.pause_reading()  # until what was received is parsed
            self.pool.heading(self)
            self.loop.call_soon(self._read_on)
        else:
            self.pool.idle(self)

    def _read_on(self) -> None:
        """The answer is complete: once it has left (handed to the kernel), parse what came after its request; once
        all of it is, read more."""
        if self.flow.write_paused:
            self._read_when_sent = True  # by `resume_writing`
            return
        unread, at = self._unread, self._unread_at
        self._unread = b""
        if unread and not self.transport.is_closing():
            self._feed(unread, at)
        if not self._unread and not self.transport.is_closing():
            self.flow.resume_reading()

    def shutdown(self) -> None:
        """The server stops: a request under way, even one still sending its head, gets its answer, then the
        connection closes; one whose body is still arriving has not started: it may finish when at its rate so far
        it arrives within half of `shutdown_timeout_seconds` (and is cut with 503 if it falls behind), else 503 at
        once (waiting for it would keep the stop going, and cancelling it log an error); a connection with none gets
        `SHUTDOWN_GRACE_SECONDS` to start one (it may have been accepted a moment ago, its request on the way), then
        closes. A body whose head ends after this (a request sent in that grace, or a head still arriving) is judged
        the same way once it has had `ARRIVAL_CHECK_SECONDS` to show its rate (`_check_arrival`): once it trickled
        25 s, until uvicorn cancelled it (a plain-text 500 and a traceback), then it was held the whole half of the
        shutdown timeout before its 503 although at 1.1 KB/s it could never arrive."""
        self._unread = b""  # requests pipelined behind the one under way are not read
        self._finish_by = self.loop.time() + self.settings.shutdown_timeout_seconds / 2
        if self._send_deadline is not None:  # an answer the client is not taking: it has until `_finish_by`
            self._send_deadline.cancel()
            self._send_checked()
        if self._in_body and not self._lingering and not self.transport.is_closing():
            if self._arrives_by(self._finish_by):
                self.cycle.keep_alive = False  # the body arrives, its request is answered, then the connection closes
            else:
                self.refuse_body(503, "shutting_down", _STOPPING, linger=True)
        elif self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif not self._head_started:
            self.loop.call_later(SHUTDOWN_GRACE_SECONDS, self._close_if_unused)

    def _arrives_by(self, deadline: float) -> bool:
        """Whether the body under way, at the rate it has come so far, will all have arrived by `deadline` (loop
        time); if so it is held to it (`_finish_by`). An upload well under way at the stop is let finish and
        answered (one at 20 KB/s was cut with 503 although the stop had 20 s to spare); a body of unknown length
        (chunked) or one that has not started or trickles is not, nor one the app leaves unread (a batch waiting for
        room, `_app_holds_body`: it would not arrive at all)."""
        elapsed = self.loop.time() - self._body_since
        if self._body_left is None or self._unparsed_body or not self._body_bytes or elapsed <= 0:
            return False
        if self._app_holds_body():
            return False
        if self.loop.time() + self._body_left * elapsed / self._body_bytes > deadline:
            return False
        if self._body_deadline is not None:
            self._body_deadline.cancel()
        self._body_deadline = self.loop.call_at(self._body_due(), self._body_timed_out)
        return True

    def _check_arrival(self, since: float) -> None:
        """The server is stopping and the body whose head ended at `since` had `ARRIVAL_CHECK_SECONDS`: 503 now
        unless at its rate so far it arrives by `_finish_by` (then it is held to it)."""
        if (
            self._in_body
            and self._body_since == since
            and self._finish_by is not None
            and not self._lingering
            and not self.transport.is_closing()
            and not self._arrives_by(self._finish_by)
        ):
            self.refuse_body(503, "shutting_down", _STOPPING, linger=True)

    def _close_if_unused(self) -> None:
        if not self._head_started and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    def pause_writing(self) -> None:
        """The kernel did not take all of an answer: the client is slower than the service. The answer is held to
        `_send_due` from now on (at most until `_finish_by` once the server stops)."""
        super().pause_writing()
        if self._send_deadline is None:
            self._send_since = self._send_moved = self.loop.time()
            self._send_from = None  # known once the write that paused is counted (`_answer_written`)
            self._send_progress = 0
            self._send_deadline = self.loop.call_at(self._send_due()[0], self._send_checked)

    def resume_writing(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None
        self._release_unsent()
        self._answer_has_left(None)
        super().resume_writing()
        if self._read_when_sent:
            self._read_when_sent = False
            self.loop.call_soon(self._read_on)

    def _answer_written(self, size: int) -> None:
        """`size` bytes were handed to the transport: while writing is paused they wait in the service."""
        self._written_bytes += size
        if self.flow.write_paused:
            if not self._held and self.cycle is not None:  # it begins to hold: whose answer it is
                self.answer_client = _client_of(
                    self.cycle.scope.get("client"), self.cycle.scope["headers"], self.trusted
                )
            self._held += size
            self.unsent.bytes += size
            self.unsent.holders.add(self)
            if self._send_from is None:
                self._send_from = self._delivered()

    def _release_unsent(self) -> None:
        self.unsent.bytes -= self._held
        self._held = 0
        self.unsent.holders.discard(self)

    @property
    def held_bytes(self) -> int:
        """Bytes of its answer counted in `unsent`."""
        return self._held

    def waited(self, now: float) -> float:
        """Seconds the answer under way has waited for its client (`send_grace_seconds` applies from then)."""
        return now - self._send_since

    def received_rate(self, now: float) -> float:
        """Bytes a second the client received of its answer since it first waited (`UnsentAnswers.make_room`)."""
        return self._received() / max(now - self._send_since, 1e-3)

    def _received(self) -> int:
        """Bytes the client received since its answer first waited."""
        return 0 if self._send_from is None else self._delivered() - self._send_from

    def _delivered(self) -> int:
        """Bytes of this connection's answers its client has received: what the transport and the kernel's send
        queue hold is not. The kernel takes more of an answer only once a third of its buffer is free, so what
        leaves the transport alone moved in steps: a client reading 4 KB a second seemed to take nothing for 20 s."""
        return self._written_bytes - self.transport.get_write_buffer_size() - self._queued(termios.TIOCOUTQ)

    def _send_due(self) -> tuple[float, str]:
        """When the answer waiting for its client must have left (loop time), and the rule that says so: nothing
        taken for `send_timeout_seconds`, or, after `send_grace_seconds`, less than `min_send_bytes_per_second` on
        average since writing paused (a reader at 700 bytes a second held a 580 KB answer 14 minutes), or the stop
        (`_finish_by`)."""
        settings = self.settings
        due, rule = self._send_moved + settings.send_timeout_seconds, "send_stalled"
        rate = settings.min_send_bytes_per_second
        if rate and self._send_since + settings.send_grace_seconds + self._send_progress / rate < due:
            due, rule = self._send_since + settings.send_grace_seconds + self._send_progress / rate, "send_rate"
        if self._finish_by is not None and self._finish_by < due:
            due, rule = self._finish_by, "shutdown"
        return due, rule

    def _send_checked(self) -> None:
        """The lazy send deadline: what the client received since the last look moves it; past it, the answer is
        dropped."""
        self._send_deadline = None
        if not self.flow.write_paused:  # closing or not: a closed transport waits for its answer to leave
            return
        now = self.loop.time()
        progress = self._received()
        if progress > self._send_progress:
            self._send_progress, self._send_moved = progress, now
        due, rule = self._send_due()
        if due > now:
            self._send_deadline = self.loop.call_at(due, self._send_checked)
        else:
            self.drop_answer(rule)

    def drop_answer(self, rule: str) -> None:
        """Reset the connection of an answer its client does not take fast enough (`rule`), logged (sampled) and
        counted in `http_connections_shed_total`: its request is counted and logged now, 499 with the rule
        (`ANSWER_LEAVING`), under the same request id. Reset, not closed: a closed socket's kernel keeps sending its
        buffer, an orphan no longer counted in `max_connections`, and the client gets a truncated answer without
        an error."""
        state = self.cycle.scope.get("state", {}) if self.cycle is not None else {}
        details = {
            "request_id": state.get("request_id"),
            "client": self.client,
            "sent_bytes": self._received(),
            "unsent_bytes": self.transport.get_write_buffer_size(),
            "waited_seconds": round(self.loop.time() - self._send_since, 3),
        }
        self.refusals.dropped(self.loop, rule, details)
        if self.metrics is not None:
            self.metrics.connection_shed(rule)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()
        self._release_unsent()  # its buffers are freed now: the room `UnsentAnswers.make_room` counts on
        self._answer_has_left(rule)

    def _answer_leaving(self, left: Callable[[str | None], None]) -> bool:
        """Whether the answer the app has just finished still waits for its client (`ANSWER_LEAVING`, as the app
        returns); if so, `left` is told once it has left (None), or why it never will. The answer is whole
        by then: what `CoalescedWrites` holds of it leaves now rather than at the loop's next turn."""
        self._writes.flush()
        if self._writes.failed and not self._lost:  # the client reset before its answer was written (R10-3)
            left("client_gone")
            return True
        if self._lost or not self.flow.write_paused:
            return False
        self._answer_has_left(None)  # one answer is followed at a time: one before it, still waiting, counts as left
        self._answer_left = left
        return True

    def _answer_has_left(self, not_delivered: str | None) -> None:
        left, self._answer_left = self._answer_left, None
        if left is not None:
            left(not_delivered)

    # -- bytes in: counted before the parser sees them -----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # everything after an error answer is dropped
        self._unset_keepalive_if_required()
        if self._unread:  # still waiting for an answer: keep the order
            self._unread = self._unread[self._unread_at :] + data
            self._unread_at = 0
            self.flow.pause_reading()  # again: the app's disconnect check (`Request.is_disconnected`) resumes it
            return
        self._feed(data)

    def _feed(self, data: bytes, at: int = 0) -> None:
        if not self._in_body and not self._head_clock:  # the first bytes of a head start its deadline
            self._head_clock = True
            self._wait_for_head()
        view = memoryview(data)
        end = len(data)
        while at < end and not self.transport.is_closing() and not self._lingering:
            if self._answering():
                self._unread, self._unread_at = data, at  # kept whole, not copied: a flood would copy it per request
                self.flow.pause_reading()
                return
            if self._unparsed_body:
                at = self._skipped_body(view, at)
                continue
            if not self._in_body and not self._head_started:
                at = self._skip_blank_lines(data, at)
                if at == end or self._lingering:
                    break
                self.pool.heading(self)
            body_piece = self._in_body
            try:
                size = self._next_piece(data, at, end)
                if body_piece and size:
                    self._body_bytes += size
                    self._body_moved = self.loop.time()
                self.parser.feed_data(view[at : at + size])
                if not self._in_body and self._head_started:  # the head goes on past this piece
                    self._head_grew(view, at, size)
            except RefusedError as exc:
                self._send_error(exc.status, exc.code, exc.reason, exc.field)
                return
            except httptools.HttpParserCallbackError as exc:
                cause = exc.__context__
                if isinstance(cause, RefusedError):
                    self._send_error(cause.status, cause.code, cause.reason, cause.field)
                else:  # the parser's own checks in uvicorn's callbacks: a request target it cannot split
                    self._malformed()
                return
            except httptools.HttpParserUpgrade as exc:
                if not self._ignore_upgrade():
                    return
                at += exc.args[0]
                continue
            except httptools.HttpParserError:
                self._malformed()
                return
            at += size
            if body_piece and self._chunked is not None and at < end and not self._chunked.done:
                self._unread, self._unread_at = data, at  # a turn's worth of chunks: the rest on the next one
                self.flow.pause_reading()
                self.loop.call_soon(self._read_on)
                return
        if self._in_body and self._body_deadline is None and not self._lingering:  # a body still to come
            self._body_deadline = self.loop.call_at(self._body_due(), self._body_timed_out)

    def _head_grew(self, view: memoryview, at: int, size: int) -> None:
        """The head under way took `view[at : at + size]`: counted, and refused with 431 once it fills its room."""
        self._head_bytes += size
        self._head_tail = (self._head_tail + view[at + size - min(size, 3) : at + size])[-3:]
        self.pool.head_grew(self, size)
        if self._head_bytes >= self._max_head:
            reason = f"The request's head is larger than {self._max_head:,} bytes; send less in its headers"
            raise RefusedError(431, "headers_too_large", reason, "headers")

    def _answering(self) -> bool:
        """A whole request was read and its answer is not complete: the parser waits."""
        return not self._in_body and self.cycle is not None and not self.cycle.response_complete

    def _skip_blank_lines(self, data: bytes, at: int) -> int:
        """Skip the blank lines a client may send before a request (RFC 9112 2.2), in bulk; past
        `MAX_BLANK_LINE_BYTES` of them, 400."""
        stop = _BLANK_LINES.match(data, at).end()  # type: ignore[union-attr]
        self._blank_bytes += stop - at
        if self._blank_bytes > MAX_BLANK_LINE_BYTES:
            reason = f"More than {MAX_BLANK_LINE_BYTES:,} bytes of blank lines before a request; send the request"
            self._send_error(400, "bad_request", reason, "request")
        return stop

    def _next_piece(self, data: bytes, at: int, end: int) -> int:
        """How many bytes of `data[at:end]` the parser may take now: through the end of a head, or the room the
        head has left, or through the end of a body (so that the next head starts a piece and is counted exactly).
        Raises when the head's unfinished line already breaks its limit."""
        if self._in_body:
            if self._chunked is not None:
                return self._chunked.take(data, at, end, CHUNKS_PER_TURN)
            return min(self._body_left or end - at, end - at)
        size = -1
        if self._head_tail:
            found = (self._head_tail + data[at : at + len(_HEAD_END)]).find(_HEAD_END)
            if found >= 0:
                size = found + len(_HEAD_END) - len(self._head_tail)
        if size < 0:
            room = self._max_head - self._head_bytes
            found = data.find(_HEAD_END, at, at + room)
            size = found + len(_HEAD_END) - at if found >= 0 else min(room, end - at)
        self._count_line(data, at, at + size)
        return size

    def _count_line(self, data: bytes, start: int, stop: int) -> None:
        """The head's unfinished line grows by `data[start:stop]`: past its limit, 414 or 431 before it is fed."""
        newline = data.rfind(b"\n", start, stop)
        if newline >= 0:
            self._past_request_line = True
            self._line_bytes = stop - newline - 1
        else:
            self._line_bytes += stop - start
        settings = self.settings
        if self._past_request_line and self._line_bytes > settings.max_header_line_bytes:
            shown = bytes(data[stop - self._line_bytes : stop][:40]).split(b":", 1)[0].decode("latin-1")
            reason = f"The header line {shown!r} is longer than {settings.max_header_line_bytes:,} bytes"
            raise RefusedError(431, "headers_too_large", reason, "headers")
        if not self._past_request_line and self._line_bytes > settings.max_request_line_bytes:
            reason = f"The request line is longer than {settings.max_request_line_bytes:,} bytes; send a shorter path"
            raise RefusedError(414, "uri_too_long", reason, "url")

    def _malformed(self) -> None:
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

    def _skipped_body(self, view: memoryview, at: int) -> int:
        """Pass on the bytes of a body the parser skipped; where the next request's bytes start."""
        stop = min(at + self._unparsed_body, len(view))
        self._unparsed_body -= stop - at
        self._body_bytes += stop - at
        self._body_moved = self.loop.time()
        self.on_body(bytes(view[at:stop]))
        if not self._unparsed_body:
            self.on_message_complete()
        return stop

    # -- parser callbacks -----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._blank_bytes = 0
        if not self._head_clock:  # a pipelined request: its head is read once the one before is answered
            self._head_clock = True
            self._wait_for_head()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        limit = self.settings.max_request_line_bytes
        if len(self.url) > limit:
            reason = f"The request line is longer than {limit:,} bytes; send a shorter path and query"
            raise RefusedError(414, "uri_too_long", reason, "url")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            return  # a trailer: never one of the request's headers, which the app has already seen (and acted on)
        settings = self.settings
        if len(name) + len(value) + 2 > settings.max_header_line_bytes:
            shown = name[:40].decode("latin-1")
            reason = f"The header line {shown!r} is longer than {settings.max_header_line_bytes:,} bytes"
            raise RefusedError(431, "headers_too_large", reason, "headers")
        if len(self.headers) >= settings.max_headers:
            reason = f"The request has more than {settings.max_headers:,} headers; send fewer"
            raise RefusedError(431, "headers_too_large", reason, "headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._waiting_since = None
        self._head_clock = self._head_started = False
        self._head_bytes = self._line_bytes = 0
        self._past_request_line = False
        self._head_tail = b""
        self.pool.head_done(self)
        self._in_body = True
        self._body_left = 0
        self._chunked = None
        self._body_since = self._body_moved = self.loop.time()
        self._body_bytes = 0
        host = 0
        for name, value in self.headers:
            if name == b"content-length":
                self._body_left = int(value)
            elif name == b"transfer-encoding":
                _check_transfer_coding(value)
                self._body_left = None
                self._chunked = self._framing()
            elif name == b"host":
                host += 1
                _check_host(value)
        _check_version(self.parser.get_http_version(), host)
        if (
            self.unsent.passed
            and answer_may_be_held(httptools.parse_url(self.url), self._body_left, self.settings)
            and not self.unsent.make_room(self, self.loop.time(), _client_of(self.client, self.headers, self.trusted))
        ):
            raise RefusedError(503, "overloaded", _UNSENT, "request")
        if self._body_left == 0:
            self.pool.busy(self)
        else:
            self.pool.receiving(self)
        super().on_headers_complete()
        self.scope["state"][ANSWER_LEAVING] = self._answer_leaving
        if self._body_left != 0:
            self.scope["state"][BODY_WAITING] = self._body_waiting
            self.scope["state"][DROP_BODY] = self._drop_body
        if self.pool.stopping:
            self.cycle.keep_alive = False  # while draining, every answer closes its connection
        if self._finish_by is not None and self._body_left != 0:  # a body begun after the listener closed
            self.loop.call_later(ARRIVAL_CHECK_SECONDS, self._check_arrival, self._body_since)

    def on_body(self, body: bytes) -> None:
        if self._body_left:
            self._body_left -= len(body)
        super().on_body(body)
        if self._app_holds_body():  # the rest stays in the kernel's buffers, not uvicorn's 64 KB
            self.flow.pause_reading()

    def _framing(self) -> ChunkedFraming:
        """The framing of a chunked body, its chunks bounded by what the connection has left of its own: a body has
        at most `max_body_chunks`, and the connection earns them back at `max_body_chunks` per
        `CHUNK_REFILL_SECONDS`. Counted per request only, requests of 8,000 one-byte chunks pipelined on one
        connection cost 5.9 s of CPU for 9.6 MB; now a connection costs the loop at most that rate of chunks.
        Not counted: many connections, each with its own allowance (`max_connections` bounds them)."""
        settings = self.settings
        now = self.loop.time()
        earned = (now - self._chunks_counted_at) * settings.max_body_chunks / CHUNK_REFILL_SECONDS
        self._chunk_allowance = min(float(settings.max_body_chunks), self._chunk_allowance + earned)
        self._chunks_counted_at = now
        return ChunkedFraming(
            max_wire_bytes=settings.body_limit_bytes + settings.max_head_bytes,
            max_chunks=int(self._chunk_allowance),
            max_line_bytes=settings.max_header_line_bytes,
            max_trailers=settings.max_headers,
            max_trailer_bytes=settings.max_head_bytes,
        )

    def on_message_complete(self) -> None:
        self.pool.busy(self)  # its body (if any) arrived: the request is being handled
        # uvicorn pauses reading while a body waits for the app, and resumes it only when the app reads: read on,
        # so that a client that leaves is seen (what it sends meanwhile is kept in `_unread`, reading paused again)
        self.flow.resume_reading()
        self._in_body = False
        if self._chunked is not None:
            self._chunk_allowance -= self._chunked.chunks
        self._chunked = None
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

    def _body_due(self) -> float:
        """When the body must have arrived (loop time): within `body_timeout_seconds` of its head, and, once
        `body_grace_seconds` have passed, at `min_body_bytes_per_second` or faster on average: a body trickled a
        byte a second would otherwise hold its connection (and a place among `max_connections`) the whole time.
        Once it started, with no gap longer than `body_stall_seconds`: the average lets a body sent nearly whole then
        stalled hold its bytes of `max_pending_body_bytes` until the absolute deadline."""
        settings = self.settings
        since, moved = self._body_clock()
        due = since + settings.body_timeout_seconds
        rate = settings.min_body_bytes_per_second
        if rate:
            due = min(due, since + settings.body_grace_seconds + self._body_bytes / rate)
        if settings.body_stall_seconds and self._body_bytes:
            due = min(due, moved + settings.body_stall_seconds)
        if self._finish_by is not None:
            due = min(due, self._finish_by)
        return due

    def _body_timed_out(self) -> None:
        """The body did not arrive in time or fast enough: 408, and the app, still waiting for it, sees a
        disconnect. The timer is lazy: armed once, and re-armed when it fires before the body is due."""
        self._body_deadline = None
        if self.transport.is_closing() or self._lingering or not self._in_body:
            return
        now = self.loop.time()
        if self._app_holds_body() and (self._finish_by is None or now < self._finish_by):
            self._body_deadline = self.loop.call_at(now + BODY_HELD_RECHECK_SECONDS, self._body_timed_out)
            return
        due = self._body_due()
        if due > self.loop.time():
            self._body_deadline = self.loop.call_at(due, self._body_timed_out)
            return
        settings = self.settings
        if due == self._finish_by:
            self.refuse_body(503, "shutting_down", _STOPPING, linger=True)
            return
        since, moved = self._body_clock()
        if settings.body_stall_seconds and self._body_bytes and due == moved + settings.body_stall_seconds:
            reason = (
                f"The request body stopped arriving: nothing came for {settings.body_stall_seconds:g} s; "
                "send it without pausing."
            )
        elif due < since + settings.body_timeout_seconds:
            reason = (
                f"The request body arrived slower than {settings.min_body_bytes_per_second:,} bytes a second; "
                "send it at once."
            )
        else:
            reason = f"The request body did not arrive within {settings.body_timeout_seconds:g} s; send it at once."
        self.refuse_body(408, "request_timeout", reason, linger=True)

    def _drop_body(self) -> bool:
        """The app drops this body, still arriving, to make room for a faster one in `max_pending_body_bytes`
        (`DROP_BODY`, review 10, R10-1): 503 `overloaded`, counted (`http_protocol_refusals_total`, and `body_budget`
        in `http_connections_shed_total`) and logged as the protocol's refusals; the connection lingers, so that
        its client, still sending, reads the answer. Whether it did: not when the rest of the body has just arrived
        (the app has not read it yet) or the connection is already closing."""
        if not self._in_body or self._lingering or self.transport.is_closing():
            return False
        if self.metrics is not None:
            self.metrics.connection_shed("body_budget")
        self.refuse_body(503, "overloaded", _DROPPED_BODY, linger=True)
        return True

    def _hold(self) -> tuple[float, float | None] | None:
        """When the app began to leave the body unread, and when it took it on (None: not yet), if it did: a batch
        waiting for room in its budget (`BODY_HELD`, `service.middleware.Admission`)."""
        if self.cycle is None:
            return None
        hold: tuple[float, float | None] | None = self.cycle.scope.get("state", {}).get(BODY_HELD)
        return hold

    def _app_holds_body(self) -> bool:
        """Whether the app leaves the body unread now: its client is not behind, it cannot send. Held 5 s, such a
        batch got 408 for its stalled body (review 7, R7-5)."""
        hold = self._hold()
        return hold is not None and hold[1] is None

    def _body_clock(self) -> tuple[float, float]:
        """When the body's head ended and when its bytes last moved, as the client's deadlines count them: the time
        the app held it unread (`_hold`) is not the client's, and the client could send again only once it
        ended."""
        since, moved = self._body_since, self._body_moved
        hold = self._hold()
        if hold is not None:
            start, end = hold
            end = self.loop.time() if end is None else end
            since, moved = since + max(end - start, 0.0), max(moved, end)
        return since, moved

    def refuse_body(self, status: int, code: str, reason: str, *, linger: bool) -> None:
        """Answer a request whose body is still arriving (the app, waiting for it, has not handled it and sees a
        disconnect) and close; when its answer has already started, just close. The request is counted with the
        status its client got, under its own request id, and left out of the access log (`ANSWERED_BY_SERVER`):
        logged 499 one line each, 600 clients shed by `max_connections` wrote 12 MB of it in 20 s; the refusal log
        has it, sampled."""
        if self.cycle is not None and not self.cycle.response_started:
            state = self.cycle.scope.setdefault("state", {})
            state[ANSWERED_BY_SERVER] = status
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            self._send_error(status, code, reason, "body", linger=linger, request_id=state.get("request_id"))
        else:
            self.transport.close()

    def refuse(self, status: int, code: str, reason: str, *, linger: bool) -> None:
        """Answer a connection whose request has not started (its head sent or on its way, maybe not read yet) and
        close it, lingering or at once: then what its client sent so far is read and dropped first (closed with
        bytes unread, the kernel resets the connection and the client may lose the answer); a client still sending
        after the answer may see a reset."""
        if not linger:
            with contextlib.suppress(AttributeError, OSError):  # no socket (closed, a test's transport), or all read
                descriptor = self.transport.get_extra_info("socket").fileno()
                for _ in range(REFUSED_READS):
                    if not os.read(descriptor, 65536):
                        break
        self._send_error(status, code, reason, "request", linger=linger)

    def _send_error(
        self, status: int, code: str, reason: str, field: str, *, linger: bool = True, request_id: str | None = None
    ) -> None:
        """Answer and close, lingering: a client still sending (a large head) would otherwise get a reset, which
        may destroy the answer before it reads it; so the answer and a FIN go first, what arrives meanwhile is
        dropped, and the connection closes when the client closes it or after `LINGER_SECONDS`. Without `linger`
        (a connection shed to make room), it closes at once."""
        self._waiting_since = None
        self._unread = b""
        body, headers = _response(status, code, reason, field, request_id)
        request_id = headers[-2][1].decode()
        if self.metrics is not None:
            self.metrics.protocol_refusal(status, code)
        self.refusals.refused(
            self.loop, status, code, {"request_id": request_id, "reason": reason, "client": self.client}
        )
        head = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        if not linger or self._lingering or not self.transport.can_write_eof():
            self._lingering = True  # so that the close does not linger (`_lingers_after_answer`)
            self.transport.close()
            return
        self._linger()

    def _linger(self) -> bool:
        """Send what is pending and a FIN, drop what arrives, close after `LINGER_SECONDS` (or when the client
        closes); whether it lingers. A lingering connection no longer counts in `max_connections` but in the pool's
        own bound of lingering ones (`ConnectionPool.linger`; past it, closed at once): counted as open, the refused
        connections of 150 clients re-sending 2 MB batches at once held 85% of the places, the admitted batches were
        shed and none was served (review 6, R6-3). A client that reset meanwhile has nothing to read: closed."""
        self._lingering = True
        try:
            if not self.pool.linger(self):
                raise ConnectionError("no room to linger")
            self._writes.flush()
            self._writes.write_eof()
        except OSError:  # the client reset (an ERROR and a 500 in the log once, R6-4), or no room: closed at once
            self.transport.close()
            return False
        self.flow.resume_reading()  # what arrives is read and dropped, not left to reset the connection
        self._linger_deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        return True


def starts_with_whole_request(waiting: bytes) -> bool:
    """Whether `waiting` starts with a whole request: its head, and as many bytes after it as its Content-Length
    (none without one; a chunked body is not judged whole)."""
    end = waiting.find(_HEAD_END)
    if end < 0:
        return False
    head = waiting[:end].lower()
    if b"\ntransfer-encoding:" in head:
        return False
    length = _CONTENT_LENGTH.search(head)
    return len(waiting) - end - len(_HEAD_END) >= (int(length[1]) if length else 0)


def _check_transfer_coding(value: bytes) -> None:
    """Chunked alone: a body under another transfer coding (`gzip, chunked`) would be read as if it had none;
    RFC 9112 6.1 asks for 501 to a coding the server does not understand."""
    if value.strip().lower() != b"chunked":
        shown = value[:40].decode("latin-1")
        reason = f"The transfer coding {shown!r} is not supported; send the body with Transfer-Encoding: chunked alone"
        raise RefusedError(501, "not_implemented", reason, "headers")


def _check_host(value: bytes) -> None:
    """A Host header's value is a host and an optional port (RFC 9112 3.2, RFC 3986 3.2.2): `a, b` (two values a
    proxy folded into one) was answered 200 (review 17, N5)."""
    if not _HOST_VALUE.fullmatch(value):
        reason = f"The Host header {value[:100]!r} is not a host and port (RFC 9112 3.2); send one host"
        raise RefusedError(400, "bad_request", reason, "headers")


def _check_version(version: str, hosts: int) -> None:
    """HTTP/1.1 with one Host header (RFC 9112 3.2), or HTTP/1.0 with at most one; anything else is refused with 400
    (two were accepted, and proxies disagree on which one names the server: review 16, F5)."""
    if version not in ("1.0", "1.1"):
        raise RefusedError(400, "bad_request", f"HTTP/{version} is not served; send HTTP/1.1", "request")
    if version == "1.1" and not hosts:
        reason = "An HTTP/1.1 request must have a Host header (RFC 9112 3.2); add one"
        raise RefusedError(400, "bad_request", reason, "headers")
    if hosts > 1:
        reason = f"The request has {hosts} Host headers; send one (RFC 9112 3.2)"
        raise RefusedError(400, "bad_request", reason, "headers")
