"""Start a real server process for a test and wait until it answers; always stop it afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

#: The repository root: where servers run from, so `frontend/app.py` resolves.
ROOT = Path(__file__).resolve().parents[1]
#: How the tests stop `python -m service` when they are done with it: Ctrl-C, which skips the SIGTERM drain (5 s of
#: /ready 503 by default, `drain_seconds`) that every stop would otherwise wait out. tests/service/test_shutdown.py
#: and test_protocol_attacks.py stop it with SIGTERM and check the drain.
SERVICE_STOP_SIGNAL = signal.SIGINT


#: glibc's `MALLOC_MMAP_THRESHOLD_` in the image and the Makefile: blocks from 128 KiB on are mmapped and given back
#: when freed (the default threshold rises as large blocks are freed, and the heap keeps a flood's memory).
MMAP_THRESHOLD = 128 * 1024


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
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command`, poll `ready_url` until it answers 2xx, yield the process, then stop it with `stop_signal`."""
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
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def service_command(python: str | Path = sys.executable) -> list[str]:
    """How the image, `make serve` and `make demo` start the service: `python -m service`, nothing else (its options
    are its settings, from the environment: `service_environment`)."""
    return [str(python), "-m", "service"]


def service_environment(port: int, model_uri: str | Path, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the service on 127.0.0.1:`port` serving `model_uri`, and more `settings`."""
    address = {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port), "MODEL_URI": str(model_uri)}
    return {**os.environ, **address, **(settings or {})}


def uvicorn_command(app: str, port: int, *, app_dir: Path | None = None) -> list[str]:
    """`python -m uvicorn app` on 127.0.0.1:port, for a test's own ASGI app (the service has `service_command`)."""
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    return command
