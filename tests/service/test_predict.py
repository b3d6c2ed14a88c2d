"""Answers through the app with its lifespan: shape, agreement with the Predictor, explanations, probes, metrics."""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml.inference.predictor import Predictor
from ml.schema import CLASSES, FEATURE_NAMES, FEATURES_BY_NAME
from ml.training.synthetic_data import make_synthetic
from service import routes
from tests.service.helpers import record

NAMES = [c.name for c in CLASSES]


def test_predict_answers_with_class_labels_probabilities_and_version(client: TestClient) -> None:
    response = client.post("/predict", json=record(HighBP=1, BMI=34.5, GenHlth=4, Age=11))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"screening", "prediction", "name", "label", "probabilities", "model_version", "synthetic"}
    assert list(body["probabilities"]) == NAMES
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-9)
    assert all(0.0 <= p <= 1.0 for p in body["probabilities"].values())
    cls = CLASSES[body["prediction"]]
    assert (body["name"], body["label"]) == (cls.name, cls.label)
    assert body["model_version"] == client.get("/ready").json()["model_version"]


def test_every_answer_leads_with_the_screening_risk_against_the_average(
    client: TestClient, trained_model_dir: Path
) -> None:
    rule = Predictor.load(trained_model_dir).manifest.screening
    low = client.post("/predict", json=record()).json()
    high = client.post("/predict", json=record(HighBP=1, HighChol=1, BMI=45, GenHlth=5, Age=12, DiffWalk=1)).json()
    for body in (low, high):
        screening = body["screening"]
        assert screening["risk"] == pytest.approx(
            body["probabilities"]["prediabetic"] + body["probabilities"]["diabetic"]
        )
        assert screening["average"] == pytest.approx(rule.average)
        assert screening["ratio"] == pytest.approx(screening["risk"] / rule.average)
        assert screening["thresholds"] == {"raised": rule.raised, "high": rule.high}
        expected = (
            "high" if screening["risk"] >= rule.high else "raised" if screening["risk"] >= rule.raised else "lower"
        )
        assert screening["level"] == expected
    assert low["screening"]["risk"] < high["screening"]["risk"]
    assert (low["screening"]["level"], high["screening"]["level"]) == ("lower", "high")


def test_a_synthetic_model_says_so_in_every_answer(client: TestClient) -> None:
    """The session's model was trained on synthetic rows: /ready, /model and every prediction carry the fact."""
    assert client.get("/ready").json()["synthetic"] is True
    assert client.get("/model").json()["synthetic"] is True
    assert client.post("/predict", json=record()).json()["synthetic"] is True
    batch = client.post("/predict/batch", json={"records": [record(), record(Age=3)]}).json()
    assert [p["synthetic"] for p in batch["predictions"]] == [True, True]


def test_single_and_batch_answers_match_the_predictor(client: TestClient, trained_model_dir: Path) -> None:
    frame = make_synthetic(40, seed=21)
    rows = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    records = [
        {
            name: int(v) if FEATURES_BY_NAME[name].integer else float(v)
            for name, v in zip(FEATURE_NAMES, row, strict=True)
        }
        for row in rows
    ]
    expected = Predictor.load(trained_model_dir).predict(rows)

    batch = client.post("/predict/batch", json={"records": records})
    assert batch.status_code == 200, batch.text
    answers = batch.json()["predictions"]
    assert len(answers) == len(records)
    for i, (record_body, answer) in enumerate(zip(records, answers, strict=True)):
        single = client.post("/predict", json=record_body).json()
        single_probabilities = single.pop("probabilities")
        batch_probabilities = answer.pop("probabilities")
        assert single == answer  # the single-row fast path and the batch path agree to rounding
        assert np.allclose(list(single_probabilities.values()), list(batch_probabilities.values()), atol=1e-12)
        assert answer["prediction"] == expected.classes[i]
        assert np.allclose(list(batch_probabilities.values()), expected.probabilities[i], atol=1e-12)


