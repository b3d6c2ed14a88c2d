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

from service.errors import ProblemError
from service.middleware import CLIENT_CLOSED_REQUEST, OVERLOADED

T = TypeVar("T")
_RETRY = {"Retry-After": "1"}


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
        if cost and cost > (self.max_explained_records - self.explained_records) / 2:
            reason = (
                f"The service is explaining as many records as it can ({self.max_explained_records:,} at a time, a "
                "batch at most half of those not taken); retry in a second, send fewer records, or send the batch "
                "without explain=true"
            )
            raise ProblemError(503, "overloaded", reason, headers=_RETRY, field="server")
        self.explained_records += cost
        try:
            async with self._thread(explain):
                if await client_gone():
                    reason = "The client closed the connection before its batch was scored"
                    raise ProblemError(CLIENT_CLOSED_REQUEST, "client_closed_request", reason, field="server")
                return await to_thread.run_sync(work)
        finally:
            self.explained_records -= cost

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
