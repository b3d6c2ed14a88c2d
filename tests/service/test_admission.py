"""`service.middleware.Admission` in process: what counts as work in flight, and what bodies still arriving cost.

Issue 21: uvicorn's `--limit-concurrency` counted open connections, so idle ones and ones trickling a body refused
everyone else. Here a request is in flight from the moment its body has arrived until it is answered; bodies
still arriving count only their bytes, against a budget of all of them together. The ASGI calls are driven by hand
so each state is reached exactly, not by timing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from service.api import create_app
from service.middleware import ANSWERED_BY_SERVER, BODY_WAITING, DROP_BODY, Admission
from service.settings import Settings

Message = dict[str, Any]


class _Handler:
    """An app that answers once released; records what it was given."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _scope(path: str = "/predict", headers: list[tuple[bytes, bytes]] | None = None) -> Message:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [], "state": {}}


class _Client:
    """One request: its body is fed message by message (none announced: one empty message); the answer's status
    and body are recorded."""

    def __init__(self, middleware: Admission, scope: Message, *, droppable: bool = False) -> None:
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self.scope = scope
        self.unread = 0  # bytes sent and not read, as the server's protocol tells them (`BODY_WAITING`)
        self.dropped = False  # the app dropped its body (`DROP_BODY`), as the server's protocol would be told to
        scope["state"][BODY_WAITING] = lambda: self.unread
        if droppable:
            scope["state"][DROP_BODY] = self._drop
        if not scope["headers"]:
            self.body(b"", more=False)
        self.task = asyncio.ensure_future(middleware(scope, self._receive, self._send))

    async def _receive(self) -> Message:
        message = await self.incoming.get()
        self.unread -= len(message.get("body", b""))
        return message

    async def _send(self, message: Message) -> None:
        self.sent.append(message)

    def _drop(self) -> bool:
        """As the server's protocol: its own 503, and the app waiting for the body sees a disconnect."""
        self.dropped = True
        self.incoming.put_nowait({"type": "http.disconnect"})
        return True

    def body(self, chunk: bytes, *, more: bool) -> None:
        self.unread += len(chunk)
        self.incoming.put_nowait({"type": "http.request", "body": chunk, "more_body": more})

    @property
    def status(self) -> int | None:
        return self.sent[0]["status"] if self.sent else None

    def error(self) -> str:
        return str(json.loads(self.sent[1]["body"])["error"])


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


async def _turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def _admission(app: Any, **limits: Any) -> Admission:
    defaults: dict[str, Any] = {
        "limit": 10_000,
        "max_pending_bytes": 100_000,
        "max_in_flight": 2,
        "always_admitted": frozenset({"/health"}),
    }
    return Admission(app, **{**defaults, **limits})


def test_requests_past_the_limit_in_flight_are_refused_and_probes_pass() -> None:
    async def scenario() -> None:
        handler = _Handler()
        admission = _admission(handler)
        first, second = _Client(admission, _scope()), _Client(admission, _scope())
        await _turns()
        assert admission.in_flight == 2
        third = _Client(admission, _scope())
        probe = _Client(admission, _scope("/health"))
        await _turns()
        assert third.status == 503
        assert third.error() == "overloaded"
        assert (b"retry-after", b"1") in third.sent[0]["headers"]
        assert probe.status is None  # admitted: waiting for its handler like the others
        handler.release.set()
        await asyncio.gather(first.task, second.task, probe.task)
        assert (first.status, second.status, probe.status) == (200, 200, 200)
        assert admission.in_flight == 0

    _run(scenario)


def test_explained_predictions_are_not_counted_in_flight() -> None:
    """Review 4, R4-7: `/predict?explain=true` now waits for a worker thread within the explained records' budget;
    counted in flight too, 64 of them waiting took every place and plain `/predict` got 503. They are admitted as
    the probes are; `explain=false` is a plain request."""

    async def scenario() -> None:
        handler = _Handler()
        admission = _admission(handler, explained_paths=frozenset({"/predict"}))
        held = [_Client(admission, _scope()) for _ in range(2)]
        await _turns()
        explained = _Client(admission, {**_scope(), "query_string": b"explain=True"})
        plain = _Client(admission, {**_scope(), "query_string": b"explain=false"})
        await _turns()
        assert explained.status is None  # admitted: waiting for its handler
        assert plain.status == 503
        handler.release.set()
        await asyncio.gather(explained.task, *(client.task for client in held))
        assert explained.status == 200

    _run(scenario)


def test_a_body_still_arriving_is_not_in_flight() -> None:
    """Issue 21: 128 connections trickling a body held every place; now they hold none until their body is in."""

    async def scenario() -> None:
        handler = _Handler()
        handler.release.set()
        admission = _admission(handler, max_in_flight=1)
        headers = [(b"content-length", b"100")]
        trickling = [_Client(admission, _scope(headers=headers)) for _ in range(50)]
        for client in trickling:
            client.body(b"{", more=True)
        await _turns()
        assert admission.in_flight == 0
        assert admission.pending_bytes == 50
        answered = _Client(admission, _scope())
        await answered.task
        assert answered.status == 200
        for client in trickling:
            client.task.cancel()

    _run(scenario)


