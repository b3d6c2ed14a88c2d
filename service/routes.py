"""The endpoints: prediction (`POST /predict`, `POST /predict/batch`) and operations (`/health`, `/ready`, `/model`,
`/metrics`). Routes declare their body, query and dependencies; FastAPI validates, documents and serialises them.
"""

# No `from __future__ import annotations`: FastAPI reads the batch body's model, made per app, from the signature.

import functools
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from ml.contract import (
    MAX_KEYS_PER_RECORD,
    BatchResponse,
    ErrorResponse,
    HealthResponse,
    ModelResponse,
    PatientRecord,
    PredictionResponse,
    ReadyResponse,
    TrainingData,
    batch_request_model,
    responses,
    top_contributions,
)
from ml.inference.predictor import Predictions, Predictor
from service.dependencies import (
    MetricsDep,
    ModelStateDep,
    PredictorDep,
    ServingDep,
    ServingPredictorDep,
    SettingsDep,
)
from service.json_body import json_body_route


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


#: What any route may answer before or around it (the server's protocol, `service.middleware`, the error handlers),
#: in the same `ErrorResponse` shape: documented on every operation, so generated clients can read them.
SERVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Not valid HTTP/1.1 (e.g. a conflicting Content-Length and Transfer-Encoding); connection closed."),
    404: _error("No such route: paths are matched exactly (`/predict/` is not `/predict`)."),
    405: _error("The route does not take this method."),
    408: _error("The request's head or body did not arrive in time; connection closed."),
    413: _error("A body larger than the configured limit (any method)."),
    414: _error("A request line (path and query) longer than the configured limit."),
    431: _error("A header line, or all headers together, larger than the configured limits, or too many headers."),
    500: _error("An unexpected error; the reason quotes the request id to report."),
    501: _error("A transfer coding other than `chunked` (e.g. `gzip, chunked`); send the body uncoded or chunked."),
    503: _error(
        "`overloaded`: more requests at once than the service handles (retry after `Retry-After`); "
        "`shutting_down`: the instance is stopping; `model_loading` / `model_unavailable`: no model to answer with."
    ),
}
#: What the prediction routes add: their body's problems.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    415: _error("Body not sent as JSON (Content-Type application/json)."),
    422: _error("Invalid body or query: each problem with its field (and index)."),
}
#: The probes: never refused as overloaded, so a busy instance does not look dead to its load balancer.
PROBE_PATHS = frozenset({"/health", "/ready"})
#: Where Prometheus scrapes the metrics.
METRICS_PATH = "/metrics"
#: Never refused by a budget of work in flight or of answers held (their answers are a few KB): the probes, and the
#: metrics, which tell an operator why the others are refused (11 slow downloads of the docs' script once took
#: every place in flight and `/metrics` answered 503 too, review 7, R7-4).
ALWAYS_ANSWERED = PROBE_PATHS | {METRICS_PATH}
#: A single prediction: its answer is under 1 KB unless it is explained.
PREDICT_PATH = "/predict"
#: The batches: admitted by their bytes in flight, apart from single requests (`service.middleware.Admission`).
BATCH_PATH = "/predict/batch"

Explain = Annotated[bool, Query(description="Also return the top features behind each prediction (TreeSHAP); slower.")]


def answers(predictions: Predictions, rows: np.ndarray, predictor: Predictor, top_k: int) -> list[PredictionResponse]:
    """One response per row, with its screening, and its top factors when the predictions carry contributions."""
    contributions = predictions.contributions
    explanations = (
        None
        if contributions is None
        else [top_contributions(r, c, top_k) for r, c in zip(rows, contributions, strict=True)]
    )
    # As Python numbers: the answers read them one by one, which costs several times more on numpy's scalars.
    return responses(
        predictions.classes.tolist(),
        predictions.probabilities.tolist(),
        predictions.screening_probabilities.tolist(),
        rows.tolist(),
        predictor.manifest,
        explanations,
    )


def _scored(
    records: Sequence[PatientRecord], predictor: Predictor, top_k: int, explain: bool
) -> tuple[Predictions, list[PredictionResponse]]:
    """A batch's predictions and answers, in a worker thread: LightGBM releases the GIL, and the rows, the
    explanations and the answers of 1,000 records are 50-470 ms the event loop would not answer anything else."""
    rows = np.array([record.as_row() for record in records])
    predictions = predictor.predict(rows, explain=explain)
    return predictions, answers(predictions, rows, predictor, top_k)


