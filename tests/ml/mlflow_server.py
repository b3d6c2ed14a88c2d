"""A real `mlflow server` on 127.0.0.1 for the tracking and promotion tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, running_server


@dataclass(frozen=True)
class MlflowServer:
    url: str
    artifacts: Path  # the server's artifact store on disk, for tampering with it


@contextmanager
def running_mlflow_server(root: Path) -> Iterator[MlflowServer]:
    """An MLflow tracking server (sqlite store and served artifacts under `root`) on a free loopback port."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    url = f"http://127.0.0.1:{port}"
    with running_server(command, f"{url}/health", root / "server.log", env=env, cwd=root, timeout=120):
        yield MlflowServer(url, root / "artifacts")
