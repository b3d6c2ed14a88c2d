"""The image, the Makefile and the test servers start the service and the UI alike, with the limits they need."""

from __future__ import annotations

import re

from frontend.settings import Settings
from stacks.workloads import API_IDLE_TIMEOUT
from tests.frontend.ui_servers import streamlit_command
from tests.servers import ROOT, SERVICE_OPTIONS

DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def _one(pattern: str, text: str) -> str:
    (found,) = set(re.findall(pattern, text))
    return str(found)


def _as_variables(options: list[str]) -> dict[str, str]:
    """uvicorn command-line options as the UVICORN_* variables that set the same (`--no-x` is `UVICORN_X=false`)."""
    variables: dict[str, str] = {}
    words = iter(options)
    for word in words:
        if word.startswith("--no-"):
            variables["UVICORN_" + word[5:].replace("-", "_").upper()] = "false"
        else:
            variables["UVICORN_" + word[2:].replace("-", "_").upper()] = next(words)
    return variables


def test_the_image_and_make_serve_start_uvicorn_as_the_tests_do() -> None:
    expected = _as_variables(list(SERVICE_OPTIONS))
    in_image = {name: value for name, value in re.findall(r"(UVICORN_[A-Z_]+)=(\S+)", DOCKERFILE) if name in expected}
    assert in_image == expected
    in_make = _one(r"UVICORN_OPTIONS \?= ((?:.*\\\n)*.*)", MAKEFILE).replace("\\\n", " ").split()
    assert _as_variables(in_make) == expected
    assert MAKEFILE.count("$(UVICORN_OPTIONS)") == MAKEFILE.count("uvicorn service.api:app")


def test_keep_alive_outlasts_the_load_balancers_idle_timeout() -> None:
    """An ALB reusing a connection the service just closed answers 502: the service must close last."""
    assert int(_as_variables(list(SERVICE_OPTIONS))["UVICORN_TIMEOUT_KEEP_ALIVE"]) > API_IDLE_TIMEOUT


def test_every_launcher_sets_the_upload_limit_the_row_limit_needs() -> None:
    needed = str(Settings(API_URL="http://127.0.0.1:8000").upload_limit_mb)  # type: ignore[call-arg]
    command = streamlit_command(8501)
    assert command[command.index("--server.maxUploadSize") + 1] == needed
    assert _one(r"STREAMLIT_SERVER_MAX_UPLOAD_SIZE=(\d+)", DOCKERFILE) == needed
    assert _one(r"UI_UPLOAD_MB \?= (\d+)", MAKEFILE) == needed
    assert MAKEFILE.count("--server.maxUploadSize $(UI_UPLOAD_MB)") == MAKEFILE.count("streamlit run")
