"""Run `python -m stacks.ops` as CI and the docs do: a fresh interpreter in the repository, output captured."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_ops(
    *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI's exit status, stdout and stderr (inheriting the AWS_* test variables unless `env` is given)."""
    return subprocess.run(
        [sys.executable, "-m", "stacks.ops", *args],
        input=stdin,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
