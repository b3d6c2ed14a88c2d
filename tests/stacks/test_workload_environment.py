"""The environment the stacks give each container is what its settings class reads: a renamed or mistyped setting
would otherwise deploy and be ignored (the settings ignore variables they do not know), or fail only at start."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from typing import Any, get_origin

import pytest
from pydantic import TypeAdapter
from pydantic_settings import BaseSettings

from frontend.settings import Settings as UiSettings
from service.settings import Settings as ServiceSettings
from stacks.config import ConfigError, PlatformSettings, SharedSettings
from stacks.network import subnet_cidrs
from stacks.workloads import Workload, stack_workloads
from tests.stacks.harness import Run, run_program, settings_for

#: Every variant of the platform settings that changes the environment.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "pinned-s3-model-debug-docs": {
        "model_uri": "s3://diabetes-dev-models-123456789012/champion",
        "model_sha256": "a" * 64,
        "log_level": "DEBUG",
        "public_api_docs": True,
    },
    "no-ui": {"ui": {"enabled": False}},
}
#: Which settings class reads each workload's environment.
READERS: dict[str, type[BaseSettings]] = {"api": ServiceSettings, "ui": UiSettings}
#: Variables of the two apps: cleared so the machine's own cannot hide a missing one.
OWN_PREFIXES = ("SERVICE_", "UI_", "MODEL_", "API_URL")


def variables(settings_class: type[BaseSettings]) -> dict[str, str]:
    """Each environment variable the settings class reads (a field's alias, else its prefix and name): its field."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    return {
        field.validation_alias if isinstance(field.validation_alias, str) else f"{prefix}{name}".upper(): name
        for name, field in settings_class.model_fields.items()
    }


def plain(workload: Workload) -> dict[str, str]:
    """A workload's environment built from plain values (no Pulumi output in it)."""
    assert all(isinstance(value, str) for value in workload.env.values()), workload.env
    return {name: str(value) for name, value in workload.env.items()}


