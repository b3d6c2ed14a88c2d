"""Start real servers (uvicorn, streamlit) in subprocesses on free loopback ports, and always stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.servers import ROOT, running_server


@contextmanager
def running(
    command: Sequence[str],
    probe_url: str,
    *,
    env: Mapping[str, str],
    log: Path,
    timeout: float = 60.0,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """`tests.servers.running_server` from the repository root, with `env` added to this process's environment."""
    environment = {**os.environ, **env}
    with running_server(
        command, probe_url, log, env=environment, cwd=ROOT, timeout=timeout, stop_signal=stop_signal
    ) as process:
        yield process


def streamlit_command(port: int) -> list[str]:
    """`streamlit run frontend/app.py` as `make ui` runs it, with the upload limit of the image."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "frontend" / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.maxUploadSize",
        "20",
    ]
