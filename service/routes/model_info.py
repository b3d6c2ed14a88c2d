"""GET /model: what is served, when it was trained, how well it did, and the feature schema."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.dependencies import ModelStateDep, PredictorDep
from service.responses import json_response
from service.schemas import ErrorResponse, ModelResponse

router = APIRouter(tags=["model"])


@router.get(
    "/model",
    summary="The served model: version, training date, metrics, schema",
    response_model=ModelResponse,
    responses={503: {"model": ErrorResponse, "description": "The model is not loaded; the reason says why."}},
)
async def model_info(predictor: PredictorDep, state: ModelStateDep) -> Response:
    manifest = predictor.manifest
    return json_response(
        {
            "model_version": predictor.version,
            "created_at": manifest["created_at"],
            "model_uri": state.uri,
            "metrics": manifest.get("metrics", {}),
            "decision_rule": manifest["decision_rule"],
            "calibration": manifest["calibration"],
            "data": manifest.get("data", {}),
            "versions": manifest.get("versions", {}),
            "schema": manifest["schema"],
        }
    )
