"""Stack settings: the dev stack file parses, and bad values fail early with the key name and the fix."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from stacks.config import ConfigError, load_settings, parse_settings
from tests.stacks.harness import Recorder, settings_for

ROOT = Path(__file__).resolve().parents[2]


def _stack_file_values(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())["config"]
    values = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("diabetes:")}
    return {**values, "region": config["aws:region"], "environment": "dev"}


def test_pulumi_project_points_at_the_stacks_package() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "diabetes"  # so `--config imageTag=...` lands in the diabetes: namespace
    assert project["main"] == "stacks/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}
    assert (ROOT / "stacks" / "__main__.py").is_file()


def test_dev_stack_file_is_valid_with_both_platforms_on() -> None:
    settings = parse_settings({**_stack_file_values(ROOT / "Pulumi.dev.yaml"), "imageTag": "3f2c1ab"})
    assert settings.ecs_enabled
    assert settings.eks_enabled
    assert settings.ui.enabled
    assert settings.region == "eu-west-1"
    assert (settings.api.cpu, settings.api.memory) == (512, 1024)
    assert settings.name == "diabetes-dev"
    assert settings.tags_for("x")["Owner"] == "ml-platform"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"api": {"cpu": 300}}, "diabetes:api: cpu 300 is not a Fargate size"),
        ({"api": {"cpu": 256, "memory": 4096}}, "memory 4096 MiB is not valid with cpu 256"),
        ({"api": {"desiredCount": 9, "maxCount": 4}}, "minCount <= desiredCount <= maxCount"),
        ({"api": {"cpus": 256}}, "diabetes:api.cpus: Extra inputs are not permitted"),
        ({"imageTag": "latest"}, "diabetes:imageTag: imageTag must be an immutable ECR tag"),
        ({"logRetentionDays": 42}, "logRetentionDays 42 is not accepted by CloudWatch"),
        ({"modelUri": "s3://models-bucket"}, "modelUri must look like s3://<bucket>/<prefix>"),
        ({"modelUri": "models/champion"}, "absolute path inside the image"),
        (
            {"certificateArn": "arn:aws:iam::123456789012:server-certificate/x"},
            "must be an ACM certificate ARN",
        ),
        ({"natGateways": "three"}, "diabetes:natGateways"),
    ],
)
def test_invalid_values_name_the_key_and_the_fix(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_for(**overrides)
    message = str(caught.value)
    assert fragment in message
    assert "pulumi config set --path diabetes:<key>" in message


def test_missing_image_tag_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"diabetes:imageTag: Field required"):
        parse_settings({"environment": "dev", "region": "eu-west-1"})


def test_string_config_values_are_coerced() -> None:
    settings = parse_settings(
        {
            "environment": "dev",
            "region": "eu-west-1",
            "imageTag": "abc",
            "eksEnabled": "true",
            "ecrKeepLast": "7",
        }
    )
    assert settings.eks_enabled is True
    assert settings.ecr_keep_last == 7
    assert settings.model_s3 is None


def _with_config(values: dict[str, str]) -> None:
    pulumi.runtime.set_mocks(Recorder(), project="diabetes", stack="staging", preview=False)
    pulumi.runtime.set_all_config(values)


def test_load_settings_reads_the_pulumi_config_once() -> None:
    _with_config(
        {
            "aws:region": "us-east-2",
            "diabetes:imageTag": "9b1c2d3",
            "diabetes:eksEnabled": "true",
            "diabetes:api": json.dumps({"cpu": 1024, "memory": 2048}),
            "diabetes:modelUri": "s3://models-bucket/diabetes/v3",
        }
    )
    settings = load_settings()
    assert (settings.environment, settings.region, settings.image_tag) == ("staging", "us-east-2", "9b1c2d3")
    assert settings.api.cpu == 1024
    assert settings.model_s3 is not None
    assert (settings.model_s3.bucket, settings.model_s3.prefix) == ("models-bucket", "diabetes/v3")


def test_load_settings_rejects_unknown_keys() -> None:
    _with_config({"aws:region": "us-east-2", "diabetes:imageTag": "9b1c2d3", "diabetes:imagetag": "x"})
    with pytest.raises(ConfigError, match=r"Unknown config key\(s\) diabetes:imagetag"):
        load_settings()


def test_load_settings_requires_a_region() -> None:
    _with_config({"diabetes:imageTag": "9b1c2d3"})
    with pytest.raises(ConfigError, match=r"pulumi config set aws:region"):
        load_settings()


def test_the_pulumi_entry_point_builds_the_stack_from_config() -> None:
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="diabetes", stack="dev", preview=False)
    pulumi.runtime.set_all_config({"aws:region": "eu-west-1", "diabetes:imageTag": "3f2c1ab"})

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(ROOT / "stacks" / "__main__.py"), run_name="__main__")

    program()
    cluster = recorder.one("aws:ecs/cluster:Cluster")
    assert cluster.inputs["name"] == "diabetes-dev-ecs"
    assert not recorder.of_type("eks:index:Cluster")  # EKS is off by default
