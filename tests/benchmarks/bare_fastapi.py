"""The floor of idiomatic FastAPI for the serving benchmark (`tests.benchmarks.serve`): the service's Predictor
behind the smallest app that answers the same `/predict` the same way (the `PatientRecord` body, the
`PredictionResponse` model), plus a `/health`, under plain uvicorn with no access log, no metrics, no admission and
no limits. Its own `/predict` over `/health` is what FastAPI itself leaves for a ratio target; the service's layers
(`service.middleware`, `service.http_protocol`, `service.json_body`) cost what the service's figures show above it.
FastAPI's OpenTelemetry probe is off, as in the service (`service.api`): on, it cost the floor 4-10 us a request.

Served with `python -m uvicorn --factory tests.benchmarks.bare_fastapi:app_from_environment`, the model from
`MODEL_URI`; `bare_app` is the same app in process. Not for production.
"""

from __future__ import annotations

import os

import numpy as np
from fastapi import FastAPI

from ml.contract import PatientRecord, PredictionResponse
from ml.inference.predictor import Predictor
from service.routes import answers

_TOP_K = 3


def bare_app(predictor: Predictor) -> FastAPI:
    """The app serving `predictor`."""
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/predict", response_model=PredictionResponse, response_model_exclude_none=True)
    async def predict(record: PatientRecord) -> PredictionResponse:
        row = np.array([record.as_row()])
        return answers(predictor.predict(row), row, predictor, _TOP_K)[0]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_from_environment() -> FastAPI:
    """The app serving the model at `MODEL_URI` (uvicorn's `--factory`)."""
    return bare_app(Predictor.load(os.environ["MODEL_URI"]))
