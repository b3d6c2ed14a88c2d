"""A model.txt LightGBM cannot parse, served by a real uvicorn process: the server stays up and its log says why.

The issue's file (one leaf value rewritten as "9.5", the manifest's sha256 updated, no MODEL_SHA256 pin) made
LightGBM abort the whole process ("terminate called", exit 134) while the model loaded in the background.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.damaged_models import first_leaf_value, rewrite_model_text
from tests.service.helpers import record, serving, wait_ready


def test_a_model_file_lightgbm_cannot_parse_leaves_a_live_server_that_says_why(
    model_copy: Path, tmp_path: Path
) -> None:
    rewrite_model_text(model_copy, first_leaf_value)
    with serving(str(model_copy), tmp_path / "server.log") as server:
        ready = wait_ready(server.url)
        assert ready.status_code == 503
        assert ready.json()["error"] == "model_unavailable"
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.post(f"{server.url}/predict", json=record()).status_code == 503
        assert server.process.poll() is None
        lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    (failed,) = [line for line in lines if line["message"] == "model not loaded; /ready answers 503 until fixed"]
    assert "model.txt of" in failed["reason"]
    assert "tree_sizes puts tree 0 here" in failed["reason"]
    assert "terminate called" not in server.log.read_text()
