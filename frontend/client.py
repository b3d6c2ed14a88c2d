"""A small HTTP client for the prediction service: answers parsed with `ml.contract`, one error type per failure.

Every error carries a message written for the person using the UI; the UI shows it as is, never a traceback. What
the people who run the service need (the service's internal address, its status and reason) is logged here, never
shown on the page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ml.contract import BatchResponse, ErrorResponse, FieldError, ModelResponse, PredictionResponse

Record = Mapping[str, float | int | str | None]
Answer = TypeVar("Answer", bound=BaseModel)

logger = logging.getLogger("frontend.client")


class ApiError(Exception):
    """Any failure to get an answer; `message` is what the user reads, `detail` what support needs (logged)."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(f"{message} ({detail})" if detail else message)
        self.message = message
        self.detail = detail


class ServiceUnreachableError(ApiError):
    """Nothing answers at the configured address (service down, wrong API_URL, network)."""


class ServiceTimeoutError(ApiError):
    """The service accepted the request but did not answer in time."""


class ServiceNotReadyError(ApiError):
    """The service runs but cannot predict yet (HTTP 503), e.g. its model is missing or still loading."""


class UnexpectedAnswerError(ApiError):
    """The service answered with an unexpected status or a body that does not follow `ml.contract`."""


class InvalidInputError(ApiError):
    """The service refused the input (HTTP 422/413); `errors` says which record and field, and why."""

    def __init__(self, message: str, errors: Sequence[FieldError]) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


class ApiClient:
    """Calls the prediction service; one instance per base URL, safe to share between reruns."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        connect_timeout_seconds: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        timeout = httpx.Timeout(timeout_seconds, connect=min(connect_timeout_seconds, timeout_seconds))
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def ready(self) -> None:
        """Return when the service can predict; raise an `ApiError` saying why it cannot."""
        self._call("GET", "/ready")

    def model_info(self) -> ModelResponse:
        """The `/model` document: version, training date, metrics, schema, batch limit."""
        return self._parse(ModelResponse, self._call("GET", "/model"), "/model")

    def predict(self, record: Record, *, explain: bool = True) -> PredictionResponse:
        """One prediction; with `explain`, the top factors too."""
        params = {"explain": "true"} if explain else None
        body = self._call("POST", "/predict", json=dict(record), params=params)
        return self._parse(PredictionResponse, body, "/predict")

    def predict_batch(self, records: Sequence[Record]) -> list[PredictionResponse]:
        """Predictions for up to the service's batch limit of records (`model_info().batch_limit`), in order."""
        body = self._call("POST", "/predict/batch", json={"records": [dict(r) for r in records]})
        answers = self._parse(BatchResponse, body, "/predict/batch").predictions
        if len(answers) != len(records):
            raise UnexpectedAnswerError(_unreadable("/predict/batch"))
        return answers

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._request(method, path, **kwargs)
        except ApiError as exc:
            if exc.detail:
                logger.warning(
                    "call to the prediction service failed: %s",
                    exc.detail,
                    extra={"call": f"{method} {path}", "api_url": self.base_url},
                )
            raise

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise self._unreachable() from exc
            raise ServiceTimeoutError(
                f"The prediction service did not answer within {self._http.timeout.read:g} seconds. "
                "It may be busy: try again in a moment.",
                f"{method} {self.base_url}{path} timed out",
            ) from exc
        except httpx.TransportError as exc:
            raise self._unreachable() from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400 and body is not None:
            return body
        error = _error(body)
        if response.status_code == 503:
            raise ServiceNotReadyError(
                "The prediction service is running but cannot make predictions right now (its model is not "
                "loaded). Try again in a minute; if this keeps happening, tell the people who run the service.",
                error.reason if error else None,
            )
        if response.status_code in (413, 422) and error is not None:
            raise InvalidInputError(_invalid_message(error, response.status_code), error.errors)
        raise UnexpectedAnswerError(
            "The prediction service answered with an error. Try again later.",
            f"HTTP {response.status_code}: {error.reason}" if error else f"HTTP {response.status_code}",
        )

    def _parse(self, model: type[Answer], body: Any, path: str) -> Answer:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise UnexpectedAnswerError(_unreadable(path)) from exc

    def _unreachable(self) -> ServiceUnreachableError:
        return ServiceUnreachableError(
            "The prediction service cannot be reached right now. Try again in a minute; if this keeps happening, "
            "tell the people who run the service.",
            f"nothing answers at {self.base_url}: check that the service runs and that API_URL points to it",
        )


def _unreadable(path: str) -> str:
    return f"The prediction service sent an answer to {path} that this app cannot read; is it the same version?"


def _error(body: Any) -> ErrorResponse | None:
    """The service's error body, or None when the answer is not one (a proxy's page, an empty body)."""
    try:
        return ErrorResponse.model_validate(body)
    except ValidationError:
        return None


def _invalid_message(error: ErrorResponse, status: int) -> str:
    if status == 413:
        return "The request was too large for the prediction service; send fewer rows at a time."
    shown = "; ".join(f"{e.field}: {e.reason}" for e in error.errors[:3])
    more = f" (and {len(error.errors) - 3} more)" if len(error.errors) > 3 else ""
    return f"The prediction service refused the input: {shown}{more}."
