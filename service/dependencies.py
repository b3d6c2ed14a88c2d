"""Per-request access to the app's state, as `Annotated` aliases routes can declare.

All are `async def`: FastAPI would run plain functions in a thread pool, which costs more than they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ml.predict import Predictor
from service.errors import ApiError, Problem
from service.model_state import ModelState, ModelStatus
from service.observability import Metrics
from service.settings import Settings


async def _model_state(request: Request) -> ModelState:
    state: ModelState = request.app.state.model
    return state


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def ready_predictor(state: ModelState) -> Predictor:
    """The loaded predictor, or a 503 naming why the model cannot answer; clients should retry while it loads.

    A plain function, not only a dependency: the /predict hot path calls it directly, without `Depends`.
    """
    if state.predictor is not None:
        return state.predictor
    loading = state.status is ModelStatus.LOADING
    headers = {"Retry-After": "5"} if loading else None
    code = "model_loading" if loading else "model_unavailable"
    reason = f"The model is not ready: {state.reason}"
    raise ApiError(503, code, reason, (Problem("model", state.reason),), headers)


async def _predictor(request: Request) -> Predictor:
    return ready_predictor(request.app.state.model)


ModelStateDep = Annotated[ModelState, Depends(_model_state)]
SettingsDep = Annotated[Settings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
PredictorDep = Annotated[Predictor, Depends(_predictor)]
