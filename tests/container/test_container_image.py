"""The Dockerfile, built and run for real: buildah builds the `api`, `api-nomodel` and `ui` targets on an offline
Debian bookworm base, podman runs them as uid 10001 on a read-only root filesystem, and the API serves /ready and
/predict from the model baked into the image, or from the model it fetched from S3 (moto) at start.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from ml.schema import CLASS_NAMES, DEFAULT_RECORD
from tests.container.conftest import Image, Running
from tests.container.engine import Engine, run
from tests.servers import MMAP_THRESHOLD, free_port

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

APP_UID = 10001
#: Uncompressed size budgets on the debootstrap base (about 130 MB of it is Debian and Python): a broken
#: budget means a dependency or stray files crept into an image.
SIZE_BUDGET_MB = {"api": 600, "ui": 600}
BOTH = pytest.mark.parametrize("target", ["api", "ui"])


@pytest.fixture
def container(request: pytest.FixtureRequest, target: str) -> Running:
    return request.getfixturevalue(f"{target}_container")  # type: ignore[no-any-return]


def _predict(base_url: str) -> dict[str, object]:
    body = json.dumps(dict(DEFAULT_RECORD)).encode()
    request = urllib.request.Request(
        f"{base_url}/predict", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        answer: dict[str, object] = json.loads(response.read())
    assert any(name in json.dumps(answer) for name in CLASS_NAMES), f"no class name in the prediction: {answer}"
    return answer


def test_api_predicts_from_the_baked_model(api_container: Running) -> None:
    _predict(api_container.url)


def test_api_image_bakes_the_model_where_model_uri_points(engine: Engine, api_container: Running) -> None:
    model_uri = engine.exec(api_container.name, "printenv", "MODEL_URI")
    assert model_uri.stdout.strip() == "/app/artifacts/model"
    listing = engine.exec(api_container.name, "ls", "/app/artifacts/model")
    assert {"manifest.json", "model.txt"} <= set(listing.stdout.split()), listing.stdout


def _raw(url: str, request: bytes) -> tuple[bytes, dict[str, object]]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, json.loads(body)


def test_api_runs_python_m_service_with_its_protocol_and_limits(api_container: Running) -> None:
    """Issues 15 and 21: the image starts `python -m service`, so the service's protocol and limits hold there too:
    its 400 and 431 in the JSON error shape, and no answer says `server: uvicorn`."""
    head, body = _raw(api_container.url, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert body["error"] == "bad_request"
    many = b"".join(b"X-%d: y\r\n" % i for i in range(1_000))
    head, body = _raw(api_container.url, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert head.startswith(b"HTTP/1.1 431"), head
    assert body["error"] == "headers_too_large"
    with urllib.request.urlopen(f"{api_container.url}/health", timeout=10) as response:
        assert response.headers.get("server") is None


def test_api_openmp_threads_sleep_when_idle(engine: Engine, api_container: Running) -> None:
    """The Dockerfile's OMP_WAIT_POLICY=PASSIVE reaches the service: spinning OpenMP threads (batch scoring) take the
    CPU the event loop needs on a task's fraction of a core. So does its allocator setting (a flood's memory is
    given back). The tests set both for every process they start, so only the image's own environment shows it."""
    environ = engine.exec(api_container.name, "cat", "/proc/1/environ").stdout.split("\0")
    assert "OMP_WAIT_POLICY=PASSIVE" in environ, environ
    assert f"MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}" in environ, environ  # a flood's memory is given back


@BOTH
def test_process_runs_as_unprivileged_user(engine: Engine, container: Running) -> None:
    status = engine.exec(container.name, "cat", "/proc/1/status")
    uid_line = next(line for line in status.stdout.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(APP_UID)] * 4, uid_line


@BOTH
def test_image_user_is_numeric_for_run_as_non_root(engine: Engine, target: str, request: pytest.FixtureRequest) -> None:
    image: Image = request.getfixturevalue(f"{target}_image")
    assert engine.inspect(image.tag, "{{.Config.User}}") == f"{APP_UID}:{APP_UID}"


@BOTH
def test_root_filesystem_read_only_and_tmp_writable(engine: Engine, container: Running) -> None:
    denied = engine.exec(container.name, "touch", "/app/written-at-runtime")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr
    assert engine.exec(container.name, "touch", "/tmp/written-at-runtime").returncode == 0


@BOTH
def test_healthcheck_passes(engine: Engine, container: Running) -> None:
    health = run(engine.podman("healthcheck", "run", container.name), check=False)
    assert health.returncode == 0, f"HEALTHCHECK failed: {health.stdout}{health.stderr}\n{engine.logs(container.name)}"