def test_a_get_that_announces_a_body_has_it_read_first() -> None:
    async def scenario() -> None:
        handler = _Handler()
        handler.release.set()
        admission = _admission(handler)
        scope = {**_scope("/health", [(b"content-length", b"4")]), "method": "GET"}
        client = _Client(admission, scope)
        client.body(b"ab", more=True)
        await _turns()
        assert handler.bodies == []  # the app has not seen the request yet
        client.body(b"cd", more=False)
        await client.task
        assert handler.bodies == [b"abcd"]

    _run(scenario)


def test_bodies_arriving_together_have_a_budget() -> None:
    """Bodies cost what has arrived: past `max_pending_bytes` on all connections, 503, and the bytes are freed."""

    async def scenario() -> None:
        handler = _Handler()
        handler.release.set()
        admission = _admission(handler, max_pending_bytes=1_000)
        first, second = (_Client(admission, _scope(headers=[(b"transfer-encoding", b"chunked")])) for _ in range(2))
        first.body(b"x" * 600, more=True)
        await _turns()
        second.body(b"x" * 600, more=True)
        await second.task
        assert second.status == 503
        assert second.error() == "overloaded"
        assert admission.pending_bytes == 600
        first.body(b"x" * 10, more=False)
        await first.task
        assert first.status == 200
        assert admission.pending_bytes == 0

    _run(scenario)


def test_a_body_over_the_limit_frees_its_bytes() -> None:
    async def scenario() -> None:
        admission = _admission(_Handler(), limit=100)
        client = _Client(admission, _scope(headers=[(b"transfer-encoding", b"chunked")]))
        client.body(b"x" * 60, more=True)
        client.body(b"x" * 60, more=True)
        await client.task
        assert (client.status, client.error()) == (413, "body_too_large")
        assert admission.pending_bytes == 0
        assert admission.in_flight == 0

    _run(scenario)


def test_batches_have_their_own_budget_of_bytes_in_flight() -> None:
    """Issue 21, third review (5): batches took every place in flight and `/predict` got 503. Batches now count
    their bytes against `max_batch_bytes`, apart from the single requests; one whose Content-Length passes what is
    left is refused before its body is read, a chunked one once it has arrived."""

    async def scenario() -> None:
        handler = _Handler()
        admission = _admission(handler, batch_paths=frozenset({"/batch"}), max_batch_bytes=1_000, max_in_flight=1)
        held = [_Client(admission, _scope("/batch", [(b"content-length", b"400")])) for _ in range(2)]
        for client in held:
            client.body(b"x" * 400, more=False)
        await _turns()
        assert (admission.batch_bytes, admission.in_flight) == (800, 0)
        declared = _Client(admission, _scope("/batch", [(b"content-length", b"201")]))
        await declared.task
        assert (declared.status, declared.error()) == (503, "overloaded")
        assert handler.bodies == [b"x" * 400] * 2  # the refused body was never read
        chunked = _Client(admission, _scope("/batch", [(b"transfer-encoding", b"chunked")]))
        chunked.body(b"x" * 201, more=False)
        await chunked.task
        assert (chunked.status, chunked.error()) == (503, "overloaded")
        single = _Client(admission, _scope())
        await _turns()
        assert admission.in_flight == 1  # the single request has its room
        handler.release.set()
        await asyncio.gather(single.task, *(client.task for client in held))
        assert [client.status for client in [single, *held]] == [200, 200, 200]
        assert (admission.batch_bytes, admission.in_flight) == (0, 0)

    _run(scenario)


def test_the_app_admits_the_metrics_like_the_probes() -> None:
    """Review 7, R7-4: with every place in flight taken, `/metrics` answered 503 too, and the operator could not
    see why the service refused requests."""
    app = create_app(Settings(model_uri="/nonexistent"))
    (admission,) = [entry for entry in app.user_middleware if entry.cls is Admission]
    assert {"/health", "/ready", "/metrics"} <= admission.kwargs["always_admitted"]


class _Clock:
    """Time as the test sets it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _batch_admission(clock: _Clock, handler: _Handler, wait: float = 0.0) -> Admission:
    budget = {"limit": 300_000, "max_pending_bytes": 1_000_000, "max_batch_bytes": 400_000}
    return _admission(handler, batch_paths=frozenset({"/batch"}), clock=clock, max_batch_wait_seconds=wait, **budget)


def _batch(admission: Admission, declared: int, client: str = "192.0.2.1") -> _Client:
    scope = _scope("/batch", [(b"content-length", str(declared).encode())])
    return _Client(admission, {**scope, "client": (client, 40000)})


async def _begun(admission: Admission, client: str = "192.0.2.1", declared: int = 250_000) -> _Client:
    """A batch from `client` whose body has begun: its first 20,000 bytes (16 bytes reserved for each: all it
    declared, while it keeps up), the rest to come."""
    batch = _batch(admission, declared, client)
    batch.body(b"x" * 20_000, more=True)
    await _turns()
    return batch


def test_a_batch_whose_body_keeps_up_holds_its_declared_bytes() -> None:
    """Review 6, R6-3: the declared bytes of a batch arriving at a good rate hold its place: the next batch that
    does not fit beside them is refused at its head, its body not read."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler)
        arriving = _batch(admission, 200_000)
        arriving.body(b"x" * 100_000, more=True)
        await _turns()
        clock.now = 0.6  # 100 KB in 0.6 s (0.1 s past the grace): it keeps up
        refused = _batch(admission, 250_000)
        await refused.task
        assert (refused.status, refused.error()) == (503, "overloaded")
        assert admission.batch_bytes == 200_000
        arriving.body(b"x" * 100_000, more=False)
        handler.release.set()
        await arriving.task
        assert (arriving.status, admission.batch_bytes) == (200, 0)

    _run(scenario)


