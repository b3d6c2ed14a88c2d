"""POST /predict and /predict/batch: validate the raw JSON body in pydantic-core, predict, answer.

This is the hot path, so it avoids what costs more than the model itself (a LightGBM row takes ~10 us): the body
is validated straight from bytes (`model_validate_json`), one record goes to the predictor's single-row path as a
tuple (no numpy, no pandas), the answer is written with the json module (no response-model round trip), and
the app state and the `explain` flag are read directly instead of through FastAPI dependencies, which would
cost several times the prediction. The routes are `async def`: a thread-pool hop would cost more too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ml.predict import Prediction, Predictor
from ml.schema import CLASSES, FEATURE_NAMES
from service.dependencies import ready_predictor
from service.errors import ApiError, Problem, invalid_input
from service.model_state import ModelState
from service.observability import Metrics
from service.openapi import json_body
from service.responses import json_response
from service.schemas import BatchResponse, ErrorResponse, PatientRecord, PredictionResponse
from service.settings import Settings

_LABELS = tuple(c.label for c in CLASSES)
_N_FEATURES = len(FEATURE_NAMES)
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})

#: The `explain` query parameter, declared by hand because the routes parse it themselves.
EXPLAIN_PARAMETER: dict[str, Any] = {
    "name": "explain",
    "in": "query",
    "required": False,
    "description": "Also return the top features behind each prediction (TreeSHAP); slower.",
    "schema": {"type": "boolean", "default": False},
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body larger than the configured limit."},
    415: {"model": ErrorResponse, "description": "Body not sent as application/json."},
    422: {"model": ErrorResponse, "description": "Invalid body or query: each problem with its field (and index)."},
    503: {"model": ErrorResponse, "description": "The model is not loaded; the reason says why."},
}


def _openapi(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {**json_body(model, description), "parameters": [EXPLAIN_PARAMETER]}


def wants_explanation(request: Request) -> bool:
    """The `explain` flag with pydantic's boolean spellings; anything else is a 422 naming the parameter."""
    if not request.scope["query_string"]:
        return False
    query = request.scope["query_string"].decode("latin-1")
    values = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "explain"]
    if not values:
        return False
    value = values[-1].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    reason = f"Input should be a valid boolean (true or false), got {values[-1]!r}"
    raise ApiError(422, "invalid_input", f"query.explain: {reason}", (Problem("query.explain", reason),))


async def json_bytes(request: Request) -> bytes:
    """The raw body, refusing non-JSON media types (FastAPI's rule: no Content-Type is read as JSON)."""
    content_type = next((value for name, value in request.scope["headers"] if name == b"content-type"), None)
    if content_type:
        media = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
        if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
            reason = f"Send the body as JSON with Content-Type: application/json (got {media or 'an empty type'})"
            raise ApiError(415, "unsupported_media_type", reason, (Problem("body", reason),))
    return await request.body()


async def _accept(request: Request, model: type[BaseModel], *, batch: bool) -> tuple[Predictor, bool, BaseModel]:
    """Checks in the order a client can act on: model ready (503), query (422), media type (415), body (422)."""
    state: ModelState = request.app.state.model
    predictor = ready_predictor(state)
    explain = wants_explanation(request)
    try:
        return predictor, explain, model.model_validate_json(await json_bytes(request))
    except ValidationError as exc:
        raise invalid_input(exc, batch=batch) from None


def prediction_dict(prediction: Prediction, version: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "prediction": prediction.class_id,
        "name": prediction.name,
        "label": prediction.label,
        "probabilities": dict(zip(_LABELS, prediction.probabilities, strict=True)),
        "model_version": version,
    }
    if prediction.explanation is not None:
        answer["explanation"] = [
            {"feature": c.feature, "value": c.value, "value_label": c.value_label, "contribution": c.contribution}
            for c in prediction.explanation
        ]
    return answer


def record_rows(records: Sequence[BaseModel]) -> np.ndarray:
    """Validated records to a float64 matrix in schema order (the model's fields are declared in that order)."""
    rows = np.empty((len(records), _N_FEATURES), dtype=np.float64)
    for i, record in enumerate(records):
        rows[i] = tuple(record.__dict__.values())
    return rows


def build_router(batch_model: type[BaseModel], batch_limit: int) -> APIRouter:
    """The batch body's record limit is a setting, hence a router per app."""
    router = APIRouter(tags=["prediction"])

    @router.post(
        "/predict",
        summary="Predict the diabetes status of one person",
        response_model=PredictionResponse,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
        openapi_extra=_openapi(PatientRecord, "The 21 indicators, keyed by column name; no other keys."),
    )
    async def predict(request: Request) -> Response:
        predictor, explain, record = await _accept(request, PatientRecord, batch=False)
        settings: Settings = request.app.state.settings
        row = tuple(record.__dict__.values())
        prediction = predictor.predict_one(row, explain=explain, top_k=settings.explain_top_k)
        metrics: Metrics = request.app.state.metrics
        metrics.count_prediction(prediction.class_id)
        return json_response(prediction_dict(prediction, predictor.version))

    @router.post(
        "/predict/batch",
        summary=f"Predict up to {batch_limit:,} records at once",
        response_model=BatchResponse,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
        openapi_extra=_openapi(batch_model, f"`records`: 1 to {batch_limit:,} records as for POST /predict."),
    )
    async def predict_batch(request: Request) -> Response:
        predictor, explain, batch = await _accept(request, batch_model, batch=True)
        settings: Settings = request.app.state.settings
        rows = record_rows(batch.records)  # type: ignore[attr-defined]
        if explain:  # TreeSHAP on many rows takes long enough to block the event loop; LightGBM releases the GIL
            predictions = await run_in_threadpool(
                predictor.predict_rows, rows, explain=True, top_k=settings.explain_top_k
            )
        else:
            predictions = predictor.predict_rows(rows)
        metrics: Metrics = request.app.state.metrics
        metrics.count_predictions([p.class_id for p in predictions])
        version = predictor.version
        answers = [prediction_dict(p, version) for p in predictions]
        return json_response({"predictions": answers, "model_version": version})

    return router
