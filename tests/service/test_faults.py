"""A missing or corrupt model leaves a live service that says why it cannot predict; crashes become JSON 500s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.settings import Settings
from tests.service.helpers import record


def _assert_not_ready(client: TestClient, words: str) -> None:
    assert client.get("/health").status_code == 200
    for method, path, body in (("GET", "/ready", None), ("GET", "/model", None), ("POST", "/predict", record())):
        response = client.request(method, path, json=body)
        assert response.status_code == 503, (path, response.text)
        answer = response.json()
        assert answer["error"] == "model_unavailable"
        assert answer["errors"][0]["field"] == "model"
        assert words in answer["reason"], answer["reason"]
    batch = client.post("/predict/batch", json={"records": [record()]})
    assert batch.status_code == 503
    assert "model_ready 0.0" in client.get("/metrics").text


def test_missing_model_directory(make_client: Any, tmp_path: Path) -> None:
    client = make_client(MODEL_URI=str(tmp_path / "no-model-here"))
    _assert_not_ready(client, "does not exist")


def test_corrupted_model_file(make_client: Any, corrupt_model_dir: Path) -> None:
    client = make_client(MODEL_URI=str(corrupt_model_dir))
    _assert_not_ready(client, "sha256")


def test_unparseable_manifest(make_client: Any, corrupt_model_dir: Path) -> None:
    (corrupt_model_dir / "manifest.json").write_text("{not json")
    client = make_client(MODEL_URI=str(corrupt_model_dir))
    _assert_not_ready(client, "not valid JSON")


def test_model_other_than_the_pinned_digest_is_refused(make_client: Any, trained_model_dir: Path) -> None:
    pinned = "0" * 64
    client = make_client(MODEL_URI=str(trained_model_dir), MODEL_SHA256=pinned)
    _assert_not_ready(client, f"the pinned digest is {pinned}")


def test_malformed_pin_is_refused_at_start() -> None:
    for bad in ("", "0" * 63, "A" * 64, "sha256:" + "0" * 64):
        with pytest.raises(ValidationError, match="MODEL_SHA256"):
            Settings(MODEL_SHA256=bad)


def test_unhandled_error_is_a_json_500_with_the_request_id(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = client.app.state.model.predictor  # type: ignore[attr-defined]

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(predictor, "predict", explode)
    response = client.post("/predict", json=record(), headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["request_id"] == "req-42"
    assert "req-42" in body["reason"]
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert 'route="/predict",status="500"' in client.get("/metrics").text
