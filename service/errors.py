"""One error shape for every failure: `{"error", "reason", "errors": [{"field", "reason", "index"}], "request_id"}`.

Pydantic's messages are kept (they are precise) but rewritten where they would leak implementation details, e.g.
integer codes are parsed as floats, so "should be a multiple of 1" becomes "should be a whole number".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ml.schema import FEATURES_BY_NAME, Feature
from service.schemas import WHOLE_NUMBER_ERROR

#: A garbage batch can hold 21,000 problems; the first ones are enough to fix the input.
MAX_REPORTED_ERRORS = 100

_NUMBER_TYPES = {"float_type", "float_parsing", "int_type", "int_parsing"}


@dataclass(frozen=True)
class Problem:
    field: str
    reason: str
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason, "index": self.index}


@dataclass(eq=False)
class ApiError(Exception):
    """Raised by routes and middleware; rendered as the common error body."""

    status: int
    code: str
    reason: str
    problems: Sequence[Problem] = field(default_factory=tuple)
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.reason)


def request_id_of(scope: dict[str, Any] | Any) -> str:
    state = scope.get("state") or {}
    return str(state.get("request_id", "-"))


def error_body(status_code: str, reason: str, problems: Iterable[Problem], request_id: str) -> bytes:
    body = {
        "error": status_code,
        "reason": reason,
        "errors": [p.to_dict() for p in problems],
        "request_id": request_id,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def error_response(exc: ApiError, request_id: str) -> Response:
    problems = exc.problems or (Problem("body", exc.reason),)
    return Response(
        error_body(exc.code, exc.reason, problems, request_id),
        status_code=exc.status,
        media_type="application/json",
        headers=exc.headers,
    )


def _allowed(feature: Feature) -> str:
    whole = "whole numbers" if feature.integer else "numbers"
    return f"allowed: {whole} from {feature.minimum} to {feature.maximum}"


def _not_a_number(feature: Feature) -> str:
    """The reason for a value of the wrong type or a fraction in a whole-number field."""
    return f"Input should be {'a whole number' if feature.integer else 'a number'} ({_allowed(feature)})"


_FIXED_REASONS = {
    "missing": "Field required",
    "extra_forbidden": "Unknown field; the body takes exactly the 21 feature columns (see the OpenAPI schema)",
}
_RANGE_TYPES = {"greater_than_equal", "less_than_equal", "finite_number"}


def _reason(error: ErrorDetails, name: str) -> str:
    kind = error["type"]
    if kind in _FIXED_REASONS:
        return _FIXED_REASONS[kind]
    if kind == "json_invalid":
        return f"Malformed JSON: {(error.get('ctx') or {}).get('error', error['msg'])}"
    feature = FEATURES_BY_NAME.get(name)
    reason = str(error["msg"])
    if feature is not None:
        if kind == "multiple_of" or kind in _NUMBER_TYPES:
            reason = _not_a_number(feature)
        elif kind in _RANGE_TYPES:
            reason = f"{reason} ({_allowed(feature)})"
    return reason


def _location(loc: Sequence[int | str], *, batch: bool) -> tuple[str, int | None]:
    """`records.3.HighBP` -> (HighBP, 3); `records.3` -> (record, 3); `HighBP` -> (HighBP, None); `()` -> body."""
    if batch and len(loc) >= 2 and loc[0] == "records" and isinstance(loc[1], int):
        rest = loc[2:]
        return (".".join(str(part) for part in rest) if rest else "record"), loc[1]
    return (".".join(str(part) for part in loc) or "body"), None


def problems_from(errors: Sequence[ErrorDetails], *, batch: bool) -> list[Problem]:
    """One Problem per pydantic error, located by record index and field."""
    problems: list[Problem] = []
    for error in errors:
        path, index = _location(error["loc"], batch=batch)
        if error["type"] == WHOLE_NUMBER_ERROR:  # raised once per record, naming every field concerned
            for name in str((error.get("ctx") or {}).get("fields", "")).split(", "):
                problems.append(Problem(name, _not_a_number(FEATURES_BY_NAME[name]), index))
            continue
        problems.append(Problem(path, _reason(error, path), index))
    return problems


def invalid_input(exc: ValidationError | RequestValidationError, *, batch: bool = False) -> ApiError:
    """422 from a validation failure, at most MAX_REPORTED_ERRORS problems, the total stated in the reason."""
    if isinstance(exc, RequestValidationError):
        problems = _request_validation_problems(exc)
    else:
        problems = problems_from(exc.errors(include_url=False, include_input=False), batch=batch)
    shown = problems[:MAX_REPORTED_ERRORS]
    records = {p.index for p in problems if p.index is not None}
    where = f" in {len(records)} record(s)" if records else ""
    more = f"; the first {len(shown)} are listed" if len(problems) > len(shown) else ""
    summary = "; ".join(f"{p.field}: {p.reason}" for p in shown[:3])
    return ApiError(422, "invalid_input", f"{len(problems)} invalid value(s){where}{more}. {summary}", shown)


def _request_validation_problems(exc: RequestValidationError) -> list[Problem]:
    """FastAPI's own validation (query parameters): locations start with `query`, `path` or `body`."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        problems.append(Problem(".".join(loc) or "request", str(error.get("msg", "invalid value"))))
    return problems


def install_handlers(app: FastAPI) -> None:
    """Render ApiError, FastAPI's validation errors and Starlette's HTTP errors (404, 405) in the common shape."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc, request_id_of(request.scope))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(invalid_input(exc), request_id_of(request.scope))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        field_name = "method" if exc.status_code == 405 else "path"
        reason = f"{exc.detail}: {request.method} {request.url.path}"
        problem = Problem(field_name, reason)
        return error_response(
            ApiError(exc.status_code, code, reason, (problem,), dict(exc.headers or {})), request_id_of(request.scope)
        )

    app.add_exception_handler(ApiError, on_api_error)
    # A safety net: no route declares FastAPI-validated parameters today (the predict routes parse their query and
    # body themselves), so this handler is unreachable until one does; then its errors still get the common shape.
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
