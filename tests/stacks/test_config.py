"""Stack settings: the three projects and their stack files, and bad values failing early with the key and fix."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from stacks.config import (
    CPU_UNITS_PER_VCPU,
    FARGATE_SIZES,
    PREDICTIONS_PER_CORE_SECOND,
    REQUEST_TARGET_SHARE,
    SECONDS_PER_MINUTE,
    UI_REQUESTS_PER_TARGET,
    ConfigError,
    EcsStackSettings,
    EksStackSettings,
    ServiceSize,
    SharedSettings,
    StackSettings,
    UiSettings,
    load_settings,
    parse_settings,
    requests_per_target_for,
)
from tests.stacks.conftest import MODEL_SHA256
from tests.stacks.harness import DEPLOYER, EKS_ACCESS, ROOT_OUTPUTS_FOR_CONFIG, Recorder, RecordingMonitor, settings_for

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = {
    ROOT: ("diabetes", SharedSettings),
    ROOT / "stacks" / "ecs": ("diabetes-ecs", EcsStackSettings),
    ROOT / "stacks" / "eks": ("diabetes-eks", EksStackSettings),
}


def _stack_file_values(path: Path, namespace: str) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())["config"]
    values = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{namespace}:")}
    return {**values, "region": "eu-west-1", "environment": "dev"}


@pytest.mark.parametrize("folder", list(PROJECTS), ids=lambda folder: PROJECTS[folder][0])
def test_each_project_runs_in_the_repositorys_uv_environment(folder: Path) -> None:
    """`toolchain: uv` without `virtualenv`: Pulumi uses the .venv next to the nearest uv.lock, found by searching up
    from the project folder, so no project may have a pyproject.toml or requirements.txt of its own."""
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECTS[folder][0]
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}
    nearest = next(d for d in [folder, *folder.parents] if (d / "uv.lock").exists() or (d / "pyproject.toml").exists())
    assert nearest == ROOT
    assert not (folder / "requirements.txt").exists()
    program = ROOT / project.get("main", ".") if folder == ROOT else folder
    assert (program / "__main__.py").is_file()


@pytest.mark.parametrize("folder", list(PROJECTS), ids=lambda folder: PROJECTS[folder][0])
def test_each_dev_stack_file_is_valid_and_leaves_region_and_key_to_the_bootstrap(folder: Path) -> None:
    """A committed region or KMS alias would not match the account the bootstrap set up (it writes both)."""
    namespace, model = PROJECTS[folder]
    stack_file = folder / "Pulumi.dev.yaml"
    loaded = yaml.safe_load(stack_file.read_text())
    assert "secretsprovider" not in loaded
    assert "encryptedkey" not in loaded
    assert "aws:region" not in loaded["config"]
    values = _stack_file_values(stack_file, namespace)
    if model is not SharedSettings:
        values["imageTag"] = "3f2c1ab"  # CI passes it with --config
    settings: StackSettings = parse_settings(model, values, namespace)
    assert settings.name == "diabetes-dev"
    assert settings.tags_for("x")["Owner"] == "ml-platform"


def test_platform_stack_files_have_no_on_off_switches() -> None:
    for folder in PROJECTS:
        keys = yaml.safe_load((folder / "Pulumi.dev.yaml").read_text())["config"]
        assert not [key for key in keys if key.endswith(("Enabled", "enabled"))], keys


@pytest.mark.parametrize(
    ("model", "overrides", "fragment"),
    [
        (EcsStackSettings, {"api": {"cpu": 300}}, "diabetes-ecs:api: cpu 300 is not a Fargate size"),
        (EcsStackSettings, {"api": {"cpu": 256, "memory": 4096}}, "memory 4096 MiB is not valid with cpu 256"),
        (EcsStackSettings, {"api": {"desiredCount": 9, "maxCount": 4}}, "minCount <= desiredCount <= maxCount"),
        (EcsStackSettings, {"api": {"cpus": 256}}, "diabetes-ecs:api.cpus: Extra inputs are not permitted"),
        (EcsStackSettings, {"imageTag": "latest"}, "diabetes-ecs:imageTag: imageTag must be an immutable ECR tag"),
        (SharedSettings, {"logRetentionDays": 42}, "logRetentionDays 42 is not accepted by CloudWatch"),
        (EcsStackSettings, {"modelUri": "s3://models-bucket"}, "modelUri must look like s3://<bucket>/<prefix>"),
        (EcsStackSettings, {"modelUri": "models/champion"}, "absolute path inside the image"),
        (EcsStackSettings, {"modelUri": "s3://models-bucket/champion"}, "modelSha256 is required"),
        (
            EcsStackSettings,
            {"modelUri": "s3://acme-payroll/champion", "modelSha256": "a" * 64},
            "modelUri must be in this stack's model bucket (diabetes-dev-models-...",
        ),
        (
            EcsStackSettings,
            {"certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f6b1a2c-1111-4222-8333-944455556666"},
            "certificateArn is in us-east-1, the stack in eu-west-1",
        ),
        (EcsStackSettings, {"modelSha256": "ABC"}, "diabetes-ecs:modelSha256"),
        (EcsStackSettings, {"certificateArn": "arn:aws:iam::123456789012:server-certificate/x"}, "ACM certificate"),
        (SharedSettings, {"natGateways": "three"}, "diabetes:natGateways"),
        (SharedSettings, {"project": "diabetes-status-prod"}, "longer than 20 characters"),
        # dev-2 would share every grant made on diabetes-dev-* (load balancers, log groups, WAF, task families).
        (SharedSettings, {"environment": "dev-2"}, "diabetes:environment"),
        (EksStackSettings, {"eks": {"access": {"creator": "deploy"}}}, "diabetes-eks:eks.access.creator"),
        (EksStackSettings, {"eks": {"access": {"admins": ["deploy"]}}}, "not IAM roles or users"),
        (EksStackSettings, {"eks": {"publicAccessCidrs": ["everyone"]}}, "publicAccessCidrs must be IPv4 CIDRs"),
        (EksStackSettings, {"eks": {"lbControllerChartVersion": "1.14.0"}}, "Extra inputs are not permitted"),
        (EksStackSettings, {"eks": {"version": "1.29"}}, "has no support dates in stacks/eks/versions.py"),
        (
            EksStackSettings,
            {"eks": {"access": {"admins": ["role/a"], "viewers": ["role/a"]}}},
            "both admins and viewers",
        ),
    ],
)
def test_invalid_values_name_the_key_and_the_fix(model: type, overrides: dict[str, Any], fragment: str) -> None:
    if model is EksStackSettings and "access" not in overrides.get("eks", {"access": 1}):
        overrides = {"eks": {**overrides["eks"], "access": EKS_ACCESS}}
    with pytest.raises(ConfigError) as caught:
        settings_for(model, **overrides)
    message = str(caught.value)
    assert fragment in message
    assert "pulumi config set --path" in message


def test_the_eks_stack_requires_its_access_entries() -> None:
    with pytest.raises(ConfigError, match=r"diabetes-eks:eks.access: Field required"):
        parse_settings(
            EksStackSettings, {"environment": "dev", "region": "eu-west-1", "imageTag": "a", "eks": {}}, "diabetes-eks"
        )


def test_an_s3_model_with_its_digest_is_accepted() -> None:
    settings = settings_for(EcsStackSettings, modelUri="s3://diabetes-dev-models-1a2b/m/v3", modelSha256=MODEL_SHA256)
    assert settings.model_s3 is not None
    assert (settings.model_s3.bucket, settings.model_s3.prefix) == ("diabetes-dev-models-1a2b", "m/v3")


def _with_config(project: str, values: dict[str, str]) -> None:
    pulumi.runtime.set_mocks(Recorder(), project=project, stack="staging", preview=False)
    pulumi.runtime.set_all_config(values)


def test_load_settings_reads_the_projects_own_namespace() -> None:
    _with_config(
        "diabetes-ecs",
        {
            "aws:region": "us-east-2",
            "diabetes-ecs:imageTag": "9b1c2d3",
            "diabetes-ecs:api": json.dumps({"cpu": 1024, "memory": 2048}),
            "diabetes-ecs:publicApiDocs": "true",
        },
    )
    settings = load_settings(EcsStackSettings)
    assert (settings.environment, settings.region, settings.image_tag) == ("staging", "us-east-2", "9b1c2d3")
    assert settings.api.cpu == 1024
    assert settings.public_api_docs is True


def test_load_settings_rejects_unknown_keys() -> None:
    _with_config(
        "diabetes-ecs", {"aws:region": "us-east-2", "diabetes-ecs:imageTag": "1", "diabetes-ecs:ecsEnabled": "x"}
    )
    with pytest.raises(ConfigError, match=r"Unknown config key\(s\) diabetes-ecs:ecsEnabled"):
        load_settings(EcsStackSettings)


def test_load_settings_falls_back_to_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    _with_config("diabetes", {})
    assert load_settings(SharedSettings).region == "eu-central-1"


def test_load_settings_requires_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    _with_config("diabetes", {})
    with pytest.raises(ConfigError, match=r"pulumi config set aws:region"):
        load_settings(SharedSettings)


@pytest.mark.parametrize(
    ("entry", "project", "config", "expected"),
    [
        ("stacks/__main__.py", "diabetes", {}, "aws:ecr/repository:Repository"),
        ("stacks/ecs/__main__.py", "diabetes-ecs", {"diabetes-ecs:imageTag": "3f2c1ab"}, "aws:ecs/cluster:Cluster"),
        (
            "stacks/eks/__main__.py",
            "diabetes-eks",
            {"diabetes-eks:imageTag": "3f2c1ab", "diabetes-eks:eks": json.dumps({"access": EKS_ACCESS})},
            "eks:index:Cluster",
        ),
    ],
)
def test_each_entry_point_builds_its_stack_from_config(
    entry: str, project: str, config: dict[str, str], expected: str
) -> None:
    recorder = Recorder(ROOT_OUTPUTS_FOR_CONFIG, DEPLOYER)
    pulumi.runtime.set_mocks(
        recorder,
        project=project,
        stack="dev",
        preview=False,
        organization="organization",
        monitor=RecordingMonitor(recorder),
    )
    pulumi.runtime.set_all_config({"aws:region": "eu-west-1", **config})

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(ROOT / entry), run_name="__main__")

    program()
    assert recorder.of_type(expected)
    reference = [r for r in recorder.resources if r.typ == "pulumi:pulumi:StackReference"]
    assert not reference  # the mock answers StackReference without recording it


def test_a_project_other_than_the_bootstraps_is_refused_before_anything_is_made() -> None:
    """Setting diabetes:project moved every role path and the boundary name away from what the CI deploy role (made
    for the bootstrap's project) may manage: the update failed half-way with AccessDenied."""
    from stacks.root import build
    from tests.stacks.harness import DEPLOYER, run_program

    with pytest.raises(Exception, match="runs as diabetes-dev-github-deploy, the CI role of another bootstrap"):
        run_program(build, settings_for(SharedSettings, project="acme"), deployer=DEPLOYER)
    run_program(build, settings_for(SharedSettings), deployer=DEPLOYER)  # the bootstrap's own project


@pytest.mark.parametrize("platform", ["ecs", "eks"])
def test_a_certificate_of_another_account_is_refused_before_anything_is_made(platform: str) -> None:
    """A load balancer takes an ACM certificate of its own account only: the region was checked with the config, the
    account (known only from the caller's identity) was not, so the listener failed after the load balancer was
    made."""
    from stacks.ecs.program import build as build_ecs
    from stacks.eks.program import build as build_eks
    from tests.stacks.harness import ACCOUNT, run_program, run_root

    build, model = {"ecs": (build_ecs, EcsStackSettings), "eks": (build_eks, EksStackSettings)}[platform]
    root = run_root()
    other = f"arn:aws:acm:eu-west-1:{'9' * 12}:certificate/0f6b1a2c-1111-4222-8333-944455556666"
    with pytest.raises(ConfigError, match=f"certificateArn {other} is in account 999999999999, the stack runs in"):
        run_program(build, settings_for(model, certificateArn=other), root.outputs)
    own = other.replace("9" * 12, ACCOUNT)
    run_program(build, settings_for(model, certificateArn=own), root.outputs)


def test_the_default_request_target_is_a_real_share_of_what_a_default_task_serves() -> None:
    """`ALBRequestCountPerTarget` is a per-minute sum. As requests a second, the default target must be a real share
    of the single predictions a 0.25-vCPU task serves (the old 500 a minute, 8 a second, was a fiftieth of it: the API
    scaled out under light traffic) and leave it at least the CPU policy's headroom."""
    size = ServiceSize()
    served_per_second = PREDICTIONS_PER_CORE_SECOND * size.cpu / CPU_UNITS_PER_VCPU
    share = size.request_count_target / SECONDS_PER_MINUTE / served_per_second
    assert share == pytest.approx(REQUEST_TARGET_SHARE, rel=0.01)
    assert 0.25 <= share <= size.cpu_target_percent / 100
    assert size.request_count_target == 12_000  # 1,600 a second x 0.25 vCPU x 0.5 x 60 s


@pytest.mark.parametrize("cpu", sorted(FARGATE_SIZES))
def test_the_request_target_follows_the_cpu_one_worker_can_use(cpu: int) -> None:
    """Proportional to the task's CPU up to one vCPU; past it flat, one worker serving no more."""
    size = ServiceSize(cpu=cpu, memory=FARGATE_SIZES[cpu][0])
    quarter = ServiceSize().request_count_target
    assert size.request_count_target * 256 == quarter * min(cpu, CPU_UNITS_PER_VCPU)


def test_a_configured_request_target_wins_and_the_ui_keeps_its_own() -> None:
    assert ServiceSize(requests_per_target=900).request_count_target == 900
    assert UiSettings().request_count_target == UI_REQUESTS_PER_TARGET  # page loads and websockets, not predictions


def test_the_ecs_dev_stack_derives_its_request_target_and_says_which() -> None:
    """The dev stack's API (512 CPU units) sets no `requestsPerTarget`: the comment next to it names the value that
    follows, which must be the one used."""
    text = (ROOT / "stacks" / "ecs" / "Pulumi.dev.yaml").read_text()
    api = yaml.safe_load(text)["config"]["diabetes-ecs:api"]
    assert "requestsPerTarget" not in api
    stated = re.search(r"# requestsPerTarget .* ([\d,]+) for (\d+)", text)
    assert stated, "Pulumi.dev.yaml no longer says what requestsPerTarget follows from"
    assert int(stated[2]) == api["cpu"]
    assert (
        int(stated[1].replace(",", ""))
        == requests_per_target_for(api["cpu"])
        == ServiceSize(**api).request_count_target
    )


def test_the_ecs_runbook_states_the_derived_request_targets() -> None:
    runbook = " ".join((ROOT / "docs" / "runbook-ecs.md").read_text().split())
    for cpu, words in ((256, "for 256"), (512, "for 512"), (1024, "from 1024 up")):
        assert f"{requests_per_target_for(cpu):,} {words}" in runbook, cpu