def test_explanation_lists_top_factors_with_human_labels(client: TestClient) -> None:
    sent = record(HighBP=1, GenHlth=5, Age=12)
    body = client.post("/predict?explain=true", json=sent).json()
    factors = body["explanation"]
    assert len(factors) == 5
    assert {f["feature"] for f in factors} <= set(FEATURE_NAMES)
    magnitudes = [abs(f["contribution"]) for f in factors]
    assert magnitudes == sorted(magnitudes, reverse=True)
    for factor in factors:  # e.g. GenHlth 5 -> "Poor", Age 12 -> "75-79", BMI 27 -> "27"
        assert factor["value"] == sent[factor["feature"]]
        assert factor["value_label"] == FEATURES_BY_NAME[factor["feature"]].label(sent[factor["feature"]])
    batch = client.post("/predict/batch?explain=1", json={"records": [record(), record(Age=13)]}).json()
    assert all(len(p["explanation"]) == 5 for p in batch["predictions"])
    assert "explanation" not in client.post("/predict?explain=false", json=record()).json()


def test_model_information_shows_the_digest_the_pin_accepts(
    make_client: Callable[..., TestClient], trained_model_dir: Path
) -> None:
    digest = Predictor.load(trained_model_dir).digest
    pinned = make_client(MODEL_URI=str(trained_model_dir), MODEL_SHA256=digest)
    assert pinned.get("/ready").status_code == 200
    assert pinned.get("/model").json()["digest"] == digest


def test_the_probes_answer_head_as_they_answer_get(client: TestClient) -> None:
    """Review 2: `HEAD /health` answered 405, so a monitor probing with HEAD saw a live service as failing."""
    for path in ("/health", "/ready"):
        answer = client.head(path)
        assert answer.status_code == 200, path
        assert answer.content == b""
        assert answer.headers["content-length"] == client.get(path).headers["content-length"]
        # A method neither route takes names the documented GET in `Allow` (it named HEAD alone: schemathesis ST205).
        refused = client.options(path)
        assert refused.status_code == 405, path
        assert "GET" in refused.headers["allow"], refused.headers


