"""A missing or corrupt model leaves a live service that says why it cannot predict; crashes become JSON 500s."""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.settings import Settings
from tests.damaged_models import rewrite_model_text
from tests.service.helpers import record

NAN = float("nan")
INF = float("inf")


@pytest.fixture
def assert_not_ready(caplog: pytest.LogCaptureFixture) -> Callable[[TestClient, str, str], None]:
    """Check that every route needing the model answers a public 503 (no path, no command, nothing of `detail`),
    and that the log has `detail` under the request id the answer quotes."""

    def check(client: TestClient, model_uri: str, detail: str) -> None:
        assert client.get("/health").status_code == 200
        for method, path, body in (("GET", "/ready", None), ("GET", "/model", None), ("POST", "/predict", record())):
            request_id = f"not-ready{path.replace('/', '-')}"
            response = client.request(method, path, json=body, headers={"X-Request-ID": request_id})
            assert response.status_code == 503, (path, response.text)
            answer = response.json()
            assert answer["error"] == "model_unavailable"
            assert answer["errors"][0]["field"] == "model"
            assert f"request id {request_id}" in answer["reason"]
            for private in (model_uri, "ml.train", detail):
                assert private not in response.text, (private, response.text)
            model_log = [r for r in caplog.records if r.name == "service.model"]
            logged = [r for r in model_log if getattr(r, "request_id", "") == request_id]
            assert [r.getMessage() for r in logged] == ["model not ready"]
            assert detail in logged[0].reason, logged[0].reason
        batch = client.post("/predict/batch", json={"records": [record()]})
        assert batch.status_code == 503
        assert "model_ready 0.0" in client.get("/metrics").text

    return check


def test_missing_model_directory(make_client: Any, tmp_path: Path, assert_not_ready: Any) -> None:
    uri = str(tmp_path / "no-model-here")
    assert_not_ready(make_client(MODEL_URI=uri), uri, "does not exist")


def test_corrupted_model_file(make_client: Any, corrupt_model_dir: Path, assert_not_ready: Any) -> None:
    uri = str(corrupt_model_dir)
    assert_not_ready(make_client(MODEL_URI=uri), uri, "sha256")


def test_unparseable_manifest(make_client: Any, corrupt_model_dir: Path, assert_not_ready: Any) -> None:
    (corrupt_model_dir / "manifest.json").write_text("{not json")
    uri = str(corrupt_model_dir)
    assert_not_ready(make_client(MODEL_URI=uri), uri, "not valid JSON")


def _edit_manifest(model_dir: Path, where: str, value: Any) -> None:
    """Set the manifest's value at a dotted path (`calibration.bias`), written as Python's json writes NaN."""
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    *parents, name = where.split(".")
    target = manifest
    for key in parents:
        target = target[key]
    target[name] = value
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("calibration.bias", [NAN, 0.0, 0.0]),
        ("calibration.bias", [INF, 0.0, 0.0]),
        ("calibration.bias", [-INF, 0.0, 0.0]),
        ("calibration.temperature", 1e-320),
        ("calibration.temperature", NAN),
        ("decision_rule.class_weights", [INF, 1.0, 1.0]),
        ("decision_rule.class_weights", [0.0, 1.0, 1.0]),
        ("calibration.bias", [0.0, 0.0]),
        ("decision_rule.class_weights", [1.0, 1.0, 1.0, 1.0]),
        ("model_version", "20261201T131129Z-8278e4c8\n<script>"),
        ("metrics.test.accuracy", NAN),
        ("schema.features", INF),
    ],
    ids=[
        "nan-bias",
        "inf-bias",
        "minus-inf-bias",
        "tiny-temperature",
        "nan-temperature",
        "inf-weight",
        "zero-weight",
        "short-bias",
        "long-weights",
        "version-format",
        "nan-metric",
        "inf-in-schema",
    ],
)
def test_a_manifest_the_model_cannot_answer_with_is_refused_at_load(
    make_client: Any, model_copy: Path, assert_not_ready: Any, where: str, value: Any
) -> None:
    """A model that loads must answer: these once loaded (`/ready` 200), then every `/predict` or `/model` answered
    500 or a wrong class."""
    _edit_manifest(model_copy, where, value)
    assert_not_ready(make_client(MODEL_URI=str(model_copy)), str(model_copy), where)


def test_model_other_than_the_pinned_digest_is_refused(
    make_client: Any, trained_model_dir: Path, assert_not_ready: Any
) -> None:
    pinned = "0" * 64
    client = make_client(MODEL_URI=str(trained_model_dir), MODEL_SHA256=pinned)
    assert_not_ready(client, str(trained_model_dir), f"the pinned digest is {pinned}")


def test_malformed_pin_is_refused_at_start() -> None:
    for bad in ("", "0" * 63, "A" * 64, "sha256:" + "0" * 64):
        with pytest.raises(ValidationError, match="MODEL_SHA256"):
            Settings(MODEL_SHA256=bad)


@pytest.mark.parametrize("token", ["", "   ", "s3cret", "x" * 31])
def test_an_empty_or_short_operator_token_is_refused_at_start(token: str) -> None:
    """Issue 21: an empty SERVICE_OPERATOR_TOKEN opened `/operator/model` to anyone (no header, `Bearer` alone).
    The error names the rule, never the token."""
    with pytest.raises(ValidationError, match="at least 32 characters") as caught:
        Settings(operator_token=token)
    assert token.strip() == "" or token not in str(caught.value)


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("\u00e9" * 32, "other than visible ASCII"),
        ("t" * 20 + " " + "u" * 20, "other than visible ASCII"),
        ("a" * 40, "is a pattern"),
        ("ab" * 20, "is a pattern"),
        ("abcdefgh" * 4, "is a pattern"),  # review 17, N8: eight different characters, repeated
    ],
)
def test_an_operator_token_no_client_sends_alike_or_guessable_is_refused_at_start(token: str, words: str) -> None:
    """Review 16, F6: 32 accented letters started, then curl (UTF-8) got 401 and Python's http.client (Latin-1) 200;
    40 of one letter passed on its length alone. The error never shows the token."""
    with pytest.raises(ValidationError, match=words) as caught:
        Settings(operator_token=token)
    assert token not in str(caught.value)


def test_an_operator_token_made_by_common_generators_is_accepted() -> None:
    """Review 17, N8: tokens with symbols (a password manager's) were refused by the bearer-token characters rule."""
    tokens = [secrets.token_urlsafe(32), secrets.token_hex(16), base64.b64encode(secrets.token_bytes(33)).decode()]
    tokens.append("".join(secrets.choice(string.ascii_letters + string.digits + "!@#$%^&*") for _ in range(32)))
    for token in tokens:
        assert Settings(operator_token=token).operator_token is not None, token


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


def test_a_model_with_zero_row_counts_is_refused_rather_than_explaining_nan(make_client: Any, model_copy: Path) -> None:
    """TreeSHAP divides by the row counts: with them set to 0 (hashes updated, no pin) the old service loaded the
    model and answered /predict?explain=true 200 with `"contribution": null` for every feature."""
    rewrite_model_text(model_copy, lambda text: re.sub(r"(?m)^(leaf|internal)_count=.*$", _zeros, text))
    client = make_client(MODEL_URI=str(model_copy))
    assert client.get("/ready").status_code == 503
    answer = client.post("/predict?explain=true", json=record())
    assert answer.status_code == 503, answer.text
    assert "contribution" not in answer.text


def _zeros(line: re.Match[str]) -> str:
    key, values = line.group(0).split("=")
    return f"{key}={' '.join('0' for _ in values.split(' '))}"