def test_a_batch_whose_body_falls_behind_holds_no_place_until_it_has_arrived() -> None:
    """Review 7, R7-3: declared bytes were reserved whatever the body's rate, so two heads announcing 2 MiB and
    sending 1.1 KB/s held the whole budget and every other batch, even of one record, got 503 for as long as they
    trickled. Past the grace, a body slower than `BATCH_RESERVED_BYTES_PER_SECOND` holds no place (what has
    arrived counts among the bodies arriving); should it arrive after all, it is handled only if it fits then."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler)
        trickling = [_batch(admission, 200_000) for _ in range(2)]
        for client in trickling:
            client.body(b"x" * 20_000, more=True)  # 16 bytes reserved for each: all they declared
        await _turns()
        clock.now = 0.2  # within the grace: the budget is theirs
        assert admission.batch_bytes == 400_000
        early = _batch(admission, 1_000)
        await early.task
        assert early.status == 503
        clock.now = 5.0  # 20 KB in 5 s
        assert admission.batch_bytes == 0
        served = _batch(admission, 300_000)
        served.body(b"x" * 300_000, more=False)
        await _turns()
        assert admission.batch_bytes == 300_000
        trickling[0].body(b"x" * 180_000, more=False)  # arrives at last: no room beside the batch handled
        await trickling[0].task
        assert (trickling[0].status, trickling[0].error()) == (503, "overloaded")
        handler.release.set()
        await served.task
        assert served.status == 200
        trickling[1].body(b"x" * 180_000, more=False)  # room again
        await trickling[1].task
        assert trickling[1].status == 200
        assert admission.batch_bytes == 0

    _run(scenario)


def test_bodies_arriving_at_a_modest_rate_do_not_hold_the_budget() -> None:
    """Reviews 8 and 9, R8-3/R9-3: a body arriving at 64 KB/s or more kept all it declared reserved until it ended,
    so two bodies of 2 MiB at 70 KB/s (140 KB/s of upload) held the 4 MiB budget for 30 s and nearly every other
    batch got 503. A reservation now needs the body to keep up with `BATCH_RESERVED_BYTES_PER_SECOND` (512 KB/s):
    holding the budget takes a flood of uploads, not a trickle. Here two bodies arrive at 100 KB/s."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler)
        uploading = [_batch(admission, 200_000) for _ in range(2)]
        for client in uploading:
            client.body(b"x" * 100_000, more=True)
        await _turns()
        clock.now = 1.0  # 100 KB in a second each
        assert admission.batch_bytes == 0  # the old code: 400,000, the whole budget
        served = _batch(admission, 1_000)
        served.body(b"x" * 1_000, more=False)
        await _turns()
        assert admission.batch_bytes == 1_000
        handler.release.set()
        await served.task
        assert served.status == 200
        for client in uploading:  # they arrive and, with room, are handled
            client.body(b"x" * 100_000, more=False)
            await client.task
            assert client.status == 200
        assert admission.batch_bytes == 0

    _run(scenario)


def test_a_batch_head_alone_reserves_nothing() -> None:
    """Review 8, R8-1: a head's declared bytes were reserved whole for the half second its body had to show its
    rate, so ten heads a second announcing 2 MiB, with no body (1 KB/s of upload), kept the budget full. A batch
    reserves 16 bytes for each byte of its body that has arrived, up to what it declared."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler)
        heads = [_batch(admission, 200_000) for _ in range(4)]
        await _turns()
        assert admission.batch_bytes == 0
        served = _batch(admission, 300_000)
        served.body(b"x" * 300_000, more=False)
        await _turns()
        assert admission.batch_bytes == 300_000
        heads[0].body(b"x" * 5_000, more=True)
        await _turns()
        assert admission.batch_bytes == 380_000
        handler.release.set()
        await served.task
        assert served.status == 200
        for client in heads:
            client.task.cancel()

    _run(scenario)


async def _behind_a_batch(clock: _Clock, handler: _Handler) -> tuple[Admission, _Client]:
    """Batches waiting up to 30 s for room, and a batch of 300,000 bytes of the 400,000 handled until
    `handler.release`."""
    admission = _batch_admission(clock, handler, wait=30)
    served = _batch(admission, 300_000)
    served.body(b"x" * 300_000, more=False)
    await _turns()
    return admission, served


async def _waiting_batch(admission: Admission) -> _Client:
    """A batch of 200,000 bytes, all sent in 20 messages, that does not fit beside `_behind_a_batch`'s."""
    waiting = _batch(admission, 200_000)
    _chunks(waiting, 20, 10_000)
    await _turns()
    return waiting


def _chunks(client: _Client, count: int, size: int) -> None:
    """`count` messages of `size` bytes, the last one ending the body."""
    for index in range(count):
        client.body(b"x" * size, more=index < count - 1)


