"""Pure ASGI middleware (no BaseHTTPMiddleware: it would add a task and a stream per request).

`RequestContext` (outermost) gives each request an id, logs one JSON line, records the metrics and turns any
unhandled exception into a JSON 500 that names the request id. `BodyLimit` reads the body up front and refuses
it with 413 once it passes the size limit, or with 408 when it is not all there in time (a client sending one byte
a second holds no task for long), before any JSON parsing or validation runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ProblemError, raw_error, request_id_of
from service.observability import ACCESS_LOGGER, Metrics

logger = logging.getLogger(ACCESS_LOGGER)
_error_logger = logging.getLogger("service.errors")
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
    def __init__(self, app: ASGIApp, metrics: Metrics, *, access_log: bool, paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.paths = paths  # route templates without parameters: requests refused before routing keep their route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        status = 500
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
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or (scope["path"] if scope["path"] in self.paths else "unmatched")
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.observe(method, template, status, elapsed)
            if self.access_log:
                logger.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": _client(scope),
                    },
                )


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            reason = f"declared {declared:,} bytes"
            await _refuse(scope, send, 413, "body_too_large", self._too_large(reason))
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._read(receive)
        except TimeoutError:
            reason = f"The request body did not arrive within {self.timeout:g} s; send it at once."
            await _refuse(scope, send, 408, "request_timeout", reason)
            return
        except _BodyTooLargeError:
            reason = self._too_large(f"more than {self.limit:,} bytes received")
            await _refuse(scope, send, 413, "body_too_large", reason)
            return
        if body is None:  # the client went away
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None when the client went away."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _BodyTooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, seen: str) -> str:
        return f"Request body too large ({seen}); the limit is {self.limit:,} bytes. Send fewer records per request."


class _BodyTooLargeError(Exception):
    """The body passed the limit while it was read."""


async def _refuse(scope: Scope, send: Send, status: int, code: str, reason: str) -> None:
    body, headers = raw_error(ProblemError(status, code, reason), request_id_of(scope))
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
