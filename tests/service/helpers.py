"""Helpers for the service tests: valid records, and a real uvicorn server in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ml.schema import DEFAULT_RECORD
from tests.servers import (
    ROOT,
    SERVICE_STOP_SIGNAL,
    free_port,
    running_server,
    service_command,
    service_environment,
)


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
    model_uri: str, log: Path, *, settings: Mapping[str, str] | None = None, command_prefix: Sequence[str] = ()
) -> Iterator[Server]:
    """`python -m service` on a free 127.0.0.1 port, as `make serve` runs it (with more `settings` in the
    environment, if any, and after `command_prefix`, e.g. `prlimit`); yields once /health answers, then stops it
    with `SERVICE_STOP_SIGNAL`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_environment(port, model_uri, settings)
    with running_server(
        [*command_prefix, *service_command()],
        f"{url}/health",
        log,
        env=env,
        cwd=ROOT,
        timeout=90,
        stop_signal=SERVICE_STOP_SIGNAL,
    ) as process:
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


def connect(server: Server, timeout: float = 10) -> socket.socket:
    """A raw connection to `server`, for requests an HTTP client would not send."""
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read `count` responses from one connection, in order (one may arrive in the same packet as the next): the
    status, headers and body (Content-Length bytes) of each."""
    answers = []
    with sock.makefile("rb") as stream:
        for _ in range(count):
            status_line = stream.readline()
            assert status_line, "the connection closed before an answer"
            headers = {}
            while (line := stream.readline().decode("latin-1").strip()) != "":
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            answers.append((int(status_line.split()[1]), headers, stream.read(int(headers.get("content-length", 0)))))
    return answers


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    return read_answers(sock, 1)[0]


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of `name`'s samples in `server`'s /metrics whose labels include `labels`."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
