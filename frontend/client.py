"""A small HTTP client for the prediction service, with timeouts and one error type per way a call can fail.

Every error carries a message written for the person using the UI; the UI shows it as is, never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ml.schema import CLASSES

Record = Mapping[str, float | int | str | None]


class ApiError(Exception):
    """Any failure to get an answer; `message` is what the user reads, `detail` what support needs (if any)."""

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


class ServiceError(ApiError):
    """The service answered with an unexpected status or a body the UI cannot read."""


@dataclass(frozen=True)
class FieldError:
    """One problem with one value of one record, as the service reported it."""

    field: str
    reason: str
    index: int | None = None


class InvalidInputError(ApiError):
    """The service refused the input (HTTP 422/413); `errors` says which record and field, and why."""

    def __init__(self, message: str, errors: Sequence[FieldError]) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


@dataclass(frozen=True)
class Factor:
    """One feature's push on the predicted class (positive: towards it)."""

    feature: str
    value: float
    value_label: str
    contribution: float


@dataclass(frozen=True)
class PredictionResult:
    """The service's answer for one record; probabilities in the order of `ml.schema.CLASSES`."""

    prediction: int
    label: str
    probabilities: tuple[float, ...]
    model_version: str
    explanation: tuple[Factor, ...] = ()


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

    def model_info(self) -> dict[str, Any]:
        """The `/model` document: version, training date, metrics, schema."""
        body = self._call("GET", "/model")
        if not isinstance(body, dict):
            raise ServiceError(self._unreadable("/model"))
        return body

    def predict(self, record: Record, *, explain: bool = True) -> PredictionResult:
        """One prediction; with `explain`, the top factors too."""
        params = {"explain": "true"} if explain else None
        body = self._call("POST", "/predict", json=dict(record), params=params)
        return self._prediction(body, "/predict")

    def predict_batch(self, records: Sequence[Record]) -> list[PredictionResult]:
        """Predictions for up to the service's batch limit of records, in order."""
        body = self._call("POST", "/predict/batch", json={"records": [dict(r) for r in records]})
        items = body.get("predictions") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(records):
            raise ServiceError(self._unreadable("/predict/batch"))
        return [self._prediction(item, "/predict/batch") for item in items]

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
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
        if response.status_code == 503:
            raise ServiceNotReadyError(
                "The prediction service is running but cannot make predictions right now (its model is not "
                "loaded). Try again in a minute; if this keeps happening, tell the people who run the service.",
                _reason(body),
            )
        if response.status_code in (413, 422):
            errors = _field_errors(body)
            raise InvalidInputError(_invalid_message(errors, response.status_code), errors)
        if response.status_code >= 400 or body is None:
            reason = _reason(body)
            raise ServiceError(
                "The prediction service answered with an error. Try again later.",
                f"HTTP {response.status_code}: {reason}" if reason else f"HTTP {response.status_code}",
            )
        return body

    def _prediction(self, body: Any, path: str) -> PredictionResult:
        try:
            return _parse_prediction(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceError(self._unreadable(path)) from exc

    def _unreachable(self) -> ServiceUnreachableError:
        return ServiceUnreachableError(
            "The prediction service cannot be reached right now. Try again in a minute; if this keeps happening, "
            "tell the people who run the service.",
            f"nothing answers at {self.base_url}: check that the service runs and that API_URL points to it",
        )

    def _unreadable(self, path: str) -> str:
        return f"The prediction service sent an answer to {path} that this app cannot read; is it the same version?"


def _parse_prediction(body: Any) -> PredictionResult:
    probabilities = body["probabilities"]
    by_key = {str(k): float(v) for k, v in probabilities.items()}
    ordered = tuple(by_key[c.label] for c in CLASSES)
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in ordered):
        raise ValueError("probabilities outside [0, 1]")
    prediction = int(body["prediction"])
    if not 0 <= prediction < len(CLASSES):
        raise ValueError(f"unknown class {prediction}")
    factors = tuple(
        Factor(str(f["feature"]), float(f["value"]), str(f["value_label"]), float(f["contribution"]))
        for f in body.get("explanation") or ()
    )
    return PredictionResult(prediction, str(body["label"]), ordered, str(body["model_version"]), factors)


def _reason(body: Any) -> str | None:
    """The human part of an error body, whatever its exact layout."""
    if isinstance(body, dict):
        for key in ("reason", "detail", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                nested = _reason(value)
                if nested:
                    return nested
        errors = _field_errors(body)
        if errors:
            return "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return None


def _field_errors(body: Any) -> list[FieldError]:
    if not isinstance(body, dict):
        return []
    items = body.get("errors", body.get("detail"))
    if not isinstance(items, list):
        return []
    errors = []
    for item in items:
        if isinstance(item, dict):
            index = item.get("index")
            errors.append(
                FieldError(
                    field=str(item.get("field") or ""),
                    reason=str(item.get("reason") or item.get("msg") or "invalid value"),
                    index=int(index) if isinstance(index, int) else None,
                )
            )
    return errors


def _invalid_message(errors: Sequence[FieldError], status: int) -> str:
    if status == 413:
        return "The request was too large for the prediction service; send fewer rows at a time."
    if not errors:
        return "The prediction service refused the input."
    shown = "; ".join(f"{e.field or 'input'}: {e.reason}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"The prediction service refused the input: {shown}{more}."
