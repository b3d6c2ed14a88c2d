"""JSON logs on standard output and Prometheus metrics, each app with its own registry."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from ml.schema import CLASSES

ACCESS_LOGGER = "service.access"
_HANDLER_NAME = "service-json"
#: Request latency buckets in seconds: fine below 10 ms where single predictions land, coarse above.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


#: The fields of the access log's line, one per request (`service.middleware.RequestContext`), after the usual four.
ACCESS_FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "client")
#: The access line's field when the answer did not reach its client: the rule it was dropped by, or `client_gone`.
NOT_DELIVERED_FIELD = "not_delivered"


class _JsonLines(JsonFormatter):
    """python-json-logger's lines; the access log's take a shortcut to the same line. Its records carry the known
    `ACCESS_FIELDS`, so they are read by name and dumped at once rather than found among the record's attributes,
    and the time (whole seconds, as `datefmt` says) is formatted once a second: 8.5 -> 4.8 us of every request."""

    _time: tuple[int, str] = (-1, "")

    def _second(self, second: int, record: logging.LogRecord) -> str:
        """`formatTime` (whole seconds), once a second rather than once a line."""
        if self._time[0] != second:
            self._time = (second, self.formatTime(record, self.datefmt))
        return self._time[1]

    def format(self, record: logging.LogRecord) -> str:
        if record.name != ACCESS_LOGGER or record.exc_info or record.stack_info:
            return super().format(record)
        values = record.__dict__
        try:
            fields = [(name, values[name]) for name in ACCESS_FIELDS]
        except KeyError:  # not the middleware's line
            return super().format(record)
        line = {
            "time": self._second(int(record.created), record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(fields)
        if NOT_DELIVERED_FIELD in values:
            line[NOT_DELIVERED_FIELD] = values[NOT_DELIVERED_FIELD]
        return json.dumps(line)


def configure_logging(level: str) -> None:
    """One JSON line per record on stdout, uvicorn's own lines included; its access log is replaced by ours."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(
            _JsonLines(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
                # uvicorn adds an ANSI-coloured copy of some messages; the plain one is enough.
                reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            )
        )
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # uvicorn writes access lines only when this logger has handlers: none, and the middleware logs instead.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


def skip_unlogged_record_attributes() -> None:
    """Every record's caller (a walk up the stack), thread, process and process name are found for each line, and
    no line writes them (`_JsonLines` writes its four fields and the extras; tracebacks come from `exc_info`): the
    switches the logging HOWTO lists under "Optimization" leave them unset (the access line of a `/predict`, in
    process: 6-12 us of about 300). They hold for the whole process, and `stack_info=True` writes no stack under
    them (nothing the service runs asks for one): set by `service.server` for the service's own process only, not
    by `create_app`, so that a process embedding the app keeps its callers in its own logs (review 22, F4)."""
    logging._srcfile = None  # the caller: file, function and line
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


#: Least time between the beginnings of two renderings of the metrics' text (`Metrics.scrape`).
SCRAPE_RENDER_SECONDS = 0.25


class Metrics:
    """Requests and latency by route and status, predictions by class, model readiness."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template and status.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to the end of its response, by route template and status.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "model_predictions_total", "Predictions returned, by predicted class.", ("class",), registry=self.registry
        )
        self.ready = Gauge("model_ready", "1 when the model is loaded and verified, else 0.", registry=self.registry)
        self.info = Gauge(
            "model_info", "The served model's version (value always 1).", ("version",), registry=self.registry
        )
        self.refusals = Counter(
            "http_protocol_refusals_total",
            "Requests the server's protocol refused before the app saw them (400, 408, 413, 414, 431), by status.",
            ("status", "error"),
            registry=self.registry,
        )
        self.shed = Counter(
            "http_connections_shed_total",
            "Connections closed to stay within a limit: idle (max_idle_connections), connections "
            "(max_connections), head_bytes (max_head_bytes_buffered); reset with their answer not all sent: "
            "send_rate (min_send_bytes_per_second), send_stalled (send_timeout_seconds), unsent_budget (the slowest "
            "holder of max_unsent_answer_bytes, dropped for a new request), shutdown (the stop).",
            ("reason",),
            registry=self.registry,
        )
        self.explained_records = Gauge(
            "batch_explained_records",
            "Records of explained batches being scored or waiting for a thread (their budget: max_explained_records).",
            registry=self.registry,
        )
        self.batch_bytes = Gauge(
            "batch_bytes_in_flight",
            "Bytes of batches admitted: reserved as their body arrives (none for a slow body, until it has arrived), "
            "or read and handled (their budget: max_batch_bytes_in_flight).",
            registry=self.registry,
        )
        self.batches_waiting = Gauge(
            "batches_waiting_for_room",
            "Batches waiting, their bodies unread, for room in max_batch_bytes_in_flight (up to batch_queue_seconds).",
            registry=self.registry,
        )
        self.unsent_answer_bytes = Gauge(
            "http_unsent_answer_bytes",
            "Bytes of answers held for clients slower than the service (their budget: max_unsent_answer_bytes).",
            registry=self.registry,
        )
        self._by_class = [self.predictions.labels(c.name) for c in CLASSES]
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._render: asyncio.Future[bytes] | None = None  # the next rendering for scrapes, not begun yet
        self._rendered_at = -math.inf  # when the last one began (loop time)

    async def scrape(self) -> bytes:
        """The registry as Prometheus text, rendered after this scrape arrived. Scrapes that arrive before the next
        rendering begins share it, and renderings begin at most every `SCRAPE_RENDER_SECONDS`: each holds the event
        loop 10-35 ms (75 KB of text), and 20-100 scrapers at once (63-93 scrapes a second, which are never refused)
        held `/health` 0.4-2.2 s and batches 3-4 s (review 16, F7). A scrape waits that long at most; not counted:
        sending the text, once per scrape."""
        if self._render is None:
            loop = asyncio.get_running_loop()
            self._render = loop.create_future()
            delay = max(0.0, self._rendered_at + SCRAPE_RENDER_SECONDS - loop.time())
            loop.call_later(delay, self._render_now, self._render)
        return await asyncio.shield(self._render)  # a scraper gone does not cancel the others' rendering

    def _render_now(self, render: asyncio.Future[bytes]) -> None:
        self._render = None
        self._rendered_at = render.get_loop().time()
        try:
            render.set_result(generate_latest(self.registry))
        except Exception as error:  # (a collector's): each scrape waiting answers 500 with it
            render.set_exception(error)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            label = (method, route, str(status))
            children = (self.requests.labels(*label), self.latency.labels(*label))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def protocol_refusal(self, status: int, error: str) -> None:
        self.refusals.labels(str(status), error).inc()

    def connection_shed(self, reason: str) -> None:
        self.shed.labels(reason).inc()

    def count_predictions(self, class_ids: Iterable[int]) -> None:
        """Count each predicted class (class ids as a sequence or a numpy array)."""
        counts = [0] * len(self._by_class)
        for class_id in class_ids.tolist() if isinstance(class_ids, np.ndarray) else class_ids:
            counts[class_id] += 1
        for counter, count in zip(self._by_class, counts, strict=True):
            if count:
                counter.inc(count)

    def model_loaded(self, version: str) -> None:
        self.ready.set(1)
        self.info.labels(version).set(1)
