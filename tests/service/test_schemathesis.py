"""Property-based run over the published OpenAPI schema against a real server: no 5xx, every answer conforms.

Schemathesis generates valid and invalid requests for every operation (at most 50 examples per operation and
phase, fixed seed, so CI stays fast and a failure can be replayed) and applies all its checks: no server errors,
documented status codes and content types, response bodies matching their schemas, schema-invalid requests
refused and schema-valid ones accepted. It runs through its CLI: its lazy pytest loader does not support the
pytest version in use.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.service.helpers import Server

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_api_conforms_to_its_schema(live_server: Server) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{live_server.url}/openapi.json",
        "--checks=all",
        "--max-examples=50",
        "--seed=1",
        "--generation-database=none",
        "--workers=1",
        "--request-timeout=30",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "Tested: 6" in report, report
    assert "No issues found" in report, report
