"""docs/deploy.md shows the CI roles exactly as `stacks.ops ci-roles` prints them for the documented arguments."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stacks.ops_cli import run_ops

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy.md"


def test_the_ci_role_policies_in_the_docs_are_what_the_code_prints() -> None:
    text = DEPLOY.read_text()
    command = re.search(r"uv run python -m stacks\.ops ci-roles (.+?)\s+> ci-roles\.json", text, re.S)
    assert command, "deploy.md no longer shows the ci-roles command"
    args = shlex.split(" ".join(command[1].replace("\\", " ").split()))
    done = run_ops("ci-roles", *args)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
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


def _bash_blocks(section: str) -> list[str]:
    text = DEPLOY.read_text()
    start = text.index(f"## {section}")
    body = text[start : text.index("\n## ", start + 3)]
    return re.findall(r"```bash\n(.+?)```", body, re.S)


@pytest.mark.parametrize("section", ["Where the model comes from", "First deployment"])
def test_the_guides_model_commands_stop_on_a_synthetic_model(
    section: str, trained_model_dir: Path, tmp_path: Path
) -> None:
    """The guide computed the digest with sha256sum and ran model-digest for information only: a synthetic model was
    uploaded and configured anyway. Run as written (stubs for the cloud CLIs), nothing after the refusal may run."""
    import os
    import shutil

    shutil.copytree(trained_model_dir, tmp_path / "artifacts" / "model")  # make demo's synthetic model
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("aws", "pulumi", "docker", "git"):
        (stubs / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\necho stub-output\n')
    (stubs / "uv").write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} "$@"\n')  # `uv run python ...`
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    block = _bash_blocks(section)[0]  # the one that handles the model
    done = subprocess.run(["bash", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert "SYNTHETIC" in done.stderr
    assert done.returncode != 0
    assert not log.exists(), log.read_text()


def test_the_guide_creates_the_roles_one_way_and_states_what_stays_possible() -> None:
    """The by-hand role creation made three roles but no boundary and no OIDC provider: a bounded CreateRole then
    failed. The bootstrap is the one way; what IAM cannot prevent is said plainly."""
    text = DEPLOY.read_text()
    assert "aws iam create-role" not in text
    assert "aws iam put-role-policy" not in text
    risks = text[text.index("## What stays possible") : text.index("## Configuration")]
    for fragment in ("trust", "boundary", "review-state", "Block Public", "0.0.0.0/0"):
        assert fragment in risks, fragment
    assert "cents a month" not in text.replace("the rest cents", "")


def test_the_guide_says_how_to_run_eks_by_hand_and_tear_it_down() -> None:
    """A human not in admins was stopped by the access check, one in admins collided with the creator's entry."""
    text = DEPLOY.read_text()
    first = text[text.index("**EKS later, by hand.**") : text.index("CI on `main` runs exactly")]
    assert "'diabetes-eks:eks.access.creator' role/<your-role>" in first
    assert "'diabetes-eks:eks.access.admins[0]' role/diabetes-dev-github-deploy" in first
    teardown = text[text.index("## Tear down") : text.index("## Cost")]
    assert "stacks.ops review-state" in teardown
    assert "eks.access.admins" in teardown


def test_contributing_and_the_readme_agree_with_the_guide() -> None:
    """CONTRIBUTING asked for a Pulumi Cloud token, repository-wide variables and "both platforms off", left out
    deploy-root and MODEL_SHA256; the README called ci-roles the CI bootstrap."""
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for stale in ("PULUMI_ACCESS_TOKEN", "both platforms off", "`AWS_REGION`,", "`AWS_PREVIEW_ROLE_ARN`."):
        assert stale not in contributing, stale
    for current in ("stacks.ops bootstrap", "AWS_REGION_<STACK>", "MODEL_SHA256", "deploy-root", "main` only"):
        assert current in contributing, current
    readme = (ROOT / "README.md").read_text()
    assert "stacks.ops ci-roles" not in readme
    assert "python -m stacks.ops bootstrap" in readme


def test_the_documented_render_k8s_command_works_in_a_fresh_shell(tmp_path: Path) -> None:
    """Review 2, N6: the guide's render-k8s command failed without AWS_REGION (the stack file names no region)."""
    text = DEPLOY.read_text()
    command = re.search(r"uv run python -m stacks\.ops (render-k8s .+?)\n(?!\s)", text, re.S)
    assert command, "deploy.md no longer shows the render-k8s command"
    shell = {"$API_REPO": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/diabetes-dev/api", "$UI_REPO": "r/ui"}
    line = " ".join(command[1].replace("\\\n", " ").split())
    for variable, value in {**shell, "$SHA": "0a1b2c3"}.items():
        line = line.replace(variable, value)
    args = [str(tmp_path / "k8s") if arg == "k8s/" else arg for arg in shlex.split(line)]
    fresh = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")}
    done = run_ops(*args, env=fresh)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "k8s").glob("*.yaml"))) >= 10
