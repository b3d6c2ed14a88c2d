"""Fixtures for the container tests: engine, offline base, trained model, built images, running containers.

The tests skip only where buildah or podman (or root, which debootstrap and rootful storage need) is missing;
`REQUIRE_CONTAINER_TESTS=1` turns that skip into a failure so CI can never pass without running them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.engine import Engine, EngineError, make_context, missing_tools
from tests.servers import free_port

#: Printed at the end of the run (image sizes, build times), so every CI log shows them.
MEASUREMENTS: list[str] = []


@dataclass(frozen=True)
class Image:
    """A built image and what it cost."""

    tag: str
    seconds: float
    size_bytes: int


@dataclass(frozen=True)
class Running:
    """A running container and the base URL it serves on (127.0.0.1)."""

    name: str
    url: str


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.write_sep("-", "container images")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def engine() -> Engine:
    problems = [f"{', '.join(missing)} not installed" for missing in [missing_tools()] if missing]
    if os.geteuid() != 0:
        problems.append("not running as root (debootstrap and the container storage need it)")
    if problems:
        message = (
            f"container tests cannot run: {'; '.join(problems)}. "
            "Install with: apt-get install -y buildah podman runc skopeo debootstrap fuse-overlayfs"
        )
        if os.environ.get("REQUIRE_CONTAINER_TESTS") == "1":
            pytest.fail(message + " (REQUIRE_CONTAINER_TESTS=1 forbids skipping)")
        pytest.skip(message)
    try:
        return Engine.create()
    except EngineError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    try:
        return engine.base_image()
    except EngineError as exc:
        pytest.fail(f"could not make the offline Debian base image: {exc}")


@pytest.fixture(scope="session")
def build_context(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Path:
    """What .dockerignore lets through, with the session's model (trained on synthetic rows) at artifacts/model."""
    return make_context(tmp_path_factory.mktemp("context"), trained_model_dir)


def _build(engine: Engine, base_image: str, context: Path, target: str) -> Image:
    tag = f"localhost/diabetes-{target}:test"
    try:
        seconds = engine.build(context, target, tag, {"BASE_IMAGE": base_image})
    except EngineError as exc:
        pytest.fail(f"building the {target} target failed: {exc}")
    image = Image(tag, seconds, engine.image_size(tag))
    MEASUREMENTS.append(
        f"{target}: {image.size_bytes / 1e6:.0f} MB, built in {seconds:.0f} s ({engine.driver} storage)"
    )
    return image


@pytest.fixture(scope="session")
def api_image(engine: Engine, base_image: str, build_context: Path) -> Image:
    return _build(engine, base_image, build_context, "api")


@pytest.fixture(scope="session")
def ui_image(engine: Engine, base_image: str, build_context: Path) -> Image:
    return _build(engine, base_image, build_context, "ui")


def _serve(engine: Engine, image: Image, env: dict[str, str], port: int, health: str) -> Iterator[Running]:
    """Run the image read-only on 127.0.0.1:port and wait until the health path answers 200."""
    with engine.container(image.tag, env) as name:
        url = f"http://127.0.0.1:{port}"
        try:
            engine.wait_http(name, f"{url}{health}", timeout=120)
        except EngineError as exc:
            pytest.fail(f"{image.tag} never answered {health}: {exc}")
        yield Running(name, url)


@pytest.fixture(scope="module")
def api_container(engine: Engine, api_image: Image) -> Iterator[Running]:
    """The api image on a read-only root filesystem, bound to 127.0.0.1 on a free port, ready."""
    port = free_port()
    env = {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port)}
    yield from _serve(engine, api_image, env, port, "/ready")


@pytest.fixture(scope="module")
def ui_container(engine: Engine, ui_image: Image, api_container: Running) -> Iterator[Running]:
    """The ui image on a read-only root filesystem, pointed at the api container, healthy."""
    port = free_port()
    env = {
        "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
        "STREAMLIT_SERVER_PORT": str(port),
        "API_URL": api_container.url,
    }
    yield from _serve(engine, ui_image, env, port, "/_stcore/health")


@pytest.fixture(scope="session")
def api_nomodel_image(engine: Engine, base_image: str, build_context: Path, api_image: Image) -> Image:
    """The api image minus the model: every layer comes from the api build's cache."""
    return _build(engine, base_image, build_context, "api-nomodel")
