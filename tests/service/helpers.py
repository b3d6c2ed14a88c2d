"""Helpers for the service tests: valid records, and a real uvicorn server in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.schemas import EXAMPLE_RECORD

ROOT = Path(__file__).resolve().parents[2]


def record(**changes: Any) -> dict[str, Any]:
    """A valid record (every feature at its default) with some values changed."""
    return {**EXAMPLE_RECORD, **changes}


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


def start_server(model_uri: str, port: int, log: Path, extra_env: dict[str, str] | None = None) -> Server:
    """`uvicorn service.api:app` on 127.0.0.1:port, as the README runs it; waits until /health answers."""
    env = {**os.environ, "MODEL_URI": model_uri, **(extra_env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.api:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", log, process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"uvicorn did not answer /health within 90 s:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)


def wait_ready(url: str, timeout: float = 60) -> httpx.Response:
    """Poll /ready until the model finished loading: 200, or a 503 whose error is no longer `model_loading`."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/ready", timeout=5)
        if response.status_code == 200 or response.json().get("error") != "model_loading":
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} still loading its model after {timeout} s")
        time.sleep(0.1)
