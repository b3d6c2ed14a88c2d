"""`python -m service`: one entry point, every server option from the one `Settings`.

Issue 21: the head deadline, the JSON 400s and the limits existed only when uvicorn was started with the right
flags (the Makefile, the Dockerfile and the test servers each repeated them, a regex test kept them equal), and the
protocol read its own `Settings()` from the environment, so `create_app(Settings(...))` never reached it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from uvicorn.server import ServerState

from service import server
from service.api import create_app
from service.server import uvicorn_config
from service.settings import Settings
from tests.servers import ROOT, service_command
from tests.service.helpers import record, serving, wait_ready


def test_the_server_takes_every_option_from_the_settings_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_HEADER_TIMEOUT_SECONDS", "9")  # the environment says otherwise: not read here
    monkeypatch.setenv("SERVICE_MAX_HEADERS", "9")
    settings = Settings(
        host="0.0.0.0",
        port=8123,
        keep_alive_seconds=3615,
        shutdown_timeout_seconds=7,
        header_timeout_seconds=2.5,
        max_headers=42,
        forwarded_allow_ips=["10.0.0.0/8"],
    )
    config = uvicorn_config(create_app(settings), settings)
    options = (config.host, config.port, config.timeout_keep_alive, config.timeout_graceful_shutdown)
    assert options == ("0.0.0.0", 8123, 3615, 7)
    assert config.forwarded_allow_ips == ["10.0.0.0/8"]
    assert config.server_header is False
    assert config.limit_concurrency is None  # work in flight is the app's limit, not a count of connections
    assert config.loop == "asyncio"  # takes every queued connection each turn (uvloop: one; `server.EVENT_LOOP`)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    finally:
        loop.close()
    assert protocol.head_timeout == 2.5
    assert protocol.settings.max_headers == 42  # type: ignore[attr-defined]


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("SERVICE_OPERATOR_TOKEN", "", "SERVICE_OPERATOR_TOKEN must be at least 32 characters"),
        ("SERVICE_OPERATOR_TOKEN", "letmein", "SERVICE_OPERATOR_TOKEN must be at least 32 characters"),
        ("SERVICE_MAX_HEADERS", "many", "max_headers"),
        # review 1, F12: settings that validated one by one but broke the service together, or were ignored
        ("SERVICE_MAX_PENDING_BODY_BYTES", "1024", "must be at least body_limit_bytes"),
        ("SERVICE_SHUTDOWN_TIMEOUT_SECONDS", "600", "must leave a second of stop_timeout_seconds"),
        ("SERVICE_MAX_HEADS", "50", "unknown service settings SERVICE_MAX_HEADS"),
        ("SERVICE_OPERATOR_TOKEN", " " + "t" * 40, "white space"),
        # review 2: a list setting that is not JSON was a traceback from pydantic-settings
        ("SERVICE_CORS_ORIGINS", "*", "cors_origins"),
        # review 2's limits: N1, N2, N3
        ("SERVICE_MIN_BODY_BYTES_PER_SECOND", "-1", "min_body_bytes_per_second"),
        ("SERVICE_MAX_EXPLAINED_RECORDS", "1999", "max_explained_records must be at least twice batch_limit"),
        ("SERVICE_MAX_BODY_CHUNKS", "3", "max_body_chunks"),
        # review 3: the stall rule
        ("SERVICE_BODY_STALL_SECONDS", "-1", "body_stall_seconds"),
        ("SERVICE_SEND_TIMEOUT_SECONDS", "-5", "send_timeout_seconds"),
        # any client could choose the address it is logged from
        ("SERVICE_FORWARDED_ALLOW_IPS", '["*"]', "every address"),
        # review 10, R10-6: accepted here, then uvicorn read them strictly and trusted no one, or every address
        ("SERVICE_FORWARDED_ALLOW_IPS", '["127.0.0.1/8"]', "host bits zero"),
        ("SERVICE_FORWARDED_ALLOW_IPS", '["::/0"]', "every address"),
    ],
)
def test_the_service_refuses_invalid_settings_at_start(
    variable: str, value: str, words: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 21: an empty token opened `/operator/model` to anyone; now the service does not start, and says why
    without a traceback and without repeating the value. In process (the command's own `main`); the next test runs
    the command itself."""
    monkeypatch.setenv(variable, value)
    served: list[Settings] = []
    monkeypatch.setattr(server, "serve", served.append)
    assert server.main([]) == 2
    assert served == []
    refusal = capsys.readouterr().err
    assert words in refusal
    assert not value or value not in refusal or variable == "SERVICE_MAX_HEADS"


