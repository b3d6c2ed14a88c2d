"""Start a real server process for a test and wait until it answers; always stop it afterwards."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

#: The repository root: where servers run from, so `service.api:app` and `frontend/app.py` resolve.
ROOT = Path(__file__).resolve().parents[1]
#: The service's ASGI app, as `uvicorn` is told to load it.
SERVICE_APP = "service.api:app"
#: How the image (as UVICORN_* variables) and `make serve` start uvicorn for the service: its own protocol (a
#: deadline for request heads, JSON errors), keep-alive longer than the load balancer's 60 s idle timeout, a
#: concurrency limit and no `server` header.
SERVICE_OPTIONS = (
    "--http",
    "service.http_protocol:HttpProtocol",
    "--timeout-keep-alive",
    "75",
    "--limit-concurrency",
    "128",
    "--no-server-header",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    command: Sequence[str],
    ready_url: str,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command`, poll `ready_url` until it answers 2xx, yield the process, then terminate it."""
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    state = "exited" if process.poll() is not None else f"not ready after {timeout:.0f} s"
                    raise RuntimeError(f"{command[0]} {state}: {log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def uvicorn_command(
    app: str, port: int, *, python: str | Path = sys.executable, app_dir: Path | None = None
) -> list[str]:
    """`python -m uvicorn app` on 127.0.0.1:port; the service with the options the image and `make serve` use."""
    command = [str(python), "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    if app == SERVICE_APP:
        command += SERVICE_OPTIONS
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    return command
