"""Real servers for the UI tests: the service with a model, the service without one, a slow one, and none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_servers import running

from tests.servers import SERVICE_STOP_SIGNAL, free_port, service_command, service_environment, uvicorn_command


@pytest.fixture(scope="session")
def api_url(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real prediction service, serving the session's synthetic-data model."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("api") / "service.log"
    environment = service_environment(port, trained_model_dir)
    with running(service_command(), f"{url}/ready", env=environment, log=log, stop_signal=SERVICE_STOP_SIGNAL):
        yield url


@pytest.fixture(scope="session")
def unready_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real service started on an empty model folder: alive, but answering 503 to predictions."""
    folder = tmp_path_factory.mktemp("no-model")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment, log = service_environment(port, folder), folder / "service.log"
    with running(service_command(), f"{url}/health", env=environment, log=log, stop_signal=SERVICE_STOP_SIGNAL):
        yield url


@pytest.fixture(scope="session")
def slow_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A uvicorn server that takes 5 s to answer anything but /health."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("slow-api") / "uvicorn.log"
    command = [
        *uvicorn_command("ui_slow_api:app", port, app_dir=Path(__file__).parent),
        "--timeout-graceful-shutdown",
        "1",
    ]
    with running(command, f"{url}/health", env={"SLOW_API_SECONDS": "5"}, log=log):
        yield url


@pytest.fixture
def down_api_url() -> str:
    """An address where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