def read_as_the_container_would(
    reader: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """The settings `reader` makes of exactly `env` (the machine's own variables of the two apps cleared)."""
    for name in [name for name in os.environ if name.upper().startswith(OWN_PREFIXES)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return reader()  # every value passes the settings' own validation, together


#: The default VPC's public subnets: where the load balancer's nodes are.
PUBLIC_CIDRS, PRIVATE_CIDRS = subnet_cidrs(SharedSettings.model_fields["vpc_cidr"].default)


def _workloads(load_balancer_subnets: Sequence[str] = PUBLIC_CIDRS, **variant: Any) -> list[Workload]:
    settings = PlatformSettings(environment="dev", region="eu-west-1", image_tag="0123abc", **variant)
    return stack_workloads(settings, lambda api: f"http://api.internal:{api.port}", load_balancer_subnets)


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_variable_a_container_gets_is_read_and_accepted_by_its_settings(
    variant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for workload in _workloads(**variant):
        reader = READERS[workload.name]
        fields = variables(reader)
        assert set(workload.env) - set(fields) == set(), f"{workload.name}: variables that no setting reads"
        read = read_as_the_container_would(reader, plain(workload), monkeypatch)
        for name, value in workload.env.items():
            field = reader.model_fields[fields[name]]
            adapter = TypeAdapter(field.annotation)
            # pydantic-settings reads a list from JSON, as the stacks write it
            expected = (
                adapter.validate_json(value)
                if get_origin(field.annotation) is list
                else adapter.validate_strings(value)
            )
            assert getattr(read, fields[name]) == expected, name


def test_a_renamed_setting_would_be_caught() -> None:
    """What the test above guards against: a variable that no field reads (the service would ignore it)."""
    assert "SERVICE_LOG_LEVEL" in variables(ServiceSettings)
    assert "SERVICE_LOGLEVEL" not in variables(ServiceSettings)
    assert {"API_URL", "UI_TIMEOUT_SECONDS"} <= set(variables(UiSettings))


@pytest.mark.parametrize("vpc_cidr", [SharedSettings.model_fields["vpc_cidr"].default, "10.255.0.0/16"])
def test_the_api_trusts_exactly_the_load_balancers_subnets(vpc_cidr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load balancer's nodes, in the VPC's public subnets, name the client in `X-Forwarded-For`; without their
    addresses trusted, every request was logged from a node's address. Nothing else is trusted (review 10, R10-5:
    all of 10.0.0.0/8 was, so any peer in the VPC that reached a task could name the address the batch line orders
    it by): not the private subnets the tasks and pods run in, not the rest of the VPC."""
    public, private = subnet_cidrs(vpc_cidr)
    (api,) = [workload for workload in _workloads(public) if workload.name == "api"]
    read = read_as_the_container_would(ServiceSettings, plain(api), monkeypatch)
    assert isinstance(read, ServiceSettings)
    trusted = [ipaddress.ip_network(network) for network in read.forwarded_allow_ips]
    assert trusted == [ipaddress.ip_network(subnet) for subnet in public]
    for elsewhere in (*private, "203.0.113.7/32", "172.16.0.1/32", "192.168.1.1/32"):
        assert not any(network.overlaps(ipaddress.ip_network(elsewhere)) for network in trusted), elsewhere
    assert not any(network.supernet_of(ipaddress.ip_network(vpc_cidr)) for network in trusted)  # the old trust


@pytest.mark.parametrize("subnets", [[], ["10.40.1.5/20"], ["10.40.0.0/20", "not-a-network"]])
def test_load_balancer_subnets_that_are_not_networks_are_refused(subnets: list[str]) -> None:
    """An empty list would trust no proxy, a network with host bits set is refused by the service at its start:
    both fail at the preview instead, naming the root's output."""
    with pytest.raises(ConfigError, match="load balancer's subnet"):
        _workloads(subnets)


def _deployed_proxies(run: Run) -> list[str]:
    """`SERVICE_FORWARDED_ALLOW_IPS` as a platform run deployed it: the ECS task definition's or the Deployment's."""
    for resource in run.recorder.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        if resource.name.endswith("-api"):
            (container,) = json.loads(resource.inputs["containerDefinitions"])
            env = {item["name"]: item["value"] for item in container["environment"]}
            return list(json.loads(env["SERVICE_FORWARDED_ALLOW_IPS"]))
    deployment = run.recorder.one_named("kubernetes:apps/v1:Deployment", "diabetes-dev-eks-app-api-deployment")
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    return list(json.loads(env["SERVICE_FORWARDED_ALLOW_IPS"]))


@pytest.mark.parametrize("platform", ["ecs_full_run", "ecs_minimal_run", "eks_full_run", "eks_minimal_run"])
def test_the_deployed_api_trusts_the_roots_public_subnets_only(
    platform: str, root_run: Run, request: pytest.FixtureRequest
) -> None:
    """The root's public subnets (their CIDR blocks, an output of the root) reach both platforms' API environment
    through the stack reference: exactly those, nothing wider."""
    public = [r.inputs["cidrBlock"] for r in root_run.recorder.of_type("aws:ec2/subnet:Subnet") if "-public-" in r.name]
    assert len(public) == 2
    assert root_run.outputs["publicSubnetCidrs"] == public
    assert _deployed_proxies(request.getfixturevalue(platform)) == public


@pytest.mark.parametrize("project", ["ecs", "eks"])
def test_a_root_without_the_public_subnet_cidrs_is_refused(project: str, root_run: Run) -> None:
    """A root deployed before it exported its public subnets' CIDRs: the platform's preview fails, saying to update
    the root first (a fallback to the VPC would trust what R10-5 removed)."""
    from stacks.config import EcsStackSettings, EksStackSettings
    from stacks.ecs.program import build as ecs_build
    from stacks.eks.program import build as eks_build

    older = {key: value for key, value in root_run.outputs.items() if key != "publicSubnetCidrs"}
    build, model = (ecs_build, EcsStackSettings) if project == "ecs" else (eks_build, EksStackSettings)
    with pytest.raises(Exception, match="exports no publicSubnetCidrs"):
        run_program(build, settings_for(model), older)
