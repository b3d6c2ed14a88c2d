"""The vocabulary of the replay: boto3 clients on the moto server, one declared resource, and input translation.

A replayer is a function `(clients, declared) -> outputs`: it creates one resource with the API's own calls,
translating Pulumi's input names (camelCase, provider shapes) to the API's, and returns what the Pulumi provider
would report for it (`id`, `arn`, ... under Pulumi's output names), so later resources can use the real values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from tests.stacks.harness import REGION
from tests.stacks.replay.api_model import check_parameters


@dataclass
class Clients:
    """boto3 clients on the moto server, all in one AWS account (moto keeps accounts apart)."""

    endpoint: str
    account: str
    _made: dict[str, Any] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            client = boto3.client(  # type: ignore[call-overload]  # any service, by name
                service,
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            client.meta.events.register("before-parameter-build", check_parameters)
            client.meta.events.register("before-sign", self._in_account)
            self._made[service] = client
        return self._made[service]

    def _in_account(self, request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = self.account


@dataclass
class Declared:
    """One resource as a program declared it, its mock values already replaced by real ones.

    Every input a replayer reads is marked used; the replay fails on an input nobody read, so a translation cannot
    drop a setting silently."""

    typ: str
    logical: str
    inputs: dict[str, Any]
    used: set[str] = field(default_factory=set)

    def __getitem__(self, key: str) -> Any:
        self.used.add(key)
        return self.inputs[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.inputs.get(key, default)

    def provider_only(self, *keys: str) -> None:
        """Inputs the Pulumi provider acts on itself, with no field in the create call (e.g. `forceDestroy`)."""
        self.used.update(keys)

    def name(self, key: str = "name") -> str:
        """The physical name: the declared one, or Pulumi's autoname (`<logical name>-<7 random hex>`)."""
        return str(self.get(key) or f"{self.logical}-{uuid.uuid4().hex[:7]}")

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.get("tags") or {})

    def unused(self) -> set[str]:
        return set(self.inputs) - self.used


Replayer = Callable[[Clients, Declared], dict[str, Any]]


def renamed(values: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """`values` with Pulumi's keys renamed to the API's; a key with no name here fails (nothing is dropped)."""
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise AssertionError(f"no API field for {unknown} (known: {sorted(names)})")
    return {names[key]: value for key, value in values.items()}


def tag_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """Tags as the list of pairs most AWS APIs take (Key/Value; ECS spells them key/value). EKS, Logs and
    Application Auto Scaling take a plain mapping."""
    return [{key: k, value: v} for k, v in tags.items()]


def ec2_tags(resource_type: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """EC2's TagSpecifications for one resource type."""
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}] if tags else []
