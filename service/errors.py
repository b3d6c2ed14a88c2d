"""Every failure answers with `ml.contract.ErrorResponse`: `{"error", "reason", "errors": [...], "request_id"}`.

FastAPI validates the requests; the handlers here reword its errors for people (pydantic's messages are kept where
they are precise, rewritten where they would leak implementation details: integer codes are parsed as floats, so
"should be a multiple of 1" becomes "should be a whole number") and locate each by field and record index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ml.contract import MAX_REPORTED_ERRORS, UNKNOWN_FIELDS_ERROR, WHOLE_NUMBER_ERROR, ErrorResponse, FieldError
from ml.schema import FEATURES_BY_NAME, Feature

_NUMBER_TYPES = frozenset({"float_type", "float_parsing", "int_type", "int_parsing", "multiple_of"})
_RANGE_TYPES = frozenset({"greater_than_equal", "less_than_equal", "finite_number"})
_EXACTLY_THE_FEATURES = f"the body takes exactly the {len(FEATURES_BY_NAME)} feature columns (see the OpenAPI schema)"
_FIXED_REASONS = {
    "missing": "Field required",
    "extra_forbidden": f"Unknown field; {_EXACTLY_THE_FEATURES}",
}


#: The most characters of a client's own text (an unknown key, a path) an error repeats: a 1.9 MB key was echoed
#: twice in a 3.8 MB answer.
EXCERPT_CHARS = 100


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of `text`, safe to write as UTF-8: JSON may carry lone surrogates (`"\\ud800"`),
    which no UTF-8 encoder takes, so they are shown escaped (`\\ud800`) rather than failing the answer."""
    short = text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
    return short.encode("utf-8", "backslashreplace").decode("utf-8")


class ProblemError(StarletteHTTPException):
    """Raised by routes, dependencies, body parsing and middleware; answered as an ErrorResponse with this status.

    An HTTPException, so FastAPI lets it through from `Request.json()` as it does its own.
    """

    def __init__(
        self,
        status: int,
        code: str,
        reason: str,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        *,
        field: str = "body",
    ) -> None:
        """`errors` lists the problems; without them, the reason is the one problem, located at `field`."""
        super().__init__(status, reason, headers)
        self.code = code
        self.reason = reason
        self.errors = tuple(errors) or (FieldError(field=field, reason=reason),)


def request_id_of(scope: Any) -> str:
    state = scope.get("state") or {}
    return str(state.get("request_id", "-"))


def error_body(problem: ProblemError, request_id: str) -> bytes:
    body = ErrorResponse(error=problem.code, reason=problem.reason, errors=list(problem.errors), request_id=request_id)
    return body.model_dump_json().encode()


