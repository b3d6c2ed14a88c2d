"""GET /health (the process answers) and GET /ready (the model is loaded and verified)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.dependencies import ModelStateDep, ready_predictor
from service.responses import json_response
from service.schemas import ErrorResponse, HealthResponse, ReadyResponse

router = APIRouter(tags=["probes"])

_HEALTHY = b'{"status":"ok"}'


@router.get("/health", summary="Liveness: the process serves requests", response_model=HealthResponse)
async def health() -> Response:
    return Response(_HEALTHY, media_type="application/json")


@router.get(
    "/ready",
    summary="Readiness: the model is loaded and verified",
    response_model=ReadyResponse,
    responses={503: {"model": ErrorResponse, "description": "Not ready; the reason says why (loading or failed)."}},
)
async def ready(state: ModelStateDep) -> Response:
    return json_response({"status": "ready", "model_version": ready_predictor(state).version})
