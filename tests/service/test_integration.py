"""A real uvicorn process on a free 127.0.0.1 port, called over HTTP with httpx, as a deployment would run it."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ml.schema import CLASSES
from tests.service.helpers import Server, metric, record, serving, wait_ready
from tests.service.hostile import hostile_batch, hostile_record


def test_predict_batch_ready_and_metrics_over_http(live_server: Server) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        ready = http.get("/ready")
        assert ready.status_code == 200
        answer = http.post("/predict?explain=true", json=record(HighBP=1, GenHlth=4), headers={"X-Request-ID": "it-1"})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "it-1"
        body = answer.json()
        assert body["model_version"] == ready.json()["model_version"]
        assert list(body["probabilities"]) == [c.name for c in CLASSES]
        assert len(body["explanation"]) == 5

        batch = http.post("/predict/batch", json={"records": [record(Age=a) for a in range(1, 14)]})
        assert batch.status_code == 200
        assert len(batch.json()["predictions"]) == 13

        invalid = http.post("/predict", json=record(HighBP=1.5))
        assert invalid.status_code == 422
        assert invalid.json()["errors"][0]["field"] == "HighBP"

        metrics = http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'http_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics.text
        assert 'http_requests_total{method="POST",route="/predict/batch",status="200"} 1.0' in metrics.text
        assert (
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.text.splitlines()
                if line.startswith("model_predictions_total{")
            )
            == 14.0
        )


def test_the_server_runs_on_asyncios_event_loop(live_server: Server) -> None:
    """uvloop accepts one connection per turn of its loop: under a flood, health checks on new connections waited
    seconds in the listener's queue (`service.server.EVENT_LOOP`). Not loaded at all, not only not chosen."""
    assert "uvloop" not in Path(f"/proc/{live_server.process.pid}/maps").read_text()


def test_oversized_body_is_refused_on_the_wire(live_server: Server) -> None:
    """A 3 MB body with its Content-Length is refused before the server reads it."""
    body = b'{"records": [' + b" " * 3_000_000 + b"]}"
    headers = {"Content-Type": "application/json"}
    response = httpx.post(f"{live_server.url}/predict/batch", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert 'http_requests_total{method="POST",route="/predict/batch",status="413"} 1.0' in metrics


def test_four_hostile_bodies_at_once_are_refused_on_the_wire(live_server: Server) -> None:
    """Hostile 2 MB bodies (`tests.service.hostile`), two of each at once: refused with one problem each, the server
    still answering."""
    sent = [("/predict/batch", hostile_batch()), ("/predict", hostile_record())] * 2
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=live_server.url, timeout=60) as http, ThreadPoolExecutor(len(sent)) as pool:
        answers = list(pool.map(lambda request: http.post(request[0], content=request[1], headers=headers), sent))
        assert http.get("/health").status_code == 200
    assert [a.status_code for a in answers] == [422] * len(sent)
    assert all(len(a.json()["errors"]) == 1 for a in answers)


def test_raw_malformed_request_gets_json(live_server: Server) -> None:
    host, port = live_server.url.removeprefix("http://").split(":")
    payload = b'{"HighBP": 1,'
    request = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(payload), payload)
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 422")
    assert json.loads(body)["errors"][0]["reason"].startswith("Malformed JSON")


def test_logs_are_json_lines_with_the_request_id(live_server: Server) -> None:
    httpx.get(f"{live_server.url}/health", headers={"X-Request-ID": "log-check-7"})
    deadline = time.monotonic() + 5
    while True:  # written once the answer has left (review 7, R7-8): a moment after the client may have read it
        lines = [json.loads(line) for line in live_server.log.read_text().splitlines() if line.strip()]
        access = [line for line in lines if line.get("request_id") == "log-check-7"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(access) == 1
    assert access[0]["logger"] == "service.access"
    assert access[0]["status"] == 200
    assert access[0]["route"] == "/health"
    assert any(line.get("message") == "model loaded" for line in lines)


def test_server_with_a_corrupt_model_stays_up_and_explains(corrupt_model_dir: Path, tmp_path: Path) -> None:
    with serving(str(corrupt_model_dir), tmp_path / "server.log") as server:
        ready = wait_ready(server.url)
        assert ready.status_code == 503
        assert "sha256" not in ready.text  # the reason is for the log, under the request id the answer quotes
        lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
        (logged,) = [
            line
            for line in lines
            if line.get("request_id") == ready.headers["x-request-id"] and line["message"] == "model not ready"
        ]
        assert "sha256" in logged["reason"]
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.post(f"{server.url}/predict", json=record()).status_code == 503
        assert server.process.poll() is None


def test_requests_refused_by_their_declared_length_are_counted_but_logged_sampled(live_server: Server) -> None:
    """Review 6, R6-5: a 413 decided by the `Content-Length` alone (and the 503s of the budgets) wrote one access
    line each, unsampled: 6,000 of them, 1.7 MB of log in 10 s from one client. They are counted one by one in the
    metrics, and logged as the protocol's refusals: the first in full, then one line with the count."""
    before = live_server.log.read_text().count("\n")
    counted = metric(live_server, "http_requests_total", route="/predict", status="413")
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n"
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", int(live_server.url.rsplit(":", 1)[1])), timeout=10) as sock:
            sock.sendall(head)
            assert sock.makefile("rb").readline().split()[1] == b"413"
    assert metric(live_server, "http_requests_total", route="/predict", status="413") == counted + 50
    time.sleep(1.5)  # the refusal log's window of a second closes: its count is written
    lines = [json.loads(line) for line in live_server.log.read_text().splitlines()[before:] if line.startswith("{")]
    refusals = [line for line in lines if line.get("status") == 413]
    assert [line["message"] for line in refusals] == ["refused", "refused_more"]
    assert refusals[1]["count"] == 49


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nope", 404), ("DELETE", "/predict", 405), ("POST", "/predict", 415), ("GET", "/health/", 404)],
)
def test_requests_refused_before_any_route_work_are_counted_but_logged_sampled(
    live_server: Server, method: str, path: str, status: int
) -> None:
    """Review 7, R7-9 (R6-5's neighbour): an unknown path, a wrong method or a body not sent as JSON wrote one
    access line each: one client, 10 connections, 12.7-14.6 MB of log in 10 s; a trailing slash's redirect too
    (review 8, R8-5; a 404 since review 16, F4). Counted one by one, logged sampled: the first line in full, then one
    line with the count."""
    before = live_server.log.read_text().count("\n")
    route = path if status in (405, 415) else "unmatched"
    counted = metric(live_server, "http_requests_total", route=route, status=str(status))
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        for _ in range(50):
            answer = client.request(method, path, content=b"x", headers={"Content-Type": "text/plain"})
            assert answer.status_code == status
    assert metric(live_server, "http_requests_total", route=route, status=str(status)) == counted + 50
    time.sleep(1.5)  # the window of a second closes: its count is written
    lines = [json.loads(line) for line in live_server.log.read_text().splitlines()[before:] if line.startswith("{")]
    logged = [line for line in lines if line.get("status") == status]
    assert [line["message"] for line in logged] == ["request", "request_more"]
    assert (logged[0]["route"], logged[0]["method"], logged[1]["count"]) == (route, method, 49)
