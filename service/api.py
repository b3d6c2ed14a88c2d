"""The prediction service, FastAPI over `ml.inference.Predictor`: `create_app(settings)` builds it.

`python -m service` (`service.server`) serves the app built from the environment's settings; tests build several.
The model loads in a background thread after start, so `/health` answers at once and `/ready` says why the model
cannot answer until it can.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from service import middleware
from service.batch_admission import BatchAdmission, records_at_most
from service.docs import docs_router
from service.errors import install_handlers
from service.model_state import ModelState
from service.observability import Metrics, configure_logging
from service.operator import operator_router
from service.routes import ALWAYS_ANSWERED, BATCH_PATH, PREDICT_PATH, operations_router, prediction_routers
from service.settings import Settings

API_VERSION = "1.0.0"
logger = logging.getLogger("service.api")

DESCRIPTION = """
Predicts diabetes status (healthy, pre-diabetic, diabetic) from the CDC BRFSS 2015 health indicators.

Send the indicators as one flat JSON object keyed by the survey's column names. Integer-coded fields take whole
numbers (`1` or `1.0`, never `1.5` or `"1"`); BMI may be fractional. Every error is JSON with the field, the reason
and a request id. This is a statistical estimate from survey answers, not a diagnosis.
"""


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """What runs from the app's start to its stop: the model's loading and the batches' worker threads."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A fresh state per start; the daemon thread never holds up shutdown, even mid-download.
        if not app.state.served_with_limits:
            logger.warning(
                "served without `python -m service`: no limits on heads, connections or pipelining, no deadlines, "
                "no graceful stop; start the service with `python -m service`"
            )
        state = ModelState(settings.model_uri, settings.model_sha256)
        app.state.model = state
        # Batches are scored in worker threads, at most one per core at a time: TreeSHAP and the answers of 1,000
        # rows would otherwise hold the event loop, and more threads than cores only share the same CPU.
        batches = BatchAdmission(
            threads=os.cpu_count() or 1,
            max_explained_records=settings.max_explained_records,
            queue_seconds=settings.batch_queue_seconds,
        )
        app.state.batches = batches
        app.state.metrics.explained_records.set_function(lambda: batches.explained_records)
        threading.Thread(target=state.load, name="model-loader", daemon=True).start()
        yield

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)

    app = FastAPI(
        title="Diabetes status API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=_lifespan(settings),
        docs_url=None,  # served by `service.docs`, without a CDN
        redoc_url=None,
        openapi_url=None,  # served rendered once by `service.docs` when the docs are on
        # `/predict/` is a 404, not a 307 to the client's own `Host` (a POST and its body re-sent wherever that names;
        # review 16, F4): every path is matched exactly, as the docs and the load balancers' rules name it.
        redirect_slashes=False,
        # FastAPI's native OpenTelemetry probes global providers on every request; this service exports
        # Prometheus metrics and JSON logs instead, so the probe is pure overhead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.served_with_limits = False  # set by `service.server.uvicorn_config`
    app.state.draining = False  # set by `service.server` when the service is stopping: `/ready` answers 503
    app.state.metrics = Metrics()
    app.state.model = ModelState(settings.model_uri, settings.model_sha256)
    routers = [*prediction_routers(settings.batch_limit), operations_router]
    if settings.operator_token is not None:  # else the view does not exist, for any method
        routers.append(operator_router)
    if settings.docs_enabled:
        routers.append(docs_router)
    for router in routers:
        app.include_router(router)
    install_handlers(app)

    app.add_middleware(
        middleware.Admission,
        limit=settings.body_limit_bytes,
        max_pending_bytes=settings.max_pending_body_bytes,
        max_in_flight=settings.max_requests_in_flight,
        always_admitted=ALWAYS_ANSWERED,
        batch_paths=frozenset({BATCH_PATH}),
        max_batch_bytes=settings.max_batch_bytes_in_flight,
        max_batch_wait_seconds=settings.batch_queue_seconds,
        explained_paths=frozenset({PREDICT_PATH}),
        explained_refusal=lambda size: app.state.batches.explain_refusal(records_at_most(size, settings.batch_limit)),
        metrics=app.state.metrics,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-request-id"],
            expose_headers=["x-request-id"],
        )
    # Added last, so outermost: it sees every response, the 413s and CORS preflights included. The route templates
    # label the metrics of requests refused before routing.
    paths = frozenset(route.path for router in routers for route in router.routes if isinstance(route, APIRoute))
    app.state.route_paths = paths  # (also what a 404 with a trailing slash names, `service.errors`)
    app.add_middleware(
        middleware.RequestContext, metrics=app.state.metrics, access_log=settings.access_log, paths=paths
    )
    return app
