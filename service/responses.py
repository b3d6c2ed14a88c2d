"""JSON responses written with the standard json module: FastAPI's response-model round trip is skipped."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


def json_response(content: Any, status_code: int = 200) -> Response:
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status_code, media_type="application/json")
