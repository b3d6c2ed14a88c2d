"""What routes declare they need, as `Annotated` aliases: the model, the settings, the metrics.

All are `async def`: FastAPI would run plain functions in a thread pool, which costs more than they do. The
prediction routes take the three as one dependency, `ServingDep`: FastAPI resolves each dependency per request at a
measured ~10 us, which on `POST /predict` (about 150 us in all, in process) is worth paying once, not three times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ml.inference.predictor import Predictor
from service.batch_admission import BatchAdmission
from service.errors import ProblemError, request_id_of
from service.model_state import ModelState, ModelStatus
from service.observability import Metrics
from service.settings import Settings

logger = logging.getLogger("service.model")


async def _model_state(request: Request) -> ModelState:
    state: ModelState = request.app.state.model
    return state


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _predictor(request: Request) -> Predictor:
    """The loaded predictor, or a 503 saying whether to retry; clients should retry while it loads.

    The answer is public: it says what a caller can act on. Why the model failed (a path, a bucket, a command to run)
    is for the people who run the service, so it goes to the log, with the request id the caller can quote.
    """
    state: ModelState = request.app.state.model
    if state.predictor is not None:
        return state.predictor
    request_id = request_id_of(request.scope)
    logger.warning("model not ready", extra={"request_id": request_id, "status": state.status, "reason": state.reason})
    if state.status is ModelStatus.LOADING:
        reason = "The model is still loading; retry in a few seconds."
        code, headers = "model_loading", {"Retry-After": "5"}
    else:
        reason = f"The model could not be loaded; the service's log says why (request id {request_id})."
        code, headers = "model_unavailable", None
    raise ProblemError(503, code, reason, headers=headers, field="model")


async def _serving_predictor(request: Request) -> Predictor:
    """The predictor while the instance takes traffic: a 503 `shutting_down` once it drains (`service.server`)."""
    if request.app.state.draining:
        reason = "This instance is stopping; send requests to another one"
        raise ProblemError(503, "shutting_down", reason, field="server")
    return await _predictor(request)


@dataclass(frozen=True, slots=True)
class Serving:
    """What a prediction needs from the app: the ready predictor, the settings, the metrics, and the worker threads
    that score batches with their admission (`service.batch_admission`)."""

    predictor: Predictor
    settings: Settings
    metrics: Metrics
    batches: BatchAdmission


async def _serving(request: Request) -> Serving:
    """The three at once; a 503 naming why when the model is not loaded (as `PredictorDep`)."""
    state = request.app.state
    return Serving(await _predictor(request), state.settings, state.metrics, state.batches)


#: The model's loading state (loading, ready or failed, with the reason).
ModelStateDep = Annotated[ModelState, Depends(_model_state)]
#: The app's settings.
SettingsDep = Annotated[Settings, Depends(_settings)]
#: The app's Prometheus metrics.
MetricsDep = Annotated[Metrics, Depends(_metrics)]
#: The ready predictor; a 503 when the model is not loaded (why: in the log).
PredictorDep = Annotated[Predictor, Depends(_predictor)]
#: The ready predictor of an instance taking traffic: also a 503 while it drains before stopping (`/ready`).
ServingPredictorDep = Annotated[Predictor, Depends(_serving_predictor)]
#: The predictor, settings and metrics of a prediction route, resolved as one dependency.
ServingDep = Annotated[Serving, Depends(_serving)]
