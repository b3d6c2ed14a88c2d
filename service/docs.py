"""`GET /docs`: Swagger UI served by the service itself, as FastAPI's guide to self-hosting docs assets does.

FastAPI's default page loads Swagger UI from a CDN without integrity checks, so whoever controls the CDN controls a
page that can call the API. The files here are `swagger-ui-dist` 5.35.0 from npm (Apache-2.0, `LICENSE` and
`NOTICE` next to them), served from the service's own origin. `SERVICE_DOCS_ENABLED=false` turns the page and
`/openapi.json` off (the deployed stacks set it unless `publicApiDocs` is on).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"
#: The files the page loads; nothing else of the folder is served.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})
DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"

docs_router = APIRouter(include_in_schema=False)


@docs_router.get(DOCS_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_PATH,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{DOCS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_PATH}/favicon-32x32.png",
    )


@docs_router.get(DOCS_PATH + "/{asset}")
async def swagger_ui_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise HTTPException(404, "Not Found")
    return FileResponse(SWAGGER_UI / asset, headers={"Cache-Control": "public, max-age=86400"})


@docs_router.get(OPENAPI_PATH)
async def openapi_document(request: Request) -> Response:
    """The OpenAPI document, rendered once (FastAPI's own route renders its JSON for every request: 2.7 times what a
    `/health` costs, and 100 clients fetching it took other clients' 1,000-record batches past 2 s; review 17, N4)."""
    state = request.app.state
    if getattr(state, "openapi_document", None) is None:
        state.openapi_document = JSONResponse(request.app.openapi()).body
    return Response(state.openapi_document, media_type="application/json")
