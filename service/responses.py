"""JSON responses written with the standard json module: FastAPI's response-model round trip is skipped."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

#: One encoder for every response: `json.dumps` with options builds a new encoder on each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(_ENCODER.encode(content).encode(), status_code=status_code, media_type="application/json")