def test_a_batch_past_the_budget_waits_unread_past_its_first_message_and_is_served_when_room_frees() -> None:
    """Review 7, R7-5: a batch past the budget was refused at its head, then read whole all the same (the answer
    lingers so that its client reads it) and its client sent the next one at once: 20 eager clients of 2 MB
    batches had the server read and drop 3.2 GB in 10 s, and 10 batches were served. It now waits for room, read
    no further than its first message."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        waiting = await _waiting_batch(admission)
        assert waiting.status is None  # the old code: 503 at once
        assert waiting.incoming.qsize() == 19  # one message read, the rest left unread
        assert (admission.batch_bytes, admission.pending_bytes) == (300_000, 10_000)
        handler.release.set()
        await asyncio.gather(served.task, waiting.task)
        assert (served.status, waiting.status) == (200, 200)
        assert handler.bodies[1] == b"x" * 200_000
        assert (admission.batch_bytes, admission.pending_bytes) == (0, 0)

    _run(scenario)


def test_the_room_a_batch_hands_over_to_its_handling_goes_to_no_one_waiting() -> None:
    """Its body read, a batch's reservation becomes its bytes handled: offered to the batches waiting in between,
    the next one was let into its room and the batch itself refused, 967 of 993 let in that way (R7-5's fix as
    first written). One batch's room lets in one batch; the next waits for it to be answered."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        first, second = _batch(admission, 250_000), _batch(admission, 250_000)
        for client in (first, second):
            _chunks(client, 25, 10_000)
        await _turns()
        handler.release.set()  # room for one of them
        await asyncio.gather(served.task, first.task)
        assert first.status == 200
        await second.task
        assert second.status == 200
        assert handler.bodies == [b"x" * 300_000, b"x" * 250_000, b"x" * 250_000]

    _run(scenario)