def test_python_m_service_refuses_invalid_settings_with_exit_2_and_no_traceback() -> None:
    started = _run(service_command(), {**os.environ, "SERVICE_OPERATOR_TOKEN": "letmein", "SERVICE_PORT": "1"})
    assert started.returncode == 2, started.stderr
    assert "SERVICE_OPERATOR_TOKEN must be at least 32 characters" in started.stderr
    assert "Traceback" not in started.stderr
    assert "letmein" not in started.stderr


def test_an_open_file_limit_too_low_for_the_fewest_connections_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2: a soft and hard nofile of 40 lowered `max_connections` to -24 (every connection shed) with only a
    warning; the service refuses to start instead, naming the limit to raise."""
    monkeypatch.setattr(server.resource, "getrlimit", lambda _: (40, 40))
    served: list[Settings] = []
    monkeypatch.setattr(server, "serve", served.append)
    assert server.main([]) == 2
    assert served == []
    assert "open-file limit (40)" in capsys.readouterr().err
    monkeypatch.setattr(server.resource, "getrlimit", lambda _: (1024, 1024))
    assert server.main([]) == 0
    # half what is left: as many connections again, shed past it, may linger with their 503 (review 6 merge)
    assert served[0].max_connections == (1024 - server._RESERVED_FILES) // 2


def test_python_m_service_lists_its_settings() -> None:
    listed = _run([*service_command(), "--help"])
    assert listed.returncode == 0
    for variable in ("MODEL_URI", "SERVICE_PORT", "SERVICE_KEEP_ALIVE_SECONDS", "SERVICE_MAX_REQUESTS_IN_FLIGHT"):
        assert variable in listed.stdout


def test_the_stop_timeout_is_enforced_however_busy_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review 1, F9: under a pipelining flood the process exited 36.9 s after SIGTERM, past a 30 s stop timeout: a
    blocked event loop ran no timer. A thread ends the process half a second before `stop_timeout_seconds`."""
    exits: list[int] = []
    monkeypatch.setattr(server.os, "_exit", exits.append)
    timer = server._hard_stop_after(0.6)
    time.sleep(0.5)  # "blocked": this thread holds no loop at all
    timer.join(2)
    assert exits == [1]


def test_the_app_says_when_it_is_served_without_the_services_server(caplog: pytest.LogCaptureFixture) -> None:
    """Review 1: `uvicorn --factory service.api:create_app` served the app without any of the protocol's limits,
    and nothing said so."""
    with TestClient(create_app(Settings())):
        pass
    assert any("without `python -m service`" in r.getMessage() for r in caplog.records)
    caplog.clear()
    settings = Settings()
    app = create_app(settings)
    uvicorn_config(app, settings)
    with TestClient(app):
        pass
    assert not any("without `python -m service`" in r.getMessage() for r in caplog.records)


def test_the_default_body_deadline_admits_a_full_batch_sent_at_3_kb_a_second() -> None:
    """Third review: a 1,000-record batch (about 330 KB) sent steadily at 10 KB a second, well above the minimum
    rate, got 408 at 30 s. With the minimum rate and the stall rule cutting slow and stalled bodies, the absolute
    deadline only bounds a steady one, and must let a full batch through from a slow mobile link."""
    settings = Settings()
    batch = len(json.dumps({"records": [record()] * settings.batch_limit}).encode())
    assert batch / settings.body_timeout_seconds <= 3 * 1024


@pytest.mark.parametrize(
    ("trusted", "forwarded", "logged"),
    [
        ('["127.0.0.1"]', "198.51.100.1, 203.0.113.7", "203.0.113.7"),
        ('["10.0.0.0/8"]', "198.51.100.1, 203.0.113.7", "127.0.0.1:"),  # the peer, with its port
        ('["127.0.0.1"]', "x" * 15_000, "x" * 64),  # review 10, R10-7: logged whole on every line
    ],
)
def test_the_client_logged_is_the_one_trusted_proxies_name(
    trusted: str, forwarded: str, logged: str, trained_model_dir: Path, tmp_path: Path
) -> None:
    """Behind the load balancer every request was logged from its node's address: the proxies the settings trust
    name the client in `X-Forwarded-For` (the stacks trust the load balancer's subnets,
    `stacks.workloads.forwarded_allow_ips`), logged without uvicorn's port 0 and at most 64 characters; from anyone
    else the header is ignored (the old server trusted 127.0.0.1 whatever the settings said)."""
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings={"SERVICE_FORWARDED_ALLOW_IPS": trusted}) as started:
        wait_ready(started.url)
        response = httpx.get(f"{started.url}/model", headers={"X-Forwarded-For": forwarded})
        assert response.status_code == 200
    (line,) = [json.loads(text) for text in log.read_text().splitlines() if '"route": "/model"' in text]
    assert line["client"] == logged if not logged.endswith(":") else line["client"].startswith(logged)
