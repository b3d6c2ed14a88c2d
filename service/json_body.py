"""How request bodies become JSON: FastAPI's own parsing, made strict and bounded in one place.

FastAPI reads a JSON body with `Request.json()`; the routes use a `JsonBodyRoute`, whose requests parse the body
strictly, so each of these is FastAPI's usual 422 "Malformed JSON" naming the problem rather than a generic 400 or
a silent guess: a body that is not UTF-8 (JSON is UTF-8, RFC 8259), a key twice in one object (parsers disagree on
which one wins, so `{"Age": 99, ..., "Age": 10}` is refused, not read as 10), nesting deeper than Python's recursion
limit, and an integer longer than Python converts (4,300 digits).

Parsing runs on the event loop and holds it: one 2 MB object of 216,699 keys takes about 90 ms, and a 2 MB array
of 690,000 empty arrays 1.5 s. So a body holding more values than the route could ever need is refused before it
is parsed. Every value but the first of an object or array follows a `,`, and every object or array opens with
`{` or `[`, so a body holds at most `,` + `[` + `{` + 1 values (a member of an object counts as one). A valid
body has no strings but its keys, which hold none of those characters, so counting them (three passes of
`bytes.count`, about a millisecond for 2 MB) never refuses a body that validation would accept: whatever its
shape (keys, arrays, numbers, nesting), what is parsed is bounded by the route's needs, not by the body's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from ml.schema import FEATURES
from service.errors import ProblemError


def _malformed(reason: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(reason, "", 0)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object as a dict; a repeated key is refused."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _malformed(f"duplicate key {json.dumps(key[:100])}")
            seen.add(key)
    return obj


def most_values(body: bytes) -> int:
    """How many JSON values `body` can hold at most (an object's member counts as one value)."""
    return body.count(b",") + body.count(b"[") + body.count(b"{") + 1


def parse_json(body: bytes, max_values: int) -> Any:
    """The body as JSON; a body that may hold more than `max_values` values is a 422 `ProblemError`, any other
    failure a `json.JSONDecodeError` saying what is wrong."""
    values = most_values(body)
    if values > max_values:
        reason = (
            f"The body holds up to {values:,} JSON values (counting ',', '[' and '{{'); no request needs more than "
            f"{max_values:,}: a record takes exactly the {len(FEATURES)} feature columns"
        )
        raise ProblemError(422, "invalid_input", reason)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise _malformed("arrays or objects nested too deeply") from None
    except ValueError:  # the only other ValueError json raises: int() refusing more than 4,300 digits
        raise _malformed("a number with too many digits") from None


class JsonBodyRequest(Request):
    def __init__(self, scope: Scope, receive: Receive, max_values: int) -> None:
        super().__init__(scope, receive)
        self.max_values = max_values

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body(), self.max_values)
        return self._json


class JsonBodyRoute(APIRoute):
    """An APIRoute whose handler sees a `JsonBodyRequest` (FastAPI's documented way to customise body parsing)."""

    #: The most values one body may hold; `json_body_route` makes a route class with its own.
    max_values: ClassVar[int]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        max_values = self.max_values

        async def strict_json_handler(request: Request) -> Response:
            return await handler(JsonBodyRequest(request.scope, request.receive, max_values))

        return strict_json_handler


def json_body_route(max_values: int) -> type[JsonBodyRoute]:
    """A `JsonBodyRoute` class whose bodies hold at most `max_values` values."""
    return type("JsonBodyRoute", (JsonBodyRoute,), {"max_values": max_values})