def prediction_routers(batch_limit: int) -> list[APIRouter]:
    """The prediction routes, one router each (each with its own value budget); the batch body's record limit is a
    setting, hence routers per app."""
    BatchRequest = batch_request_model(batch_limit)  # noqa: N806  (a class)
    # What each body may hold (`service.json_body`): a record of as many keys as errors name one by one (the object
    # and its members); a full batch of them, their array and the object around it.
    common: dict[str, Any] = {"tags": ["prediction"], "responses": SERVER_RESPONSES}
    single = APIRouter(route_class=json_body_route(max_values=MAX_KEYS_PER_RECORD + 1), **common)
    batch = APIRouter(route_class=json_body_route(max_values=batch_limit * (MAX_KEYS_PER_RECORD + 1) + 2), **common)

    @single.post(
        PREDICT_PATH,
        summary="Predict the diabetes status of one person",
        response_model=PredictionResponse,
        response_model_exclude_none=True,
        responses=BODY_RESPONSES,
    )
    async def predict(
        record: PatientRecord, serving: ServingDep, request: Request, explain: Explain = False
    ) -> PredictionResponse:
        if explain:  # TreeSHAP, about 6 ms: in a worker thread and the explained records' budget, as batches
            score = functools.partial(_scored, [record], serving.predictor, serving.settings.explain_top_k, explain)
            explained, answered = await serving.batches.run(
                score, records=1, explain=explain, client_gone=request.is_disconnected
            )
            serving.metrics.count_predictions(explained.classes)
            return answered[0]
        row = np.array([record.as_row()])
        predictions = serving.predictor.predict(row, explain=explain)
        serving.metrics.count_predictions(predictions.classes)
        return answers(predictions, row, serving.predictor, serving.settings.explain_top_k)[0]

    @batch.post(
        BATCH_PATH,
        summary=f"Predict up to {batch_limit:,} records at once",
        response_model=BatchResponse,
        response_model_exclude_none=True,
        responses=BODY_RESPONSES,
    )
    async def predict_batch(
        batch: BatchRequest,  # type: ignore[valid-type]
        serving: ServingDep,
        request: Request,
        explain: Explain = False,
    ) -> BatchResponse:
        predictor = serving.predictor
        records = batch.records  # type: ignore[attr-defined]
        score = functools.partial(_scored, records, predictor, serving.settings.explain_top_k, explain)
        predictions, answered = await serving.batches.run(
            score, records=len(records), explain=explain, client_gone=request.is_disconnected
        )
        serving.metrics.count_predictions(predictions.classes)
        return BatchResponse(predictions=answered, model_version=predictor.version)

    return [single, batch]


operations_router = APIRouter(responses=SERVER_RESPONSES)


# The probes answer HEAD too (FastAPI routes GET alone): uptime monitors and some load balancers probe with it. The
# HEAD route is registered after the GET one (the upper decorator runs last), so a 405 (OPTIONS, POST) names GET in
# its `Allow`, the method the schema documents.
@operations_router.head("/health", include_in_schema=False)
@operations_router.get(
    "/health", tags=["probes"], summary="Liveness: the process serves requests", response_model=HealthResponse
)
async def health() -> HealthResponse:
    return HealthResponse(status="ok")


@operations_router.head("/ready", include_in_schema=False)
@operations_router.get(
    "/ready",
    tags=["probes"],
    summary="Readiness: the model is loaded and verified",
    response_model=ReadyResponse,
)
async def ready(predictor: ServingPredictorDep) -> ReadyResponse:
    return ReadyResponse(status="ready", model_version=predictor.version, synthetic=predictor.manifest.data.synthetic)


@operations_router.get(
    "/model",
    tags=["model"],
    summary="The served model: version, training date, metrics, schema",
    response_model=ModelResponse,
)
async def model_info(predictor: PredictorDep, settings: SettingsDep) -> ModelResponse:
    manifest = predictor.manifest
    return ModelResponse(
        model_version=manifest.model_version,
        created_at=manifest.created_at,
        digest=predictor.digest,
        metrics=manifest.metrics,
        decision_rule=manifest.decision_rule,
        calibration=manifest.calibration,
        synthetic=manifest.data.synthetic,
        screening=manifest.screening,
        data=TrainingData(
            rows=manifest.data.rows,
            learnt_from=manifest.split.learnt_from_rows,
            synthetic=manifest.data.synthetic,
            class_counts=manifest.data.class_counts,
        ),
        schema=manifest.schema_,
        batch_limit=settings.batch_limit,
    )


@operations_router.get(
    METRICS_PATH,
    tags=["observability"],
    summary="Prometheus metrics: requests and latency by route and status, predictions by class",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics."}},
)
async def metrics(metrics: MetricsDep, state: ModelStateDep) -> Response:
    if state.predictor is not None:
        metrics.model_loaded(state.predictor.version)
    return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)
