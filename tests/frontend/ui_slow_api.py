"""A deliberately slow stand-in for the service: every request waits `SLOW_API_SECONDS` before answering.

Served by a real uvicorn so the UI's client meets a real read timeout, not a mocked one.
"""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

DELAY = float(os.environ.get("SLOW_API_SECONDS", "5"))


async def health(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def slow(_: Request) -> JSONResponse:
    await asyncio.sleep(DELAY)
    return JSONResponse({"detail": "too late"})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/{path:path}", slow, methods=["GET", "POST"]),
    ]
)
