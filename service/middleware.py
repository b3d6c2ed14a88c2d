"""Pure ASGI middleware (no BaseHTTPMiddleware: it would add a task and a stream per request).

`RequestContext` (outermost) gives each request an id, logs one JSON line, records the metrics and turns any
unhandled exception into a JSON 500 that names the request id. `Admission` reads the body up front, before any
JSON parsing or validation runs, and bounds the work in flight.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ProblemError, raw_error, request_id_of
from service.observability import ACCESS_LOGGER, NOT_DELIVERED_FIELD
from service.observability import Metrics as ServiceMetrics  # ml.manifest.Metrics too: one name for Sphinx
from service.refusal_log import RefusalLog
from service.settings import (
    BATCH_RESERVED_BYTES_PER_SECOND,
    BODY_RATE_WINDOW_SECONDS,
    DROPPABLE_BODY_BYTES_PER_SECOND,
    RESERVED_PER_BYTE_ARRIVED,
)

logger = logging.getLogger(ACCESS_LOGGER)
_error_logger = logging.getLogger("service.errors")
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: The status logged and counted for a request whose client went away (or ran out of time) before its answer: not
#: a server error (nginx's convention; never sent, there is no one to send it to).
CLIENT_CLOSED_REQUEST = 499
#: The key in a request's `scope["state"]` the server's protocol sets when the connection is lost before its answer
#: was complete (`service.http_protocol`): uvicorn drops the answer silently, and the log said 200.
CLIENT_GONE = "client_gone"
#: The key in a request's `scope["state"]` set to the status the request was refused with before the app saw it, by
#: the server's protocol (its body still arriving, `service.http_protocol`) or by `Admission`: counted with it, and
#: logged by a refusal log (sampled), not one access-log line each.
ANSWERED_BY_SERVER = "answered_by_server"
#: The key in a request's `scope["state"]` the server's protocol sets to a function of a callback, called as the app
#: returns: True when the answer still waits for its client (`service.http_protocol`), and the callback then gets
#: None once it has left, else why it never will (the rule it was dropped by, or `client_gone`). The request is
#: counted and logged then, 499 when not delivered: counted and logged as the app returned, the answers cut for
#: their reader's rate or at the stop said 200 (review 7, R7-8).
ANSWER_LEAVING = "answer_leaving"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The key in a request's `scope["state"]` set when `Admission` leaves its body unread, a batch waiting for room:
#: (when it began, when it ended or None) in the event loop's time. The server's protocol reads no more of the body
#: meanwhile (uvicorn would buffer 64 KB) and does not count the wait against the body's deadlines
#: (`service.http_protocol`).
BODY_HELD = "body_held"
#: The key in a request's `scope["state"]` the server's protocol sets to a function: the bytes of the request its
#: client has sent that the app has not read yet (in the protocol's buffer and the kernel's). A batch let in from
#: the line is judged on what arrives after them (`Admission._let_in`).
BODY_WAITING = "body_waiting"
#: The key in a request's `scope["state"]` the server's protocol sets to a function that answers the request 503
#: and closes its connection, its body still arriving, and says whether it did (not when the rest of the body has
#: just arrived, or the connection is closing): `Admission` drops the slowest body this way to make room in
#: `max_pending_bytes` (`Admission._make_room`). Without it (another server), a body is never dropped.
DROP_BODY = "drop_body"
#: Statuses the app answers before any route's work (a missing operator token, an unknown path or method, a path
#: with a trailing slash among them, a body not sent as JSON): their access lines are sampled (`RefusalLog.answered`),
#: as the server's own refusals; the metrics count each.
SAMPLED_STATUSES = frozenset({401, 404, 405, 415})


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is short and safe to log, else a fresh one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = str(value.decode("latin-1"))
            if _INCOMING_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, *, access_log: bool, paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.paths = paths  # route templates without parameters: requests refused before routing keep their route
        self.sampled = RefusalLog(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        status = CLIENT_CLOSED_REQUEST  # unless a response starts: the app returns without one when the client left
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            _error_logger.exception(
                "unhandled error", extra={"request_id": request_id, "method": scope["method"], "path": scope["path"]}
            )
            if not response_started:
                reason = f"Internal error; quote request id {request_id} when reporting it"
                body, headers = raw_error(ProblemError(500, "internal_error", reason, field="server"), request_id)
                await send_with_id({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": body})
        finally:
            if scope["state"].get(CLIENT_GONE):
                status = CLIENT_CLOSED_REQUEST
            answered = scope["state"].get(ANSWERED_BY_SERVER)
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or (scope["path"] if scope["path"] in self.paths else "unmatched")
            done = functools.partial(self._record, scope, request_id, template, answered or status, elapsed, answered)
            leaving = scope["state"].get(ANSWER_LEAVING)
            if leaving is None or not leaving(done):
                done(None)

    def _record(
        self,
        scope: Scope,
        request_id: str,
        template: str,
        status: int,
        elapsed: float,
        answered: int | None,
        not_delivered: str | None,
    ) -> None:
        """Count the request and write its access line (unless the server answered it: its refusals are logged
        apart), once its answer has left; `not_delivered`: why it never will, then it is a 499."""
        if not_delivered is not None:
            status = CLIENT_CLOSED_REQUEST
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        self.metrics.observe(method, template, status, elapsed)
        if not self.access_log or answered:
            return
        line: dict[str, object] = {
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "route": template,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client": _client(scope),
        }
        if not_delivered is not None:
            line[NOT_DELIVERED_FIELD] = not_delivered
        if status in SAMPLED_STATUSES:
            self.sampled.answered(asyncio.get_running_loop(), status, template, line)
        else:
            logger.info("request", extra=line)


#: The longest `client` logged: an address and its port (IPv6's longest is 45 characters). A trusted proxy's
#: `X-Forwarded-For` is whatever it says, once 15,000 characters on every line (review 10, R10-7).
_CLIENT_CHARS = 64


def _client(scope: Scope) -> str | None:
    """`address:port`, or the address alone when a proxy named it (uvicorn gives it port 0)."""
    client = scope.get("client")
    if not client:
        return None
    text = f"{client[0]}:{client[1]}" if client[1] else str(client[0])
    return text[:_CLIENT_CHARS]


class Admission:
    """What a request passes before the app handles it: its body, whole, then a place in flight.

    Any request that announces a body (a `Content-Length` or a `Transfer-Encoding`, whatever its method) has it read
    here, up front: 413 once it passes `limit` (at once when its `Content-Length` says so), 503 when the bodies still
    arriving on all connections together would pass `max_pending_bytes`. A body costs what has arrived, so a client
    trickling one holds almost nothing, and not for long: the server's protocol (`service.http_protocol`) answers
    408 when a body falls behind `min_body_bytes_per_second`, pauses for `body_stall_seconds` or is not all there
    within `body_timeout_seconds`, and the read here ends. Then at most
    `max_in_flight` requests are handled at once (past it, 503 `overloaded`), except `always_admitted` paths (the
    probes: a busy task must not look dead to its load balancer) and `batch_paths`. Batches have their own budget,
    their bodies' bytes in flight (`max_batch_bytes`, the records they hold, known before they are parsed): 80
    connections of 1,000-record batches once took every place, every `/predict` got 503 and RSS grew 300 MB while
    parsed batches queued for a thread. A batch past it whose `Content-Length` says so waits, its body unread, up
    to `max_batch_wait_seconds` for room (`_room`; refused at once when that is 0), then 503; a chunked one is
    refused once its body is read. An explained batch (`explain=true`) is also refused (`explained_refusal`, given the
    most records its bytes can hold) before its body is read when its `Content-Length` does not fit the explained
    records' budget (`service.batch_admission`), and a chunked one once its body is read, before it is parsed:
    parsed first, refused explained batches held the event loop. Requests with `explain=true` on `explained_paths`
    (`/predict`) are not in flight either: they wait for a worker thread within the explained records' budget, and 64
    of them waiting once took every place and `/predict` got 503. Idle connections and bodies still arriving are not
    in flight.

    A body whose next bytes would pass `max_pending_bytes` first makes room (`_make_room`): the bodies arriving
    slowest over their last few seconds are dropped, as the answers of the slowest readers are
    (`service.http_protocol.UnsentAnswers`), so holding the budget costs a steady upload rate, not a burst.

    Not counted here: bodies arriving at `DROPPABLE_BODY_BYTES_PER_SECOND` or faster, on enough connections, to
    fill `max_pending_bytes` (with 2 MB bodies on 512 MiB, 14 of them: about 1 MB/s of upload), which only a rate
    limit in front of the service (a WAF) can tell from real traffic.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        max_pending_bytes: int,
        max_in_flight: int,
        always_admitted: frozenset[str],
        batch_paths: frozenset[str] = frozenset(),
        max_batch_bytes: int = 0,
        max_batch_wait_seconds: float = 0.0,
        explained_paths: frozenset[str] = frozenset(),
        explained_refusal: Callable[[int], ProblemError | None] = lambda body_bytes: None,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limit = limit
        self.max_pending_bytes = max_pending_bytes
        self.max_in_flight = max_in_flight
        self.always_admitted = always_admitted
        self.batch_paths = batch_paths
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_wait = max_batch_wait_seconds
        self.explained_paths = explained_paths
        self.explained_refusal = explained_refusal
        self.clock = clock
        self.pending_bytes = 0  # of bodies being read, all requests together
        self.in_flight = 0  # requests handled, batches and probes aside
        self.handled_batch_bytes = 0  # of batches read whole and handled
        self._reservations: set[_Reservation] = set()  # batches whose declared body is arriving
        self._waiting: dict[_Waiter, None] = {}  # batches waiting for room, their bodies unread: the oldest first
        self._clients_behind = _RecentClients()  # whose batches' bodies fell behind (`_fell_behind`)
        self._clients_served = _RecentClients()  # whose batches were handled (`_batch`)
        self._handled_clients: Counter[str | None] = Counter()  # batches being handled, by client (`_batch`)
        self._arriving: set[_Body] = set()  # bodies being read that the server's protocol can drop (`DROP_BODY`)
        self.refusals = RefusalLog(logging.getLogger("service.http"))
        if metrics is not None:
            metrics.batch_bytes.set_function(lambda: self.batch_bytes)
            metrics.batches_waiting.set_function(lambda: len(self._waiting))

    @property
    def batch_bytes(self) -> int:
        """The batches' bytes in flight: those read and handled, and what the batches arriving hold
        (`_Reservation.held`)."""
        now = self.clock()
        return self.handled_batch_bytes + sum(reservation.held(now) for reservation in self._reservations)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced, declared = _announced_body(scope)
        if announced and await self._refused_unread(scope, send, declared):
            return
        # A batch's declared bytes hold its place as its body arrives (while it keeps up, `_Reservation.held`):
        # counted only once read, 150 clients re-sending 2 MB batches all began reading theirs, passed the budget of
        # bodies arriving together, and each was refused part-way: none was served (review 6, R6-3). Now the others
        # wait for room, their bodies unread (`_room`).
        reservation = None
        body = _Body()
        try:
            if declared is not None and scope["path"] in self.batch_paths:
                reservation = _Reservation(declared, self.clock(), _address(scope), body=body)
                if not self._waiting and self.batch_bytes + declared <= self.max_batch_bytes:
                    self._reservations.add(reservation)  # (with batches waiting, it takes its turn: `_let_in`)
                elif not await self._room(scope, receive, send, reservation, body):
                    return  # refused, or the client went away
            if announced:
                if not await self._body(scope, receive, send, reservation, body):
                    return  # refused, or the client went away
                whole = body.joined()
                if len(whole) > _CHECKED_BODY_BYTES and await _client_gone(receive):  # it sent a large body and left
                    return  # (an abandoned batch would still be parsed, validated and queued: logged as 499)
                if declared is None and await self._explain_refused(scope, send, len(whole), close=False):
                    return
                receive = _replay(whole, receive)
            if scope["path"] in self.batch_paths:
                self._unreserve(reservation, let_in=False)  # its bytes are now counted as handled, if they fit
                await self._batch(scope, receive, send, body)
            elif scope["path"] in self.always_admitted or (scope["path"] in self.explained_paths and _explained(scope)):
                await self.app(scope, receive, send)
            else:
                await self._single(scope, receive, send)
        finally:
            self._unreserve(reservation)
            self._uncount(body)

    def _unreserve(self, reservation: _Reservation | None, *, let_in: bool = True) -> None:
        """`reservation` leaves the budget; its room goes to the batches waiting, unless it is handed over to the
        batch handled (`_batch`)."""
        if reservation is not None and reservation in self._reservations:
            self._reservations.discard(reservation)
            if let_in:
                self._let_in()

    def _uncount(self, body: _Body) -> None:
        """`body` is no longer arriving (whole, refused, or its client gone): out of `pending_bytes`."""
        self.pending_bytes -= body.counted
        body.counted = 0

    async def _room(self, scope: Scope, receive: Receive, send: Send, reservation: _Reservation, body: _Body) -> bool:
        """Wait for room for a batch past what is left of the batches' budget, its body unread past its first
        message; whether it was let in (its `reservation` then counts in the budget, all it declared while its body
        keeps coming, `_Reservation.held`); False when refused (503 after `max_batch_wait`, or at once without one)
        or its client went away.

        Refused at once, each 2 MB batch was read whole all the same, to be dropped (the answer lingers so that its
        client reads it, not a reset), and its eager client sent the next at once: 20 clients had the event loop
        read and drop 3.2 GB in 10 s, 17 KB at a time, the admitted batches' bodies arrived a twentieth as fast,
        and 10 were served where one client alone is served 25 (review 7, R7-5). Waiting, a batch costs its
        connection and its first message (counted in `pending_bytes`); the server's protocol reads no more of it
        and stops the body's clock (`BODY_HELD`; with uvicorn's 64 KB buffer filled too, 500 eager clients held
        RSS at 200 MB on 512 MiB settings). A flood is served as fast as the budget allows, each of its connections
        refused at most once per `max_batch_wait`. A head whose body does not come never gets in line (review 8,
        R8-1: bodiless heads held the budget); read up to a sixteenth of it (what R8-1's rule asks to hold all it
        declared), the waiting batches of 500 clients filled `max_pending_bytes` and the bodies let in were
        refused part-way: none was served. A batch whose client went away, or that the server's protocol answered
        (shed past `max_connections`, or the server stopping), leaves the line within `ROOM_RECHECK_SECONDS`.
        Who is let in first when room frees: `_let_in`."""
        if self.max_batch_wait <= 0:
            await self._refuse(scope, send, 503, "overloaded", OVERLOADED)
            return False
        if not await self._body(scope, receive, send, reservation, body, enough=1):
            return False
        return await self._wait_for_room(scope, send, reservation, body)

    async def _wait_for_room(self, scope: Scope, send: Send, reservation: _Reservation, body: _Body) -> bool:
        """Wait in the line for room (`_room`), `body` read as far as it is."""
        waiter = _Waiter(reservation, anyio.Event(), scope["state"].get(BODY_WAITING, _nothing_waiting))
        self._waiting[waiter] = None
        self._let_in()  # the room some other client's batch left, if it is this one's turn
        loop = asyncio.get_running_loop()
        scope["state"][BODY_HELD] = (loop.time(), None)
        try:
            with anyio.move_on_after(self.max_batch_wait):
                while not waiter.let_in.is_set() and not _ended(scope):
                    oldest = next(iter(self._waiting)) is waiter
                    if oldest:  # the oldest looks again: a batch whose body fell behind holds nothing
                        self._let_in()
                    with anyio.move_on_after(FELL_BEHIND_RECHECK_SECONDS if oldest else ROOM_RECHECK_SECONDS):
                        await waiter.let_in.wait()
        finally:
            self._waiting.pop(waiter, None)
            scope["state"][BODY_HELD] = (scope["state"][BODY_HELD][0], loop.time())
        if waiter.let_in.is_set():
            return True
        self._uncount(body)
        if not _ended(scope):
            await self._refuse(scope, send, 503, "overloaded", OVERLOADED, close=not body.whole)
        return False

    def _let_in(self) -> None:
        """Let in the waiting batches that fit what is left of the budget (a smaller one passes a larger one that
        does not fit: a 100-record batch is not held behind 2 MB ones), in this order: first the batches of the
        clients (addresses) holding the fewest places now (batches arriving or being handled); of those, first the
        batches whose whole body is here (read, or sent and waiting in the server's buffers, `_Waiter.sent`: such a
        batch cannot stall), the oldest first; then, of the others, those of clients whose batches' bodies fell
        behind lately go last; first those whose clients had a batch as large or larger handled lately; then those
        whose bodies are coming (`_Waiter.sent`); then the oldest.

        Let in oldest first, heads whose bodies stopped after 16-48 KiB, 10-40 new connections a second (~0.5 MB/s)
        from one address or 30, each held its room in turn, and 2 MB batches waited 7-10 s behind them (reviews 12
        and 13, F1); so did bursts of 100 such heads every 5 s from 250 addresses. A let-in batch is judged on the
        bytes that arrive after what its client had sent while it waited (`BODY_WAITING`): those came at once and
        counted as keeping up, so a head of 256 KiB held 2 MiB for a quarter of a second. Any batch handled lately
        once put its client first: one 1-record batch from each of 250 addresses before each head did, and batches
        waited 3-7 s behind those heads, longer than with no order (review 14, F1); now an attacker must have had
        as many bytes handled as each head announces. Not told apart: a client that shares its address with such
        an attacker (behind one NAT), whose batches go after the others' while the attacker's fall behind; an
        attacker whose many addresses each had a batch as large handled lately; and a client's first batch larger
        than the server's buffers hold, which waits behind the heads of a burst that came before it. Its smaller
        batches waited there too (1 and 100 records: 6-7 s, review 15), also from an address marked behind: a body
        all here now goes first. While 200 connections from 20 addresses sent 80-record batches whole, other
        clients' 100- and 1,000-record batches waited out their 10 s (review 17, N6): the flood's batches went first
        as whole (and as known), its clients held no place as only batches arriving were counted, and each let in
        as soon as 80 records' room freed, so that a larger batch never fitted. Now the batches being handled count
        too, and a batch first in this order that does not fit is passed by smaller ones for
        `ROOM_HELD_AFTER_SECONDS`, then only by those of clients holding no place (held from everyone, the stalled
        heads of a burst held it in turn: new clients' 2 MB batches p90 4.5 s, 0.4 s without; and 1-record batches
        waited up to 3 s behind a 100-record one while two 2 MB uploads at 560 KB/s held the budget, review 18).
        Not counted: a flood from as many addresses as its batches, each holding none when its next one waits."""
        now = self.clock()
        room = self.max_batch_bytes - self.batch_bytes
        if all(waiter.reservation.declared > room for waiter in self._waiting):
            return  # (nothing fits: the order is not worth a look into every waiting socket, `_Waiter.sent`)
        holding = Counter(reservation.client for reservation in self._reservations if reservation.held(now))
        holding.update(+self._handled_clients)
        behind = self._fell_behind(now)
        self._clients_served.forget(now)
        order = {waiter: (*waiter.sent(), age) for age, waiter in enumerate(self._waiting)}

        def turn(waiter: _Waiter) -> tuple[int, bool, bool, bool, bool, int]:
            client = waiter.reservation.client
            whole, coming, age = order[waiter]
            if whole:  # it cannot stall: who its client is matters only for the places it holds
                return holding[client], False, False, False, False, age
            known = self._clients_served.largest(client) >= waiter.reservation.declared
            return holding[client], True, client in behind, not known, not coming, age

        while fitting := [waiter for waiter in order if waiter.reservation.declared <= room]:
            waiter = min(fitting, key=turn)
            # the first in line does not fit when it is not `waiter`; past its second, only clients holding no place
            # pass it: the room that frees is held for it
            first = min(order, key=turn) if holding[waiter.reservation.client] else waiter
            if first is not waiter and now - first.reservation.since >= ROOM_HELD_AFTER_SECONDS:
                return
            reservation = waiter.reservation
            room -= reservation.declared
            holding[reservation.client] += 1
            reservation.since = now  # its rate is judged from now: its body was held unread
            if reservation.body is not None:
                reservation.body.begin(now)  # (so is its recent rate, `_Reservation.stalled`)
            reservation.begun_at = min(reservation.declared, reservation.arrived + waiter.body_waiting())
            self._reservations.add(reservation)
            del self._waiting[waiter], order[waiter]
            waiter.let_in.set()

    def _fell_behind(self, now: float) -> _RecentClients:
        """The clients whose batches' bodies fell behind (`_Reservation.fell_behind`) lately."""
        for reservation in self._reservations:
            if not reservation.noted and reservation.fell_behind(now):
                reservation.noted = True
                self._clients_behind.add(reservation.client, now)
        self._clients_behind.forget(now)
        return self._clients_behind

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        code: str,
        reason: str,
        *,
        close: bool = True,
    ) -> None:
        """Answer without the app (a 503 with `Retry-After: 1`); `close` when the body may be left unread on the
        connection (the server's protocol then lingers, as after its own errors, so that the client reads the
        answer rather than a reset).
        Counted with its status, logged sampled as the protocol's refusals (`refused`, then `refused_more`), not an
        access line each: 413s by Content-Length alone and 503s wrote 3.3 MB of log in 10 s (review 6, R6-5)."""
        request_id = request_id_of(scope)
        scope["state"][ANSWERED_BY_SERVER] = status
        details = {"request_id": request_id, "reason": reason, "client": _client(scope)}
        self.refusals.refused(asyncio.get_running_loop(), status, code, details)
        body, content = raw_error(ProblemError(status, code, reason), request_id)
        extra = [(b"connection", b"close")] if close else []
        if status == 503:
            extra.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": [*content, *extra]})
        await send({"type": "http.response.body", "body": body})

    async def _refused_unread(self, scope: Scope, send: Send, declared: int | None) -> bool:
        """Whether the request was refused by its declared length alone: past the body limit, or an explained
        batch past the explained records' budget."""
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send, 413, "body_too_large", self._too_large(f"declared {declared:,} bytes"))
            return True
        return declared is not None and await self._explain_refused(scope, send, declared, close=True)

    async def _explain_refused(self, scope: Scope, send: Send, body_bytes: int, *, close: bool) -> bool:
        """Whether an explained batch was refused, before it is parsed, by the most records `body_bytes` can hold
        (the route counts its records once parsed); `close` when its body is left unread."""
        if scope["path"] not in self.batch_paths or not _explained(scope):
            return False
        refusal = self.explained_refusal(body_bytes)
        if refusal is None:
            return False
        await self._refuse(scope, send, 503, refusal.code, refusal.reason, close=close)
        return True

    async def _single(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request that is not a batch, handled within `max_in_flight` until its answer starts: what follows is
        the client's reading, which a slow one makes last. Counted until the app returned, 11 slow downloads of the
        docs' 1.7 MB script (a streamed `FileResponse`) held every place, and `/predict` answered 503 (review 7,
        R7-4); an answer waiting for its client is bounded by the server's protocol (`max_unsent_answer_bytes`,
        `min_send_bytes_per_second`)."""
        if self.in_flight >= self.max_in_flight:
            await self._refuse(scope, send, 503, "overloaded", OVERLOADED, close=False)
            return
        self.in_flight += 1
        counted = True

        async def send_and_release(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                self.in_flight -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            if counted:
                self.in_flight -= 1

    async def _batch(self, scope: Scope, receive: Receive, send: Send, body: _Body) -> None:
        """A batch, its `body` read whole, handled within `max_batch_bytes` of batches in flight (its place
        reserved from its head when its body kept up, `_Reservation`; else taken now if there is room, or waited
        for, `_whole_batch_room`)."""
        if self.batch_bytes + body.size > self.max_batch_bytes and not await self._whole_batch_room(scope, send, body):
            return
        client = _address(scope)
        self.handled_batch_bytes += body.size
        self._handled_clients[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.handled_batch_bytes -= body.size
            self._handled_clients[client] -= 1
            if not self._handled_clients[client]:  # (kept, every address once seen stayed in it)
                del self._handled_clients[client]
            self._clients_served.add(client, self.clock(), body.size)
            self._let_in()

    async def _whole_batch_room(self, scope: Scope, send: Send, body: _Body) -> bool:
        """Wait for room for a batch read whole that finds none (its reservation lost while its body arrived, or
        never held: chunked, or too slow), in the line with the others, its bytes counted among the bodies arriving
        meanwhile; whether it was let in (its room then held for it, as it is handled at once). Refused once read,
        2 MB batches whose bodies fell behind for a moment on a busy event loop were refused 3-9 times in 100 while
        heads whose bodies stopped were let in in their turn (review 12's F1)."""
        if self.max_batch_wait <= 0 or self.pending_bytes + body.size > self.max_pending_bytes:
            self._let_in()  # the room its reservation held, if any
            await self._refuse(scope, send, 503, "overloaded", OVERLOADED, close=False)
            return False
        reservation = _Reservation(body.size, self.clock(), _address(scope), arrived=body.size)
        body.counted = body.size
        self.pending_bytes += body.size
        try:
            return await self._wait_for_room(scope, send, reservation, body)
        finally:
            self._unreserve(reservation, let_in=False)  # its room is now its bytes handled
            self._uncount(body)

    async def _body(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        reservation: _Reservation | None,
        body: _Body,
        *,
        enough: int | None = None,
    ) -> bool:
        """Read `body` on until it is whole (or has `enough` bytes); False when it was refused (answered here) or
        the client went away (or ran out of time)."""
        body.drop = scope["state"].get(DROP_BODY)
        try:
            await self._read(receive, reservation, body, enough)
        except _BodyTooLargeError:
            self._uncount(body)
            await self._refuse(scope, send, 413, "body_too_large", self._too_large(f"more than {self.limit:,} bytes"))
            return False
        except _OverloadedError:
            self._uncount(body)
            await self._refuse(scope, send, 503, "overloaded", OVERLOADED)
            return False
        if body.whole or body.gone:
            self._uncount(body)
        return not body.gone

    async def _read(self, receive: Receive, reservation: _Reservation | None, body: _Body, enough: int | None) -> None:
        """Read `body` on until it is whole, its client gone, or (`enough`) that many bytes arrived; counted in
        `pending_bytes` while it arrives (and in its batch's `reservation`), and droppable meanwhile
        (`_make_room`)."""
        body.begin(self.clock())
        if body.drop is not None:
            self._arriving.add(body)
        try:
            while not body.whole and (enough is None or body.size < enough):
                message = await receive()
                if message["type"] == "http.disconnect":
                    body.gone = True
                    return
                chunk = message.get("body", b"")
                now = self.clock()
                body.roll(now)  # before its size grows: this chunk is recent
                body.chunks.append(chunk)
                body.size += len(chunk)
                body.counted += len(chunk)
                self.pending_bytes += len(chunk)
                if reservation is not None:
                    reservation.arrive(body.size, now)
                if body.size > self.limit:
                    raise _BodyTooLargeError
                if self.pending_bytes > self.max_pending_bytes and not self._make_room(body, now):
                    raise _OverloadedError
                body.whole = not message.get("more_body", False)
        finally:
            self._arriving.discard(body)

    def _make_room(self, asking: _Body, now: float) -> bool:
        """Drop the bodies arriving slowest over their last second or two (`_Body.recent_rate`: from their second
        window on), among those slower there than `DROPPABLE_BODY_BYTES_PER_SECOND`, but `asking`, until
        `pending_bytes` is back within `max_pending_bytes`; whether it is. None is dropped when they all would not
        make the room.

        Review 10, R10-1 (review 11, R11-2): 14 connections sending 2 MB batches nearly whole then a byte every few
        seconds kept `min_body_bytes_per_second`'s average and `body_stall_seconds`, and held the whole budget of
        the 512 MiB task (27 MiB) for `body_timeout_seconds`, every other body that did not fit 503, for ~250 KB/s
        of upload. Judged on its recent bytes, such a body may be dropped two seconds after its burst; to keep the
        budget, each of its bodies must bring 64 KB/s (a 2 MB one then arrives within 32 s), about 1 MB/s for 14,
        or a new burst every two seconds. An honest upload at 100 KB/s is never dropped; a slower one (a body a
        slow link trickles) may be, while the budget is full, where it would have got 503 at its next bytes."""
        needed = self.pending_bytes - self.max_pending_bytes
        droppable = sorted(
            (rate, id(body), body)
            for body in self._arriving
            if body is not asking
            and (rate := body.recent_rate(now)) is not None
            and rate < DROPPABLE_BODY_BYTES_PER_SECOND
        )
        victims: list[_Body] = []
        for _, _, body in droppable:
            if needed <= 0:
                break
            victims.append(body)
            needed -= body.counted
        if needed > 0:
            return False
        for body in victims:
            if body.drop is not None and body.drop():
                self._arriving.discard(body)
                self._uncount(body)
        return self.pending_bytes <= self.max_pending_bytes

    def _too_large(self, seen: str) -> str:
        return f"Request body too large ({seen}); the limit is {self.limit:,} bytes. Send fewer records per request."


#: The reason of a 503 over the service's limits; the client should retry, on another instance if it can.
OVERLOADED = "The service is answering as many requests as it can; retry in a second"
#: How long a batch's body may take to show its rate (it starts with the head).
RESERVATION_GRACE_SECONDS = 0.5
#: How far behind `BATCH_RESERVED_BYTES_PER_SECOND` a batch let in from the line may be and keep its place: its
#: client sent its body while it waited, so an eager one's arrives at once (16 KB: 31 ms at that rate).
LET_IN_ALLOWANCE_BYTES = 16 * 1024


#: How often a batch waiting for room looks whether its request has ended (`_ended`), and the oldest whether there
#: is room without being woken (a trickled batch's reservation shrinks with time, `_Reservation.held`; batches
#: leaving wake the waiting ones at once).
ROOM_RECHECK_SECONDS = 0.5
#: How often the oldest batch waiting looks for room: a batch let in whose body stops holds nothing 31 ms later
#: (`LET_IN_ALLOWANCE_BYTES`), and looked for every `ROOM_RECHECK_SECONDS`, 100 heads of 48 KiB every 5 s each
#: held its room half a second in turn, and batches waited 8 s behind them (review 13).
FELL_BEHIND_RECHECK_SECONDS = 0.05
#: How long the batch first in the line's order may be passed by smaller ones that fit when it does not
#: (`Admission._let_in`); then the room that frees is held for it.
ROOM_HELD_AFTER_SECONDS = 1.0
#: How long the line remembers a client (an address) whose batch's body fell behind (it goes after the others),
#: or whose batch was handled (it goes first with batches no larger).
CLIENT_MEMORY_SECONDS = 10.0


@dataclass(eq=False, slots=True)  # hashed by identity: kept in a set
class _Reservation:
    """A batch whose body is arriving: what its head declared, when, and what has arrived."""

    declared: int
    since: float
    client: str | None  # its address (`_address`)
    arrived: int = 0
    noted: bool = False  # its falling behind counted against its client (`Admission._fell_behind`)
    begun_at: int | None = None  # the bytes sent when it was let in from the line (`Admission._let_in`)
    body: _Body | None = None  # as read, with its recent rate (`stalled`)

    def held(self, now: float) -> int:
        """The bytes it holds in the batches' budget at `now`: while its body keeps up (`fell_behind`),
        `RESERVED_PER_BYTE_ARRIVED` for each byte arrived, up to all it declared; all it declared once let in from
        the line (`begun_at`) or whole; else none (what has arrived counts among the bodies arriving,
        `max_pending_bytes`). Reserved whatever its rate, two heads announcing 2 MiB and sending 1.1 KB/s held the
        whole budget and every batch got 503 (review 7, R7-3); reserved whole for half a second from the head, ten
        heads a second with no body did (review 8, R8-1). Holding what its first message was worth, a batch let in
        from the line left room for the next one waiting, which was let in too and refused once read."""
        if self.fell_behind(now) or self.stalled(now):
            return 0
        if self.begun_at is not None or self.arrived >= self.declared:
            return self.declared
        return min(self.declared, self.arrived * RESERVED_PER_BYTE_ARRIVED)

    def fell_behind(self, now: float) -> bool:
        """Whether its body, not whole, stopped keeping up with `BATCH_RESERVED_BYTES_PER_SECOND`: from its head
        after `RESERVATION_GRACE_SECONDS`, or, let in from the line, from when what its client had sent as it
        waited was read (`begun_at`), `LET_IN_ALLOWANCE_BYTES` behind at most. Reserved at 64 KB/s, two bodies at
        70 KB/s held the budget for 30 s (reviews 8 and 9, R8-3, R9-3); let in and holding all it declared for the
        half-second grace, heads with one byte of body, a few a second, kept the line full and the budget held
        (review 11, R11-1); counting what had waited as keeping up, heads of 256 KiB held all they declared for a
        quarter of a second each (review 12, F1)."""
        if self.arrived >= self.declared:
            return False
        if self.begun_at is not None:
            behind = (now - self.since) * BATCH_RESERVED_BYTES_PER_SECOND - (self.arrived - self.begun_at)
            return self.arrived >= self.begun_at and behind > LET_IN_ALLOWANCE_BYTES
        late = now - self.since - RESERVATION_GRACE_SECONDS
        return late > 0 and self.arrived < late * BATCH_RESERVED_BYTES_PER_SECOND

    def stalled(self, now: float) -> bool:
        """Whether its body, not whole, brought less than `BATCH_RESERVED_BYTES_PER_SECOND` over its last second
        or two (`_Body.recent_rate`, from its second window on). Sent nearly whole at once, then a byte every few
        seconds, a 2 MiB batch kept its average since its head (`fell_behind`) and held all it declared for 4 s
        after each burst: 14 such connections on `/predict/batch` kept two of them in the 4 MiB budget, and honest
        batches waited 1.8-2.4 s for room (review 15, `tests/benchmarks/trickled_bodies.py`)."""
        if self.body is None or self.arrived >= self.declared:
            return False
        rate = self.body.recent_rate(now)
        return rate is not None and rate < BATCH_RESERVED_BYTES_PER_SECOND

    def arrive(self, arrived: int, now: float) -> None:
        """Its body has `arrived` bytes at `now`; once what had waited is read, its rate is judged from then."""
        if self.begun_at is not None and self.arrived < self.begun_at <= arrived:
            self.since = now
        self.arrived = arrived


class _RecentClients:
    """Clients (addresses) seen lately, each with when it was last and the largest batch it was seen with since
    (bytes, when that counts), the oldest first; forgotten after `CLIENT_MEMORY_SECONDS` (so as many as a flood can
    show in that time at most)."""

    def __init__(self) -> None:
        self._last: dict[str | None, tuple[float, int]] = {}

    def __contains__(self, client: str | None) -> bool:
        return client in self._last

    def largest(self, client: str | None) -> int:
        return self._last.get(client, (0.0, 0))[1]

    def add(self, client: str | None, now: float, size: int = 0) -> None:
        size = max(size, self.largest(client))
        self._last.pop(client, None)
        self._last[client] = (now, size)

    def forget(self, now: float) -> None:
        while self._last and next(iter(self._last.values()))[0] < now - CLIENT_MEMORY_SECONDS:
            del self._last[next(iter(self._last))]


@dataclass(eq=False, slots=True)  # hashed by identity: kept in a set
class _Body:
    """A request's body as read so far, and how fast it arrived lately: the bytes since the older of two marks, at
    least `BODY_RATE_WINDOW_SECONDS` apart (O(1) whatever its chunks; a list of its arrivals would grow with them)."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    counted: int = 0  # of `size`, in `Admission.pending_bytes`
    whole: bool = False
    gone: bool = False  # its client went away (or ran out of time)
    drop: Callable[[], bool] | None = None  # `DROP_BODY`, from the server's protocol
    since: float = 0.0  # when it began to be read (again, once let in from the line)
    mark: tuple[float, int] = (0.0, 0)  # the newer mark: (when, its size then)
    older: tuple[float, int] = (0.0, 0)

    def joined(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def begin(self, now: float) -> None:
        """It is read from `now`: what it sent while a batch waited in line came at once, not at its rate."""
        self.since = now
        self.mark = self.older = (now, self.size)

    def roll(self, now: float) -> None:
        """Move the marks on: a window after the newer one, it becomes the older, but at the end of its first window
        (what came then is not judged: a burst); two windows after it, nothing came within the last one (a byte
        since would have moved the marks)."""
        window = BODY_RATE_WINDOW_SECONDS
        passed = now - self.mark[0]
        if passed >= 2 * window:
            self.mark, self.older = (now, self.size), (now - window, self.size)
        elif passed >= window and self.mark[0] == self.since:
            self.mark = self.older = (now, self.size)
        elif passed >= window:
            self.older, self.mark = self.mark, (now, self.size)

    def recent_rate(self, now: float) -> float | None:
        """Bytes a second it brought over its last `BODY_RATE_WINDOW_SECONDS` to twice that, past its first window;
        None before (about twice the window from its start). A body sent nearly whole then trickled keeps a high
        average since its head, not here; judged on windows that may hold its burst, such a body stayed fast for
        2-4 s after each burst, and re-sending them kept the budget full (review 10, R10-1)."""
        self.roll(now)
        at, size = self.older
        if now - at < BODY_RATE_WINDOW_SECONDS:
            return None
        return (self.size - size) / (now - at)


@dataclass(eq=False, slots=True)  # hashed by identity: kept in a dict
class _Waiter:
    """A batch waiting for room in the batches' budget, and the event that lets it in."""

    reservation: _Reservation
    let_in: anyio.Event
    body_waiting: Callable[[], int]  # `BODY_WAITING`

    def sent(self) -> tuple[bool, bool]:
        """What its client has sent past what was read (`BODY_WAITING`, one look into its socket): the whole rest of
        its body (let in, it is read at once and cannot fall behind), and whether its body is coming:
        `LET_IN_ALLOWANCE_BYTES` or the rest of it (an eager client's fills the kernel's buffers as it waits; a
        stalled head's does not)."""
        rest = self.reservation.declared - self.reservation.arrived
        waiting = self.body_waiting()
        return waiting >= rest, waiting >= min(LET_IN_ALLOWANCE_BYTES, rest)


class _BodyTooLargeError(Exception):
    """The body passed the limit while it was read."""


class _OverloadedError(Exception):
    """The bodies being read passed their budget."""


#: Bodies larger than this are dropped unparsed when their client has already gone (parsing 1,000 records costs
#: tens of milliseconds of the event loop; the check, about 10 us, is not worth it on a single record).
_CHECKED_BODY_BYTES = 64 * 1024


async def _client_gone(receive: Receive) -> bool:
    """Whether the client has gone (as `Request.is_disconnected`), two turns of the event loop after its body: one
    to read what came after the body (a client that sends and closes at once: its FIN), one to run this after it."""
    await anyio.sleep(0)
    await anyio.sleep(0)
    message: Message = {}
    with anyio.CancelScope() as scope:
        scope.cancel()
        message = await receive()
    return message.get("type") == "http.disconnect"


def _nothing_waiting() -> int:
    """`BODY_WAITING` where no server's protocol tells it (an app called in process)."""
    return 0


def _address(scope: Scope) -> str | None:
    """The client's address, without its port (a client opens many connections)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def _ended(scope: Scope) -> bool:
    """Whether the request ended while its body was left unread: its client went away, or the server's protocol
    answered it (`ANSWERED_BY_SERVER`, `CLIENT_GONE`)."""
    state = scope["state"]
    return bool(state.get(ANSWERED_BY_SERVER) or state.get(CLIENT_GONE))


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app: the body read up front, then the connection's own messages (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


#: The query values FastAPI (pydantic) reads as a true bool.
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})


def _explained(scope: Scope) -> bool:
    return explains(scope.get("query_string", b""))


def explains(query: bytes) -> bool:
    """Whether a request's query asks for explanations (`explain`, the last one, read as FastAPI reads a bool)."""
    values = [value for name, value in parse_qsl(query.decode("latin-1")) if name == "explain"]
    return bool(values) and values[-1].lower() in _TRUE


def _announced_body(scope: Scope) -> tuple[bool, int | None]:
    """Whether the request announces a body, and its declared length (None: not declared, or chunked)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return True, None
            return declared > 0, declared
        if name == b"transfer-encoding":
            return True, None
    return False, None