def test_probes_and_model_information(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    info = client.get("/model").json()
    assert info["model_version"] == ready.json()["model_version"]
    assert info["created_at"]
    assert "test" in info["metrics"]
    assert [f["name"] for f in info["schema"]["features"]] == list(FEATURE_NAMES)


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert generated != "bad id with spaces"
    assert len(generated) == 32


def test_metrics_count_requests_latency_and_predictions_by_class(client: TestClient) -> None:
    predicted = {client.post("/predict", json=record()).json()["name"] for _ in range(3)}
    client.post("/predict", json={})
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/predict",status="200"} 3.0' in text
    assert 'http_requests_total{method="POST",route="/predict",status="422"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="POST",route="/predict",status="200"} 3.0' in text
    (name,) = predicted
    assert f'model_predictions_total{{class="{name}"}} 3.0' in text
    assert "model_ready 1.0" in text
    assert 'model_info{version="' in text


def test_openapi_documents_fields_codes_and_an_example(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    record_schema = schema["components"]["schemas"]["PatientRecord"]
    assert record_schema["additionalProperties"] is False
    assert record_schema["required"] == list(FEATURE_NAMES)
    assert record_schema["examples"][0] == record()
    gen_hlth = record_schema["properties"]["GenHlth"]
    assert (gen_hlth["type"], gen_hlth["minimum"], gen_hlth["maximum"]) == ("integer", 1, 5)
    assert "5 = Poor" in gen_hlth["description"]
    assert record_schema["properties"]["BMI"]["type"] == "number"
    batch = schema["components"]["schemas"]["BatchRequest"]["properties"]["records"]
    assert (batch["minItems"], batch["maxItems"]) == (1, 1000)
    predict = schema["paths"]["/predict"]["post"]
    assert predict["parameters"][0]["name"] == "explain"
    assert set(predict["responses"]) >= {"200", "413", "415", "422", "503"}


def test_openapi_documents_what_the_server_answers_around_every_route(client: TestClient) -> None:
    """Issue 21: 400, 408, 413, 431, 500 and 503 were answered but missing from the OpenAPI document, so generated
    clients had no model for them (501 since: a transfer coding the server does not implement; 404 and 405 since
    review 16, F4)."""
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            documented = operation["responses"]
            protocol_statuses = ("400", "404", "405", "408", "413", "414", "431", "500", "501", "503")
            assert set(documented) >= set(protocol_statuses), (method, path)
            for status in protocol_statuses:
                reference = documented[status]["content"]["application/json"]["schema"]["$ref"]
                assert reference == "#/components/schemas/ErrorResponse"


@pytest.mark.parametrize(("method", "path"), [("POST", "/predict/"), ("GET", "/health/"), ("GET", "/operator/model/")])
def test_a_trailing_slash_is_a_json_404_not_a_redirect_to_the_client_s_host(
    client: TestClient, method: str, path: str
) -> None:
    """Review 16, F4: `/predict/` was a 307 to `http://<the request's Host>/predict`, an empty body: a client
    following it re-sent the POST and its health record wherever the Host header named."""
    answer = client.request(method, path, json=record(), headers={"Host": "evil.example"}, follow_redirects=False)
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    assert "location" not in answer.headers
    if path != "/operator/model/":  # (no operator token here: that route does not exist)
        assert answer.json()["errors"][0]["reason"].endswith(f"paths end without a slash: {path.rstrip('/')}")


def test_cors_is_off_by_default_and_configurable(make_client: object, trained_model_dir: Path) -> None:
    preflight = {"Origin": "http://ui.example", "Access-Control-Request-Method": "POST"}
    default = make_client(MODEL_URI=str(trained_model_dir))  # type: ignore[operator]
    assert "access-control-allow-origin" not in default.options("/predict", headers=preflight).headers
    allowed = make_client(MODEL_URI=str(trained_model_dir), cors_origins=["http://ui.example"])  # type: ignore[operator]
    answer = allowed.options("/predict", headers=preflight)
    assert answer.headers["access-control-allow-origin"] == "http://ui.example"


PRIVATE = ("model_uri", "versions", "sha256", "file", "duplicates")


def test_model_information_leaves_the_operators_details_out(client: TestClient, trained_model_dir: Path) -> None:
    """`/model` is public: the model's path, the training file's sha256 and the library versions map the deployment
    for an attacker, so only the operator route has them."""
    info = client.get("/model").json()
    assert not set(PRIVATE) & set(info)
    assert set(info["data"]) == {"rows", "learnt_from", "synthetic", "class_counts"}
    assert str(trained_model_dir) not in client.get("/model").text


def test_the_operator_view_is_off_without_a_token(client: TestClient) -> None:
    assert client.get("/operator/model").status_code == 404
    assert client.post("/operator/model").status_code == 404  # review 1: a 405 said the route exists


def test_a_batch_is_scored_and_explained_off_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 1, F11: only the prediction ran in a worker thread; the explanations of 1,000 rows (and the answers
    of a plain batch) were built on the event loop, 115-470 ms during which nothing else was answered."""
    on_loop: list[bool] = []
    real = routes.top_contributions

    def recording(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(routes, "top_contributions", recording)
    batch = {"records": [record(Age=1 + i % 13) for i in range(20)]}
    assert client.post("/predict/batch?explain=true", json=batch).status_code == 200
    assert on_loop == [False] * 20


#: An operator token as long as the service requires (`MIN_OPERATOR_TOKEN_LENGTH`).
TOKEN = "s3cret-token-of-32-characters-ok"


def test_the_operator_view_needs_the_token(make_client: Any, trained_model_dir: Path) -> None:
    client = make_client(MODEL_URI=str(trained_model_dir), operator_token=TOKEN)
    basic = base64.b64encode(TOKEN.encode()).decode()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer"}, {"Authorization": basic}):
        refused = client.get("/operator/model", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"] == "unauthorized"
        assert refused.json()["errors"][0]["field"] == "headers.authorization"  # review 1: it said "body"
    view = client.get("/operator/model", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert view["status"] == "ready"
    assert view["model_uri"] == str(trained_model_dir)
    assert {"lightgbm", "numpy"} <= set(view["versions"])
    assert len(view["data"]["sha256"]) == 64
    assert "/operator/model" not in client.get("/openapi.json").text


def test_the_operator_view_says_why_the_model_is_not_loaded(make_client: Any, tmp_path: Path) -> None:
    client = make_client(MODEL_URI=str(tmp_path / "nowhere"), operator_token=TOKEN)
    view = client.get("/operator/model", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert view["status"] == "failed"
    assert "does not exist" in view["reason"]
    assert "versions" not in view


def test_the_model_loaded_log_line_has_the_operators_details(
    make_client: Any, trained_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_client(MODEL_URI=str(trained_model_dir))
    (loaded,) = [r for r in caplog.records if r.getMessage() == "model loaded"]
    assert loaded.model_uri == str(trained_model_dir)
    assert len(loaded.data_sha256) == 64
    assert "lightgbm" in loaded.versions
