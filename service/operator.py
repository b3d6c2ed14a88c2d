"""`GET /operator/model`: what the people who run the service need and callers must not see.

Where the model came from (`MODEL_URI`), the training file's name and sha256, the library versions, and why the
model is not loaded (a path, a bucket, a command to run). Public routes leave these out (they map the deployment
for an attacker); they are in the logs and here, behind a bearer token (`SERVICE_OPERATOR_TOKEN`). Without a token
configured the app does not include this router: the route does not exist (404, whatever the method). It stays out
of the public OpenAPI schema.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ml.manifest import DataRecord
from service.dependencies import ModelStateDep
from service.errors import ProblemError

_bearer = HTTPBearer(auto_error=False)


class OperatorModelResponse(BaseModel):
    """Where the served model came from, what it was trained on and with, or why it is not loaded."""

    status: str = Field(description="`loading`, `ready` or `failed`.")
    reason: str = Field(description="`ready`, or why the model is not loaded (paths and commands included).")
    model_uri: str = Field(description="Where the service loads the model from (`MODEL_URI`).")
    model_version: str | None = Field(default=None, description="The loaded model's version.")
    data: DataRecord | None = Field(default=None, description="The training file: name, sha256, rows, duplicates.")
    versions: dict[str, str] | None = Field(default=None, description="Library versions the model was trained with.")


async def _operator(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> None:
    """The caller holds `SERVICE_OPERATOR_TOKEN`, else 401 (the app includes this router only when one is set)."""
    token = request.app.state.settings.operator_token
    sent = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
        reason = "Send the operator token as `Authorization: Bearer <SERVICE_OPERATOR_TOKEN>`"
        headers = {"WWW-Authenticate": "Bearer"}
        raise ProblemError(401, "unauthorized", reason, headers=headers, field="headers.authorization")


operator_router = APIRouter(prefix="/operator", include_in_schema=False, dependencies=[Depends(_operator)])


@operator_router.get("/model", response_model=OperatorModelResponse, response_model_exclude_none=True)
async def operator_model(state: ModelStateDep) -> OperatorModelResponse:
    view = OperatorModelResponse(status=state.status, reason=state.reason, model_uri=state.uri)
    if state.predictor is not None:
        manifest = state.predictor.manifest
        view = view.model_copy(
            update={"model_version": manifest.model_version, "data": manifest.data, "versions": manifest.versions}
        )
    return view
