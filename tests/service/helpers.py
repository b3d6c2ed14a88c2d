"""Helpers for the service tests: valid records, and a real uvicorn server in a subprocess."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ml.schema import DEFAULT_RECORD
from tests.servers import ROOT, SERVICE_APP, free_port, running_server, uvicorn_command


def record(**changes: Any) -> dict[str, Any]:
    """A valid record (every feature at its default) with some values changed."""
    return {**DEFAULT_RECORD, **changes}


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


@contextmanager
def serving(
    model_uri: str, log: Path, *, settings: Mapping[str, str] | None = None, options: Sequence[str] = ()
) -> Iterator[Server]:
    """`uvicorn service.api:app` on a free 127.0.0.1 port as `make serve` runs it (with more `settings` in the
    environment and more uvicorn `options`, if any); yields once /health answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODEL_URI": model_uri, **(settings or {})}
    command = [*uvicorn_command(SERVICE_APP, port), *options]
    with running_server(command, f"{url}/health", log, env=env, cwd=ROOT, timeout=90) as process:
        yield Server(url, log, process)


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
