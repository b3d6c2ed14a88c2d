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
    for command in ("list-object-versions", "delete-objects", "batch-delete-image", 'pulumi destroy -s "$STACK"'):
        assert command in teardown
    for project in ("-C stacks/eks", "-C stacks/ecs"):
        assert f'pulumi destroy {project} -s "$STACK"' in teardown


def test_monthly_costs_live_in_one_table() -> None:
    """The guide said $200-210 for EKS where its runbook said $250: no page states a price of its own; each renders
    stacks/costs.py through the docs' substitutions ({{ cost_... }}) and the generated table."""
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert [page.name for page in pages if re.search(r"\$\d", page.read_text())] == []
    text = DEPLOY.read_text()
    assert "```{include} _generated/costs.md" in text[text.index("## Cost") :]
    for page in ("runbook-ecs.md", "runbook-eks.md"):
        assert "deploy.md#cost" in (ROOT / "docs" / page).read_text(), page


def test_the_guide_gives_the_cheap_first_try_with_its_commands_cost_and_trade_off() -> None:
    text = DEPLOY.read_text()
    section = text[text.index("## A cheap first try") : text.index("## HTTPS")]
    assert "{{ cost_trial }}" in section
    assert "{{ cost_trial_nat }}" in section
    for command in (
        "stacks.ops bootstrap",
        "--environment trial",
        "pulumi stack init trial",
        "pulumi up -s trial",
        "pulumi up -C stacks/ecs -s trial",
        "--policy-pack-config stacks/policy/trial.json",
        "--platform linux/amd64",
        "pulumi config set diabetes:natGateways single",
    ):
        assert command in section, command
    assert "trade-off" in section
    assert "only the load\nbalancer's security group" in section or "only the load balancer's security group" in section
    for path in ("Pulumi.trial.yaml", "stacks/ecs/Pulumi.trial.yaml", "stacks/policy/trial.json"):
        assert (ROOT / path).is_file(), path


def test_the_guide_makes_https_the_first_step_and_names_the_optional_waf() -> None:
    text = DEPLOY.read_text()
    https = text[text.index("## HTTPS: the first step beyond a trial") :]
    for fragment in ("aws acm request-certificate", "certificateArn", "redirect", "aws acm wait certificate-validated"):
        assert fragment in https[: https.index("## An optional WAF")], fragment
    waf = text[text.index("## An optional WAF rate-based rule") :]
    assert "diabetes-ecs:waf.rateLimit" in waf
    assert "{{ cost_waf }}" in waf


def test_the_guide_names_what_pulumi_eks_cannot_express_and_how_previews_run() -> None:
    text = DEPLOY.read_text()
    eks = text[text.index("## EKS with pulumi-eks") : text.index("## EKS previews")]
    for fragment in ("serviceRole", "bootstrapClusterCreatorAdminPermissions", "log group", "permissions\n  boundary"):
        assert fragment in eks, fragment
    previews = text[text.index("## EKS previews") :]
    for fragment in ("dry run", "diabetes:previewers", "ValidatingAdmissionPolicy"):
        assert fragment in previews, fragment