def test_a_smaller_batch_passes_a_larger_one_that_does_not_fit_and_one_that_waits_too_long_gets_503() -> None:
    """The batches waiting are let in oldest first as they fit: a 100-record batch is not held behind 2 MB ones.
    Past `max_batch_wait_seconds` a batch gets 503 with `Retry-After`, its connection closed when its body was not
    all read (the server's protocol then reads and drops the rest, so that the client reads the answer)."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler, wait=0.2)
        held = [_batch(admission, size) for size in (200_000, 180_000)]
        for client, size in zip(held, (200_000, 180_000), strict=True):
            client.body(b"x" * size, more=False)
        await _turns()
        large = _batch(admission, 250_000)
        _chunks(large, 25, 10_000)
        small = _batch(admission, 50_000)
        small.body(b"x" * 50_000, more=False)
        await _turns()
        assert (admission.batch_bytes, large.status, small.status) == (380_000, None, None)
        held[1].task.cancel()  # its 180,000 bytes leave: room for the small one, not the large one
        await _turns()
        assert admission.batch_bytes == 250_000
        await large.task
        assert (large.status, large.error()) == (503, "overloaded")
        assert {(b"retry-after", b"1"), (b"connection", b"close")} <= set(large.sent[0]["headers"])
        assert admission.pending_bytes == 0
        handler.release.set()
        await asyncio.gather(held[0].task, small.task)
        assert (held[0].status, small.status) == (200, 200)

    _run(scenario)


def test_a_batch_let_in_from_the_line_holds_all_it_declared_while_its_body_comes() -> None:
    """Holding only 16 bytes for each byte of its first message, a batch let in left room for the next one waiting,
    which was let in too and refused once read (500 clients of 2 MB batches: none served). Let in, a batch holds
    all it declared while its body keeps coming (`_Reservation.held`). One that fell behind and is then read whole
    waits for room again (the old code: 503 once read; review 12, 3-9 of 100 2 MB batches under F1's attack)."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        first, second = _batch(admission, 250_000), _batch(admission, 250_000)
        for client in (first, second):
            client.body(b"x" * 5_000, more=True)  # 80,000 bytes' worth at 16 a byte
        await _turns()
        handler.release.set()
        await served.task
        await _turns()
        assert admission.batch_bytes == 250_000  # the first, let in
        admission._let_in()
        assert (admission.batch_bytes, len(admission._waiting)) == (250_000, 1)  # the second still waits
        clock.now = 1.0  # past the grace, at 5 KB a second: no place (its bytes count among the bodies arriving)
        assert admission.batch_bytes == 0
        admission._let_in()
        assert not admission._waiting
        first.body(b"x" * 245_000, more=False)  # whole at last, slow: handled once it fits
        await _turns()
        assert first.status is None  # waiting again: the second, let in, holds all it declared through its grace
        second.body(b"x" * 245_000, more=False)
        await asyncio.gather(first.task, second.task)
        assert (first.status, second.status) == (200, 200)

    _run(scenario)


def test_a_waiting_batch_whose_request_ends_leaves_the_line_without_an_answer_of_its_own() -> None:
    """A batch waiting for room whose client went away, or whom the server's protocol answered (shed past
    `max_connections`, or the server stopping: `ANSWERED_BY_SERVER`), waited out its `max_batch_wait` all the same,
    and a stopping server waited for it."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        waiting = await _waiting_batch(admission)
        assert len(admission._waiting) == 1
        waiting.scope["state"][ANSWERED_BY_SERVER] = 503  # as `HttpProtocol.refuse_body` does
        await asyncio.wait_for(waiting.task, 5)  # within `ROOM_RECHECK_SECONDS`, not the 30 s wait
        assert (waiting.sent, admission._waiting, admission.pending_bytes) == ([], {}, 0)
        handler.release.set()
        await served.task

    _run(scenario)


def test_a_batch_let_in_whose_body_does_not_come_soon_leaves_its_room_to_the_next() -> None:
    """Review 11, R11-1: a batch let in from the line held all it declared for the half-second grace whatever
    came, so heads of 2 MiB with one byte of body, 6-10 new connections a second, kept the line full and the budget
    held (1-record batches 8/13, 2 MB batches waited 8 s). Let in, a batch keeps its room only while its body
    comes at `BATCH_RESERVED_BYTES_PER_SECOND`, `LET_IN_ALLOWANCE_BYTES` behind at most: one whose body does not
    come leaves it within tens of milliseconds, and the next waiting one is let in."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        stalled, honest = _batch(admission, 250_000), _batch(admission, 250_000)
        stalled.body(b"x", more=True)  # one byte, then nothing
        await _turns()
        honest.body(b"x" * 5_000, more=True)
        await _turns()
        handler.release.set()
        await served.task
        await _turns()
        assert (admission.batch_bytes, len(admission._waiting)) == (250_000, 1)  # the stalled one, let in first
        clock.now = 0.05  # 50 ms on: 25 KB were due, none came (the old code: all it declared, for 0.5 s)
        assert admission.batch_bytes == 0
        admission._let_in()
        assert not admission._waiting  # the honest one's turn
        honest.body(b"x" * 20_000, more=True)  # its body comes at once, as an eager client's does
        await _turns()
        assert admission.batch_bytes == 250_000
        honest.body(b"x" * 225_000, more=False)
        await honest.task
        assert honest.status == 200
        stalled.task.cancel()

    _run(scenario)


def test_a_client_holding_a_place_waits_behind_other_clients() -> None:
    """Review 12, F1: let in oldest first, one client that filled the line with heads whose bodies stopped after
    16 KiB (30-40 a second) had each hold its room in turn, and 2 MB batches from others waited 7-10 s behind them.
    Room now goes first to the clients (addresses) holding the fewest places."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler, wait=30)
        holding = _batch(admission, 200_000, client="203.0.113.9")
        holding.body(b"x" * 20_000, more=True)  # 16 bytes a byte: all it declared, its body keeping up
        served = _batch(admission, 150_000)
        served.body(b"x" * 150_000, more=False)
        await _turns()
        flood = [await _begun(admission, client="203.0.113.9", declared=150_000) for _ in range(3)]
        other = await _begun(admission, client="198.51.100.7", declared=150_000)
        assert (admission.batch_bytes, len(admission._waiting)) == (350_000, 4)
        handler.release.set()
        await served.task  # room for one more: the other client's, the newest (the old code: the flood's oldest)
        await _turns()
        assert [waiter.reservation.client for waiter in admission._waiting] == ["203.0.113.9"] * 3
        for client in [holding, *flood, other]:
            client.task.cancel()

    _run(scenario)


def test_a_batch_whose_body_is_coming_is_let_in_before_older_stalled_heads() -> None:
    """Review 12, F2: heads with one byte of body, 100 new connections a second, each let in in its turn, kept
    2 MB batches waiting (p90 5.9 s). Among one client's batches, those whose clients have sent their body on
    while they waited (`BODY_WAITING`: in the kernel's buffers) go first."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        stalled = [_batch(admission, 250_000) for _ in range(3)]
        for client in stalled:
            client.body(b"x", more=True)
            await _turns()
        eager = _batch(admission, 250_000)
        _chunks(eager, 25, 10_000)  # its first message read, 240,000 bytes waiting
        await _turns()
        assert len(admission._waiting) == 4
        handler.release.set()
        await served.task
        await _turns()
        assert eager.status == 200  # let in first and served (the old code: the oldest stalled head was let in)
        for client in stalled:
            client.task.cancel()

    _run(scenario)


def test_what_a_batch_sent_while_it_waited_does_not_count_as_keeping_up() -> None:
    """Review 12, F1: bytes a batch's client sent while it waited arrive at once when it is let in, and counted as
    its body keeping up: heads of 256 KiB, 4-8 a second, held 2 MiB a quarter of a second each and small batches
    timed out. Let in, a batch holds all it declared while those are read, then only while what comes after them
    keeps up (`LET_IN_ALLOWANCE_BYTES` behind at most)."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        head = _batch(admission, 250_000)
        for _ in range(10):  # 100,000 bytes sent as it waits; the rest never comes
            head.body(b"x" * 10_000, more=True)
        await _turns()
        assert len(admission._waiting) == 1
        handler.release.set()
        await served.task
        await _turns()
        assert admission.batch_bytes == 250_000  # let in, the 90,000 bytes waiting read
        clock.now = 0.04  # 40 ms on: 20 KB were due past them, none came (the old code: 90,000 counted, held 0.2 s)
        assert admission.batch_bytes == 0
        head.task.cancel()

    _run(scenario)


def test_a_new_batch_does_not_pass_the_batches_waiting() -> None:
    """Review 12's F1, its neighbour (found measuring the fix): a batch head arriving while others waited reserved
    at once when its declared bytes fitted, before any of them: heads of 256 KiB arriving 6 a second, each holding
    2 MiB for a second on its first bytes, took every place that freed, and batches waiting from other clients
    waited out their 10 s (a 1-record batch too: what was left was smaller). With batches waiting, a new one takes
    its turn in the line."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler, wait=30)
        holding = _batch(admission, 250_000, client="203.0.113.9")
        holding.body(b"x" * 20_000, more=True)  # reserved at its head: all it declared, while its body keeps up
        await _turns()
        waiting = await _begun(admission, client="198.51.100.7")
        assert (admission.batch_bytes, len(admission._waiting)) == (250_000, 1)
        clock.now = 2.0  # the first one's body stopped: it holds nothing now (noticed at the next turn in line)
        newcomer = await _begun(admission, client="203.0.113.9")
        assert [waiter.reservation.client for waiter in admission._waiting] == ["203.0.113.9"]  # the old: waiting's
        assert admission.batch_bytes == 250_000
        for client in (holding, waiting, newcomer):
            client.task.cancel()

    _run(scenario)


def test_a_client_whose_batch_fell_behind_goes_after_other_clients() -> None:
    """Review 13: 100 heads announcing 2 MiB with 48 KiB of body, from 30 addresses, every 5 s: each address held
    no place between its turns, and let in oldest first, each head held its room in turn while batches from others
    waited 8 s. A client (address) whose batch's body fell behind goes after the others for
    `CLIENT_MEMORY_SECONDS`."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)
        stalled = await _begun(admission, client="203.0.113.9")
        later = await _begun(admission, client="203.0.113.9")
        other = await _begun(admission, client="198.51.100.7")
        handler.release.set()
        await served.task
        await _turns()
        assert [waiter.reservation.client for waiter in admission._waiting] == ["203.0.113.9", "198.51.100.7"]
        clock.now = 0.1  # the first let in, its body stopped: it fell behind
        admission._let_in()
        assert [waiter.reservation.client for waiter in admission._waiting] == ["203.0.113.9"]  # the old: other's
        for client in (stalled, later, other):
            client.task.cancel()

    _run(scenario)


def test_a_client_whose_batch_was_served_goes_before_clients_the_line_does_not_know() -> None:
    """Review 13, its neighbour (found measuring the fix): the same bursts from 250 addresses, none seen again
    within `CLIENT_MEMORY_SECONDS`, so that none had fallen behind yet: 2 MB batches waited 5 s behind them and 3 of
    22 got 503. A client whose batch was handled lately goes before the clients the line does not know."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)  # from 192.0.2.1
        strangers = [await _begun(admission, client=f"203.0.113.{index}") for index in range(3)]
        handler.release.set()
        await served.task  # handled: its client is known now
        await _turns()
        handler.release.clear()
        admission._let_in()
        known = await _begun(admission)
        assert len(admission._waiting) == 3  # a stranger was let in with the room the served batch left
        clock.now = 0.1  # its body stopped: its room is free again
        admission._let_in()
        waiting = [waiter.reservation.client for waiter in admission._waiting]
        assert len(waiting) == 2
        assert "192.0.2.1" not in waiting  # the old code: the next stranger was let in
        for client in (*strangers, known):
            client.task.cancel()

    _run(scenario)


def test_a_batch_whose_whole_body_is_here_goes_first_whoever_its_client() -> None:
    """Review 15 (review 14's F2): bursts of heads announcing 2 MiB (two fill the budget), each from an address
    that had one batch handled, kept a client's first batches of 1 and 100 records waiting 6-7 s: the heads' bodies
    were coming and older, their clients known, and every room that freed went to the next head. A batch whose
    whole body has been sent (read, or waiting in the server's buffers) cannot stall: it goes first, also from an
    address marked behind (a client sharing its address with an attacker)."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler, wait=30)
        handler.release.set()
        for index in range(3):  # three addresses, each known for 100,000 bytes
            warm = _batch(admission, 100_000, client=f"203.0.113.{index}")
            warm.body(b"x" * 100_000, more=False)
            await warm.task
        handler.release.clear()
        served = _batch(admission, 300_000)
        served.body(b"x" * 300_000, more=False)
        first = _batch(admission, 100_000, client="203.0.113.0")  # reserved at its head: the room left
        first.body(b"x" * 30_000, more=True)
        await _turns()
        heads = []
        for index in (1, 2):
            head = _batch(admission, 100_000, client=f"203.0.113.{index}")
            _chunks(head, 3, 10_000)  # its first message read, 20,000 bytes waiting: coming
            heads.append(head)
            await _turns()
        shared = _batch(admission, 100_000, client="203.0.113.0")  # the first head's address, all sent
        _chunks(shared, 10, 10_000)
        await _turns()
        assert (admission.batch_bytes, len(admission._waiting)) == (400_000, 3)
        clock.now = 1.0  # the first head's body stopped: its address fell behind, its room is free
        admission._let_in()
        waiting = [waiter.reservation.client for waiter in admission._waiting]
        assert waiting == ["203.0.113.1", "203.0.113.2"]  # the old code: the oldest known head was let in
        for client in (served, first, *heads, shared):
            client.task.cancel()

    _run(scenario)


def test_a_batch_sent_nearly_whole_then_trickled_holds_no_place_after_its_burst() -> None:
    """Review 15 (`tests/benchmarks/trickled_bodies.py` on `/predict/batch`): a 2 MiB batch sent nearly whole at
    once, then a byte every second, kept its average since its head above `BATCH_RESERVED_BYTES_PER_SECOND` for
    4 s after each burst and held all it declared meanwhile; 14 such connections kept honest batches waiting about
    2 s for room. A batch holds its place only while its last second or two keep that rate too."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        limits = {"limit": 3_000_000, "max_pending_bytes": 10_000_000, "max_batch_bytes": 4_000_000}
        admission = _admission(handler, batch_paths=frozenset({"/batch"}), clock=clock, **limits)
        burst = _batch(admission, 2_097_152)
        burst.body(b"x" * 2_000_000, more=True)
        await _turns()
        assert admission.batch_bytes == 2_097_152
        for second in (1.0, 2.0):  # a byte a second after its burst
            clock.now = second
            burst.body(b"x", more=True)
            await _turns()
        clock.now = 2.5  # its average since its head: 800 KB/s; its last 1.5 s: a byte
        assert admission.batch_bytes == 0  # the old code: 2,097,152 until 4.4 s
        burst.task.cancel()

    _run(scenario)


def test_a_batch_first_in_line_that_does_not_fit_is_passed_for_a_second_then_room_is_held_for_it() -> None:
    """Review 17, N6: 200 connections sending 80-record batches whole took each 80 records' room as it freed,
    first as their clients were known for that size, and other clients' 100- and 1,000-record batches, never
    fitting, waited out their 10 s. Whole batches go oldest first whoever their client, and the first in line is
    passed by smaller batches that fit for `ROOM_HELD_AFTER_SECONDS`, then no longer."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler, wait=30)
        handler.release.set()
        warm = _batch(admission, 60_000, client="203.0.113.9")  # the flood's client: known for its size
        _chunks(warm, 6, 10_000)
        await warm.task
        handler.release.clear()
        served = _batch(admission, 300_000)  # 300,000 of 400,000 handled
        served.body(b"x" * 300_000, more=False)
        await _turns()
        larger = _batch(admission, 150_000, client="198.51.100.7")
        _chunks(larger, 15, 10_000)  # all sent: whole, first in line
        await _turns()
        early = _batch(admission, 60_000, client="203.0.113.9")
        _chunks(early, 6, 10_000)
        await _turns()
        assert [w.reservation.client for w in admission._waiting] == ["198.51.100.7"]  # the smaller one passed
        clock.now = 1.5  # the first in line has waited past its second
        late = _batch(admission, 30_000, client="203.0.113.9")
        _chunks(late, 3, 10_000)
        await _turns()
        waiting = [w.reservation.client for w in admission._waiting]
        assert waiting == ["198.51.100.7", "203.0.113.9"]  # the old code: let in, 10,000 bytes left
        handler.release.set()
        await asyncio.gather(served.task, larger.task, early.task, late.task)
        assert [c.status for c in (warm, served, larger, early, late)] == [200] * 5

    _run(scenario)


def test_room_is_held_for_a_first_in_line_whose_body_is_coming_not_whole() -> None:
    """Review 18, F1 and F5: a 1,000-record batch (more than the server's buffers hold: never whole) first in line
    was passed for good by a flood's smaller batches sent whole, and waited out its 10 s: room was held only for
    a whole one. It is held for any batch first in line, against clients holding places."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)  # 300,000 of 400,000 handled, 192.0.2.1's
        larger = _batch(admission, 150_000, client="198.51.100.7")
        _chunks(larger, 4, 10_000)  # 30,000 waiting: coming, not whole
        larger.body(b"x" * 10_000, more=True)
        await _turns()
        clock.now = 1.5  # past its second
        passer = _batch(admission, 30_000)  # from 192.0.2.1, whose batch is being handled
        _chunks(passer, 3, 10_000)
        await _turns()
        assert [w.reservation.client for w in admission._waiting] == ["198.51.100.7", "192.0.2.1"]  # the old: let in
        for client in (served, larger, passer):
            client.task.cancel()

    _run(scenario)


def test_room_held_for_the_first_in_line_still_lets_in_a_client_holding_no_place() -> None:
    """Review 18, F3: held from everyone, the room that freed went to nothing while a 100-record batch first in line
    waited for two slow 2 MB uploads to end, and 1-record batches waited up to 3 s behind it. A batch of a client
    holding no place still passes it."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission, served = await _behind_a_batch(clock, handler)  # 300,000 of 400,000 handled, 192.0.2.1's
        larger = _batch(admission, 150_000, client="198.51.100.7")
        _chunks(larger, 15, 10_000)  # all sent: whole, first in line
        await _turns()
        clock.now = 1.5  # past its second: the room is held for it
        small = _batch(admission, 400, client="198.51.100.8")
        small.body(b"x" * 400, more=False)
        await _turns()
        assert [w.reservation.client for w in admission._waiting] == ["198.51.100.7"]  # let in (held: waiting)
        handler.release.set()
        await asyncio.gather(served.task, larger.task, small.task)
        assert [c.status for c in (served, larger, small)] == [200] * 3

    _run(scenario)


def test_a_client_with_batches_being_handled_goes_after_a_client_with_none_whole_or_not() -> None:
    """Review 17, N6: 200 connections sending 80-record batches whole went first whoever their client, and another
    client's 1,000-record batch (larger than the server's buffers: never whole) waited out its 10 s. Room goes first
    to the clients holding the fewest places, the batches being handled counted with those arriving."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler, wait=30)
        flood = []
        for _ in range(3):  # the flood's client: three batches whole, being handled
            handled = _batch(admission, 100_000, client="203.0.113.9")
            handled.body(b"x" * 100_000, more=False)
            flood.append(handled)
            await _turns()
        stalling = _batch(admission, 100_000, client="192.0.2.7")  # the room left: reserved, then stops at 0.54 s
        stalling.body(b"x" * 20_000, more=True)
        await _turns()
        whole = _batch(admission, 100_000, client="203.0.113.9")
        _chunks(whole, 10, 10_000)
        await _turns()
        coming = _batch(admission, 100_000, client="198.51.100.7")
        _chunks(coming, 4, 10_000)  # its first message read, 30,000 bytes waiting: coming, not whole
        coming.body(b"x" * 10_000, more=True)
        await _turns()
        assert len(admission._waiting) == 2
        clock.now = 0.6  # the stalling body fell behind: room for one
        admission._let_in()
        assert [w.reservation.client for w in admission._waiting] == ["203.0.113.9"]  # the old code: coming's
        for client in (*flood, stalling, whole, coming):
            client.task.cancel()

    _run(scenario)


def _arriving(admission: Admission, size: int, *, droppable: bool = True) -> _Client:
    """A body of `size` bytes sent at once, with more to come (a `POST /predict` whose Content-Length says more)."""
    client = _Client(admission, _scope(headers=[(b"content-length", b"1000000")]), droppable=droppable)
    client.body(b"x" * size, more=True)
    return client


def test_a_body_sent_nearly_whole_then_trickled_is_dropped_to_make_room() -> None:
    """Review 10, R10-1 (review 11, R11-2): bodies sent nearly whole at once, then a byte every few seconds, kept
    the average rate and the stall limit of the server's protocol and held `max_pending_bytes` for
    `body_timeout_seconds`: every body that did not fit got 503. Past the budget, the body arriving slowest over its
    last seconds is dropped instead (the old code: the newcomer got 503, nothing was dropped)."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        handler.release.set()
        admission = _admission(handler, limit=1_000_000, max_pending_bytes=1_000_000, clock=clock)
        stalled, trickled = _arriving(admission, 400_000), _arriving(admission, 400_000)
        await _turns()
        for second in range(1, 6):  # a byte a second: under any stall limit, its average since its head far above
            clock.now = second
            trickled.body(b"x", more=True)
            await _turns()
        newcomer = _arriving(admission, 300_000)
        newcomer.body(b"x", more=False)
        await newcomer.task
        assert newcomer.status == 200
        assert (stalled.dropped, trickled.dropped) == (True, False)  # the slowest, and enough to make room
        await stalled.task
        assert admission.pending_bytes == 400_005
        trickled.body(b"x", more=False)
        await trickled.task
        assert (trickled.status, admission.pending_bytes) == (200, 0)

    _run(scenario)


def test_fresh_bodies_fast_bodies_and_bodies_no_server_can_drop_are_not_dropped() -> None:
    """What the rule does not count: a body read for less than `BODY_RATE_WINDOW_SECONDS`, one that brought
    `DROPPABLE_BODY_BYTES_PER_SECOND` or more over its last seconds (an honest upload at 100 KB/s), one whose server
    cannot drop it (no `DROP_BODY`). With only those holding the budget, the newcomer gets 503 as before, and none is
    dropped: nor when the droppable ones would not make room enough."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        handler.release.set()
        admission = _admission(handler, limit=1_000_000, max_pending_bytes=1_000_000, clock=clock)
        fast, undroppable = _arriving(admission, 300_000), _arriving(admission, 300_000, droppable=False)
        await _turns()
        clock.now = 4.0
        fast.body(b"x" * 200_000, more=True)  # 200 KB in its last second
        slow = _arriving(admission, 199_999)  # read from now: its first second is not judged
        await _turns()
        clock.now = 5.0
        slow.body(b"x", more=True)
        await _turns()
        clock.now = 5.5  # `slow` brought a byte in its last half second: judged on a second, not on that
        refused = _arriving(admission, 200_000)
        await refused.task
        assert (refused.status, refused.error()) == (503, "overloaded")
        assert [fast.dropped, undroppable.dropped, slow.dropped] == [False] * 3
        fast.task.cancel()
        await _turns()
        clock.now = 9.0  # `slow` brought nothing for 4 s, but holds 200,000 where 300,001 are needed
        too_large = _arriving(admission, 800_000)
        await too_large.task
        assert (too_large.status, slow.dropped) == (503, False)
        assert admission.pending_bytes == 500_000
        for client in (undroppable, slow):
            client.task.cancel()

    _run(scenario)


def test_a_small_batch_handled_does_not_put_its_client_first_with_a_large_one() -> None:
    """Review 14, F1: any batch handled lately put its client first in the line, so an attacker had one 1-record
    batch answered from each of 250 addresses before each head announcing 2 MiB, and honest batches waited 3-7 s
    behind those heads (longer than with no order at all). A client goes first only with a batch no larger than
    one it had handled lately."""

    async def scenario() -> None:
        clock, handler = _Clock(), _Handler()
        admission = _batch_admission(clock, handler, wait=30)
        handler.release.set()
        small = _batch(admission, 1_000, client="203.0.113.9")
        small.body(b"x" * 1_000, more=False)
        await small.task
        assert small.status == 200
        handler.release.clear()
        served = _batch(admission, 300_000)
        served.body(b"x" * 300_000, more=False)
        await _turns()
        stranger = await _begun(admission, client="198.51.100.7")
        head = await _begun(admission, client="203.0.113.9")
        assert len(admission._waiting) == 2
        handler.release.set()
        await served.task  # its room: for one of the two
        await _turns()
        assert [waiter.reservation.client for waiter in admission._waiting] == ["203.0.113.9"]  # the old: stranger's
        for client in (stranger, head):
            client.task.cancel()

    _run(scenario)
