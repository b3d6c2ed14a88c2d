"""What every launcher must set: the UI's upload limit (Streamlit takes it as an option), and a keep-alive that
outlasts the load balancer's. The service has no launch options to compare: `python -m service` takes every one
from `service.settings.Settings` (tests/service/test_server.py)."""

from __future__ import annotations

import re

from frontend.settings import Settings as UiSettings
from service.settings import Settings
from stacks.workloads import API_IDLE_TIMEOUT
from tests.frontend.ui_servers import streamlit_command
from tests.servers import MMAP_THRESHOLD, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def _one(pattern: str, text: str) -> str:
    (found,) = set(re.findall(pattern, text))
    return str(found)


def test_the_services_keep_alive_outlasts_the_load_balancers_idle_timeout() -> None:
    """An ALB reusing a connection the service just closed answers 502: the service must close last. The default
    covers the API's own load balancer; the stacks set more when the UI's shares it (tests/stacks)."""
    assert Settings().keep_alive_seconds > API_IDLE_TIMEOUT


def test_every_launcher_sets_the_upload_limit_the_row_limit_needs() -> None:
    needed = str(UiSettings(API_URL="http://127.0.0.1:8000").upload_limit_mb)  # type: ignore[call-arg]
    command = streamlit_command(8501)
    assert command[command.index("--server.maxUploadSize") + 1] == needed
    assert _one(r"STREAMLIT_SERVER_MAX_UPLOAD_SIZE=(\d+)", DOCKERFILE) == needed
    assert _one(r"UI_UPLOAD_MB \?= (\d+)", MAKEFILE) == needed
    assert MAKEFILE.count("--server.maxUploadSize $(UI_UPLOAD_MB)") == MAKEFILE.count("streamlit run")


def test_every_launcher_gives_large_freed_blocks_back_to_the_system() -> None:
    """Review 4, R4-1: after a flood of 2 MB batches the process kept 260-290 MB resident (glibc's mmap threshold
    rises as large blocks are freed, and the heap keeps them); with a fixed threshold, 150-170 MB."""
    assert _one(r"MALLOC_MMAP_THRESHOLD_=(\d+)", DOCKERFILE) == str(MMAP_THRESHOLD)
    assert _one(r"export MALLOC_MMAP_THRESHOLD_ \?= (\d+)", MAKEFILE) == str(MMAP_THRESHOLD)
