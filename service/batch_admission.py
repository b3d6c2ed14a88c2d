"""Which batches (and single explained records) get a worker thread, and for how long they may wait for one.

Batches are scored in worker threads, one per core (`/predict/batch`: LightGBM releases the GIL, and the rows, the
explanations and the answers of 1,000 records would otherwise hold the event loop). Admission into the thread queue
once counted only requests, whatever their cost: 64 batches of 1,000 records with `explain=true` (about 4.5 s of a
core each, 13 times a plain batch), sent by one client that closed each connection at once, were all computed, held
`max_requests_in_flight` for 8 s and kept a 10-record batch waiting 45 s. So here:

- the records of explained batches in flight or waiting have a budget (`max_explained_records`): past it, 503;
  a single `POST /predict?explain=true` is a batch of one here (TreeSHAP, about 6 ms, held the event loop: a flood
  of them put `/health` at 0.5 s);
- a batch may take at most half of the budget still free, so it always leaves as much to the next one: two full
  batches from one client once held the whole budget and 18 of 19 10-record batches from others got 503. What
  this share does not tell apart: many requests, from one client or many, each taking its half of what is left;
  past `max_explained_records` they are refused all the same, and a small batch then waits for the next free room;
- an explained batch that cannot fit is refused before its body is parsed (`service.middleware.Admission`, with
  `records_at_most` of its bytes): checked only here, after the parse, 40 clients of refused explained batches cut
  the plain batches' throughput from 114 to 15 a second (the event loop parsed and validated every one);
- explained batches use all the threads but one when there are several, so a plain batch never waits behind them;
- a batch waits for a thread at most `batch_queue_seconds`, then 503;
- a batch whose client has gone by the time it gets a thread is dropped unscored (logged as 499).

Every 503 here is `overloaded` with `Retry-After`, as `service.middleware.Admission`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
from anyio import CapacityLimiter, to_thread

from ml.schema import FEATURE_NAMES
from service.errors import ProblemError
from service.middleware import CLIENT_CLOSED_REQUEST, OVERLOADED

T = TypeVar("T")
_RETRY = {"Retry-After": "1"}
#: The fewest bytes a valid record takes in JSON: every feature (all are required) with a one-digit value, no
#: spaces, and the comma after it in a batch (`{"HighBP":0,...}`). Compact real records are as short, give or take
#: a few digits; with the spaces of Python's `json.dumps` they are 15% longer (and counted as that many more).
MIN_RECORD_BYTES = sum(len(name) + len('"":0,') for name in FEATURE_NAMES) + len("{}")
#: The bytes of a batch's body around its records.
_BATCH_WRAPPER_BYTES = len('{"records":[]}') - 1  # the last record has no comma after it


def records_at_most(body_bytes: int, batch_limit: int) -> int:
    """The most valid records a batch body of `body_bytes` can hold (more than `batch_limit` is refused with 422
    once parsed, so it counts as `batch_limit`): what its `Content-Length` says before the body is read."""
    return min(max(body_bytes - _BATCH_WRAPPER_BYTES, 0) // MIN_RECORD_BYTES, batch_limit)


class BatchAdmission:
    """The worker threads that score batches, and the budget of what waits for them."""

    def __init__(self, *, threads: int, max_explained_records: int, queue_seconds: float) -> None:
        self.threads = CapacityLimiter(threads)
        # explained batches leave one thread to the others, when there is more than one
        self.explain_threads = CapacityLimiter(max(threads - 1, 1))
        self.max_explained_records = max_explained_records
        self.queue_seconds = queue_seconds
        self.explained_records = 0  # of explained batches in flight or waiting for a thread

    async def run(
        self, work: Callable[[], T], *, records: int, explain: bool, client_gone: Callable[[], Awaitable[bool]]
    ) -> T:
        """`work`, in a worker thread once one is free; 503 `overloaded` when an explained batch would take more than
        half of the explained records' budget still free or no thread frees within `queue_seconds`; 499 when the
        client left while it waited."""
        cost = records if explain else 0
        if cost and (refusal := self.explain_refusal(cost)):
            raise refusal
        self.explained_records += cost
        try:
            async with self._thread(explain):
                if await client_gone():
                    reason = "The client closed the connection before its batch was scored"
                    raise ProblemError(CLIENT_CLOSED_REQUEST, "client_closed_request", reason, field="server")
                return await to_thread.run_sync(work)
        finally:
            self.explained_records -= cost

    def explain_refusal(self, records: int) -> ProblemError | None:
        """The 503 `overloaded` for an explained batch of `records` that would take more than half of the explained
        records' budget still free; None when it fits."""
        if records <= (self.max_explained_records - self.explained_records) / 2:
            return None
        reason = (
            f"The service is explaining as many records as it can ({self.max_explained_records:,} at a time, a "
            "batch at most half of those not taken); retry in a second, send fewer records, or send the batch "
            "without explain=true"
        )
        return ProblemError(503, "overloaded", reason, headers=_RETRY, field="server")

    @contextlib.asynccontextmanager
    async def _thread(self, explain: bool) -> AsyncIterator[None]:
        """A place among the threads (and among the explaining ones), waited for at most `queue_seconds`."""
        limiters = [self.explain_threads, self.threads] if explain else [self.threads]
        async with contextlib.AsyncExitStack() as held:
            taken = 0
            with anyio.move_on_after(self.queue_seconds):
                for limiter in limiters:
                    await held.enter_async_context(limiter)
                    taken += 1
            if taken < len(limiters):
                raise ProblemError(503, "overloaded", OVERLOADED, headers=_RETRY, field="server")
            yield
