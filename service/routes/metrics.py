"""GET /metrics in the Prometheus text format, from the app's own registry."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.dependencies import MetricsDep, ModelStateDep

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests and latency by route and status, predictions by class",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics."}},
)
async def metrics(metrics: MetricsDep, state: ModelStateDep) -> Response:
    if state.predictor is not None:
        metrics.model_loaded(state.predictor.version)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
