"""The environment the stacks give each container is what its settings class reads: a renamed or mistyped setting
would otherwise deploy and be ignored (the settings ignore variables they do not know), or fail only at start."""

from __future__ import annotations

import ipaddress
import os
from typing import Any, get_origin

import pytest
from pydantic import TypeAdapter
from pydantic_settings import BaseSettings

from frontend.settings import Settings as UiSettings
from service.settings import Settings as ServiceSettings
from stacks.config import PlatformSettings, SharedSettings
from stacks.network import subnet_cidrs
from stacks.workloads import Workload, stack_workloads

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


def read_as_the_container_would(
    reader: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """The settings `reader` makes of exactly `env` (the machine's own variables of the two apps cleared)."""
    for name in [name for name in os.environ if name.upper().startswith(OWN_PREFIXES)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return reader()  # every value passes the settings' own validation, together


def _workloads(**variant: Any) -> list[Workload]:
    settings = PlatformSettings(environment="dev", region="eu-west-1", image_tag="0123abc", **variant)
    return stack_workloads(settings, lambda api: f"http://api.internal:{api.port}")


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_variable_a_container_gets_is_read_and_accepted_by_its_settings(
    variant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for workload in _workloads(**variant):
        reader = READERS[workload.name]
        fields = variables(reader)
        assert set(workload.env) - set(fields) == set(), f"{workload.name}: variables that no setting reads"
        read = read_as_the_container_would(reader, dict(workload.env), monkeypatch)
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
def test_the_api_takes_the_client_address_from_the_load_balancer(
    vpc_cidr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load balancer's nodes, in the VPC's public subnets, name the client in `X-Forwarded-For`; without their
    addresses trusted, every request was logged from a node's address. Nothing outside the VPC is trusted."""
    (api,) = [workload for workload in _workloads() if workload.name == "api"]
    read = read_as_the_container_would(ServiceSettings, dict(api.env), monkeypatch)
    assert isinstance(read, ServiceSettings)
    trusted = [ipaddress.ip_network(network) for network in read.forwarded_allow_ips]
    public, _ = subnet_cidrs(vpc_cidr)
    for subnet in map(ipaddress.ip_network, public):
        assert any(subnet.subnet_of(network) for network in trusted), subnet  # type: ignore[arg-type]
    for outside in ("203.0.113.7", "172.16.0.1", "192.168.1.1"):
        assert not any(ipaddress.ip_address(outside) in network for network in trusted), outside
