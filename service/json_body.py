"""How request bodies become JSON: FastAPI's own parsing, made strict in one place.

FastAPI reads a JSON body with `Request.json()`; the routes use `JsonBodyRoute`, whose requests decode the body as
UTF-8 strictly (JSON is UTF-8, RFC 8259), so any undecodable body is FastAPI's usual 422 "Malformed JSON" rather
than a generic 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


def parse_json(body: bytes) -> Any:
    """The body as JSON; any failure is a `json.JSONDecodeError` saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})", "", 0) from None
    return json.loads(text)


class JsonBodyRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JsonBodyRoute(APIRoute):
    """An APIRoute whose handler sees a `JsonBodyRequest` (FastAPI's documented way to customise body parsing)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json_handler(request: Request) -> Response:
            return await handler(JsonBodyRequest(request.scope, request.receive))

        return strict_json_handler