@BOTH
def test_runtime_has_no_uv_and_no_compilers(engine: Engine, container: Running) -> None:
    for tool in ("uv", "gcc", "cc", "g++", "make"):
        found = engine.exec(container.name, "sh", "-c", f"command -v {tool}")
        assert found.returncode != 0, f"{tool} is in the runtime image at {found.stdout.strip()}"
    assert engine.exec(container.name, "test", "-e", "/opt/uv").returncode != 0


@BOTH
def test_no_setuid_or_setgid_programs(engine: Engine, container: Running) -> None:
    found = engine.exec(container.name, "sh", "-c", "find / -xdev -type f -perm /6000 2>/dev/null")
    assert found.stdout.split() == [], f"setuid/setgid programs left in the image: {found.stdout.split()}"


@BOTH
def test_image_size_within_budget(
    target: str, request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> None:
    image: Image = request.getfixturevalue(f"{target}_image")
    size_mb = image.size_bytes / 1e6
    record_property(f"{target}_image_size_mb", round(size_mb))
    record_property(f"{target}_build_seconds", round(image.seconds))
    assert size_mb <= SIZE_BUDGET_MB[target], f"{target} image is {size_mb:.0f} MB (budget {SIZE_BUDGET_MB[target]})"


def test_ui_is_lean_and_reaches_the_api(engine: Engine, ui_container: Running) -> None:
    lightgbm = engine.exec(ui_container.name, "python", "-c", "import lightgbm")
    assert lightgbm.returncode != 0, "the ui image ships LightGBM, which only the api needs"
    schema = engine.exec(ui_container.name, "python", "-c", "import ml.schema, frontend")
    assert schema.returncode == 0, schema.stderr
    probe = "import os, urllib.request as u; u.urlopen(os.environ['API_URL'] + '/ready', timeout=5)"
    reached = engine.exec(ui_container.name, "python", "-c", probe)
    assert reached.returncode == 0, f"the ui container cannot reach API_URL: {reached.stderr}"


def test_ui_serves_the_app_page(ui_container: Running) -> None:
    with urllib.request.urlopen(f"{ui_container.url}/", timeout=10) as response:
        assert response.status == 200
        assert b"<noscript>" in response.read()


@pytest.fixture(scope="module")
def s3_model(trained_model_dir: Path, moto_endpoint: str) -> dict[str, str]:
    """The session's model uploaded to a moto bucket; the environment that points the API at it."""
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="image-test-models", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for path in trained_model_dir.iterdir():
        s3.upload_file(str(path), "image-test-models", f"champion/{path.name}")
    return {**credentials, "AWS_ENDPOINT_URL": moto_endpoint, "MODEL_URI": "s3://image-test-models/champion"}


def _serves_the_s3_model(engine: Engine, image: Image, env: dict[str, str], tmp: Path | None = None) -> None:
    port = free_port()
    with engine.container(image.tag, {**env, "SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port)}, tmp=tmp) as name:
        assert engine.exec(name, "ls", "/app/artifacts/model").stdout.strip() == "", "api-nomodel ships a model"
        if tmp is not None:
            denied = engine.exec(name, "touch", "/tmp/probe")
            assert "Permission denied" in denied.stderr, "the /tmp volume must be as Fargate's: not writable by 10001"
        engine.wait_http(name, f"http://127.0.0.1:{port}/ready", timeout=120)
        _predict(f"http://127.0.0.1:{port}")


def test_api_nomodel_fetches_the_model_from_s3_at_start(
    engine: Engine, api_nomodel_image: Image, s3_model: dict[str, str]
) -> None:
    """The second way in (MODEL_URI=s3://...) on a read-only root with a writable /tmp (as on EKS: an emptyDir)."""
    _serves_the_s3_model(engine, api_nomodel_image, s3_model)


def test_api_nomodel_loads_the_s3_model_with_the_tmp_volume_fargate_mounts(
    engine: Engine, api_nomodel_image: Image, s3_model: dict[str, str], tmp_path: Path
) -> None:
    """As the ECS task runs it: read-only root, uid 10001, and at /tmp the empty bind volume Fargate mounts,
    root-owned 0755, so nothing of the app may write there; the model must load all the same (into memory)."""
    fargate_tmp = tmp_path / "fargate-tmp"
    fargate_tmp.mkdir()
    os.chown(fargate_tmp, 0, 0)
    fargate_tmp.chmod(0o755)
    _serves_the_s3_model(engine, api_nomodel_image, s3_model, tmp=fargate_tmp)
