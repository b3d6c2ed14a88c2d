"""The ASGI app for uvicorn: `MODEL_URI=DIR uv run uvicorn service.api:app` (settings from the environment)."""

from __future__ import annotations

from service.app import create_app

app = create_app()