def raw_error(problem: ProblemError, request_id: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and content headers of an answer written below FastAPI (ASGI middleware, uvicorn's protocol)."""
    body = error_body(problem, request_id)
    return body, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]


def error_response(problem: ProblemError, request_id: str) -> Response:
    return Response(
        error_body(problem, request_id),
        status_code=problem.status_code,
        media_type="application/json",
        headers=problem.headers,
    )


def _not_a_number(feature: Feature) -> str:
    """The reason for a value of the wrong type or a fraction in a whole-number field."""
    return f"Input should be {'a whole number' if feature.integer else 'a number'} ({feature.allowed_values()})"


def _reason(error: dict[str, Any], name: str) -> str:
    kind = error["type"]
    if kind == "missing" and name == "body":
        return "The body is empty; send the record as one JSON object"
    if kind in _FIXED_REASONS:
        return _FIXED_REASONS[kind]
    if kind == "json_invalid":
        return f"Malformed JSON: {(error.get('ctx') or {}).get('error', error['msg'])}"
    if kind == UNKNOWN_FIELDS_ERROR:
        context = error["ctx"]
        examples = ", ".join(excerpt(str(name), 40) for name in context["examples"])
        return f"{context['count']:,} unknown fields ({examples}, ...); {_EXACTLY_THE_FEATURES}"
    feature = FEATURES_BY_NAME.get(name)
    reason = str(error["msg"])
    if feature is not None:
        if kind in _NUMBER_TYPES:
            reason = _not_a_number(feature)
        elif kind in _RANGE_TYPES:
            reason = f"{reason} (allowed: {feature.allowed_values()})"
    return reason


def _located(loc: Sequence[int | str]) -> tuple[str, int | None]:
    """FastAPI locations to (field, record index).

    `body.records.3.HighBP` -> (HighBP, 3); `body.records.3` -> (record, 3); `body.HighBP` -> (HighBP, None);
    `body.12` (a JSON syntax error at byte 12) and `body` -> (body, None); `query.explain` -> (query.explain, None).
    """
    source, *rest = loc or ("body",)
    if source != "body":
        return ".".join(str(part) for part in loc), None
    if len(rest) >= 2 and rest[0] == "records" and isinstance(rest[1], int):
        return ".".join(str(part) for part in rest[2:]) or "record", rest[1]
    if not rest or isinstance(rest[0], int):
        return "body", None
    return ".".join(str(part) for part in rest), None


def field_errors(errors: Sequence[dict[str, Any]]) -> list[FieldError]:
    """One FieldError per problem; a fraction in several whole-number fields of a record gives one per field."""
    found: list[FieldError] = []
    for error in errors:
        field, index = _located(error.get("loc", ()))
        if error["type"] == WHOLE_NUMBER_ERROR:  # raised once per record, naming every field concerned
            for name in str((error.get("ctx") or {}).get("fields", "")).split(", "):
                found.append(FieldError(field=name, reason=_not_a_number(FEATURES_BY_NAME[name]), index=index))
            continue
        found.append(FieldError(field=excerpt(field), reason=excerpt(_reason(error, field), 1000), index=index))
    return found


def not_json(errors: Sequence[dict[str, Any]], content_type: str | None) -> ProblemError | None:
    """415 when FastAPI left the body as bytes.

    FastAPI reads a body as JSON only for `application/json` or `application/<subtype>+json` (its strict content-type
    rule; a request without Content-Type is not JSON either).
    """
    if not any(e.get("loc") == ("body",) and isinstance(e.get("input"), bytes | bytearray) for e in errors):
        return None
    media = excerpt((content_type or "").split(";", 1)[0].strip().lower() or "no Content-Type")
    reason = f"Send the body as JSON with Content-Type: application/json (got {media})"
    return ProblemError(415, "unsupported_media_type", reason)


def invalid_input(errors: Sequence[dict[str, Any]]) -> ProblemError:
    """422 from validation errors: at most MAX_REPORTED_ERRORS problems.

    Validation stops once it found that many (`ml.contract`), so then the reason says so instead of a total.
    """
    problems = field_errors(errors)
    shown = problems[:MAX_REPORTED_ERRORS]
    records = len({p.index for p in shown if p.index is not None})
    summary = "; ".join(f"{p.field}: {p.reason}" for p in shown[:3])
    if len(problems) >= MAX_REPORTED_ERRORS:
        reason = f"Checking stopped at {len(shown)} problems ({records} record(s)); fix these and send again. {summary}"
    else:
        where = f" in {records} record(s)" if records else ""
        reason = f"{len(problems)} invalid value(s){where}. {summary}"
    return ProblemError(422, "invalid_input", reason, shown)


def _route_without_slash(request: Request) -> str | None:
    """The route a path names but for its trailing slash (a 404 since the service no longer redirects it to the
    request's own Host: review 16, F4; the answer says so, review 17, N7)."""
    path = request.url.path
    stripped = path.rstrip("/")
    if stripped == path or not stripped:
        return None
    return stripped if stripped in getattr(request.app.state, "route_paths", ()) else None


def install_handlers(app: FastAPI) -> None:
    """Answer ProblemError, FastAPI's validation errors and Starlette's HTTP errors (404, 405) in the common shape."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return error_response(exc, request_id_of(request.scope))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        problem = not_json(errors, request.headers.get("content-type")) or invalid_input(errors)
        return error_response(problem, request_id_of(request.scope))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        field = "method" if exc.status_code == 405 else "path"
        reason = f"{exc.detail}: {request.method} {excerpt(request.url.path)}"
        if exc.status_code == 404 and (route := _route_without_slash(request)):
            reason += f"; paths end without a slash: {route}"
        headers = dict(exc.headers) if exc.headers else None
        problem = ProblemError(exc.status_code, code, reason, headers=headers, field=field)
        return error_response(problem, request_id_of(request.scope))

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
