"""docs/deploy.md shows the CI roles exactly as `stacks.ops ci-roles` prints them for the documented arguments."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy.md"


def test_the_ci_role_policies_in_the_docs_are_what_the_code_prints() -> None:
    text = DEPLOY.read_text()
    command = re.search(r"uv run python -m stacks\.ops ci-roles (.+?)\s+> ci-roles\.json", text, re.S)
    assert command, "deploy.md no longer shows the ci-roles command"
    args = shlex.split(" ".join(command[1].replace("\\", " ").split()))
    printed = subprocess.run(
        [sys.executable, "-m", "stacks.ops", "ci-roles", *args], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    documented = re.search(r"```json\n(.+?)```", text, re.S)
    assert documented, "deploy.md no longer shows the generated roles"
    assert json.loads(documented[1]) == json.loads(printed)
    assert documented[1] == printed


def test_the_readme_deploys_each_project_on_its_own() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in ("pulumi up -s dev", "pulumi up -C stacks/ecs -s dev", "pulumi up -C stacks/eks -s dev"):
        assert command in readme
