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


def test_every_image_build_in_the_guides_targets_the_tasks_architecture() -> None:
    """The task definitions are X86_64: a build on an Apple Silicon laptop fails at run time (exec format error)."""
    text = "\n".join(path.read_text() for path in (ROOT / "docs").glob("*.md"))
    builds = [line for line in text.splitlines() if re.search(r"docker (buildx )?build\b", line)]
    assert builds
    assert [line for line in builds if "--platform linux/amd64" not in line] == []


def test_the_guide_bootstraps_in_one_command_and_tears_down_completely() -> None:
    text = DEPLOY.read_text()
    assert "uv run python -m stacks.ops bootstrap" in text
    assert "secretsprovider: awskms://" not in text, "the region and alias come from the bootstrap, not the docs"
    teardown = text[text.index("## Tear down") : text.index("## Cost")]
    for command in ("list-object-versions", "delete-objects", "batch-delete-image", "pulumi destroy -s dev"):
        assert command in teardown


def test_monthly_costs_live_in_one_table() -> None:
    """The guide said $200-210 for EKS where its runbook said $250: pages other than the cost table state no price."""
    for page in ("runbook-ecs.md", "runbook-eks.md", "operations.md"):
        text = (ROOT / "docs" / page).read_text()
        assert not re.findall(r"\$\d", text), page
        assert "deploy.md#cost" in text or page == "operations.md"
