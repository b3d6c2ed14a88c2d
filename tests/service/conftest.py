"""Service fixtures: the app through its lifespan (in process), and a real uvicorn server in a subprocess."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.settings import Settings
from tests.service.helpers import Server, serving, wait_ready


@pytest.fixture
def make_client(request: pytest.FixtureRequest) -> Callable[..., TestClient]:
    """Start the app with its lifespan and wait until the model finished loading (either way)."""

    def make(**settings: Any) -> TestClient:
        app = create_app(Settings(**settings))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        request.addfinalizer(lambda: client.__exit__(None, None, None))
        assert app.state.model.wait(30), "the model did not finish loading within 30 s"
        return client

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient], trained_model_dir: Path) -> TestClient:
    return make_client(MODEL_URI=str(trained_model_dir))


@pytest.fixture
def corrupt_model_dir(trained_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the trained model whose model.txt was changed after training (sha256 no longer matches)."""
    target = tmp_path / "corrupt-model"
    shutil.copytree(trained_model_dir, target)
    with (target / "model.txt").open("a") as handle:
        handle.write("\n# tampered\n")
    return target


@pytest.fixture(scope="module")
def live_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real uvicorn process serving the session's trained model, ready."""
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with serving(str(trained_model_dir), log) as server:
        assert wait_ready(server.url).status_code == 200, log.read_text()
        yield server
