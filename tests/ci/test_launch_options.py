"""The image, the Makefile and the test servers start the UI with the same limits, the ones its settings need."""

from __future__ import annotations

import re

from frontend.settings import Settings
from tests.frontend.ui_servers import streamlit_command
from tests.servers import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def _one(pattern: str, text: str) -> str:
    (found,) = set(re.findall(pattern, text))
    return str(found)


def test_every_launcher_sets_the_upload_limit_the_row_limit_needs() -> None:
    needed = str(Settings(API_URL="http://127.0.0.1:8000").upload_limit_mb)  # type: ignore[call-arg]
    command = streamlit_command(8501)
    assert command[command.index("--server.maxUploadSize") + 1] == needed
    assert _one(r"STREAMLIT_SERVER_MAX_UPLOAD_SIZE=(\d+)", DOCKERFILE) == needed
    assert _one(r"UI_UPLOAD_MB \?= (\d+)", MAKEFILE) == needed
    assert MAKEFILE.count("--server.maxUploadSize $(UI_UPLOAD_MB)") == MAKEFILE.count("streamlit run")
