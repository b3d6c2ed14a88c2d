"""Replay a mocked program run against moto: in dependency order, each resource's inputs with the real values of
what was created before it in place of the mock engine's made-up ids, ARNs and names.

A mock value that is still in an input when its resource is replayed is a dangling reference (its owner was not
created, is not replayable, or comes later) and fails, naming the input and the owner.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.stacks.harness import Resource, Run, integral
from tests.stacks.replay.calls import Clients, Declared
from tests.stacks.replay.catalog import NOT_REPLAYABLE, REPLAYED, is_component, unlisted

#: Characters that continue an id or a name: a mock value only matches where none of them is next to it.
_WORD = r"[A-Za-z0-9_-]"


class DanglingReferenceError(AssertionError):
    """An input refers to a resource the replay has not created."""


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


def _pairs(mock: Any, real: Any) -> Iterator[tuple[str, str]]:
    """(mock, real) string leaves of a mock output and the real one, walked together."""
    if isinstance(mock, str):
        yield mock, str(real)
    elif isinstance(mock, Mapping):
        for key, value in mock.items():
            yield from _pairs(value, real[key])
    elif isinstance(mock, list):
        assert len(mock) == len(real), f"mock {mock} and real {real} differ in length"
        for mock_item, real_item in zip(mock, real, strict=True):
            yield from _pairs(mock_item, real_item)


def _bare(url: str) -> str:
    """A URL without its scheme: programs use an OIDC issuer both ways (provider URL, trust condition keys)."""
    return url.removeprefix("https://")


def _with_bare_urls(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for mock, real in pairs:
        yield mock, real
        if mock.startswith("https://"):
            yield _bare(mock), _bare(real)


def mock_values(resource: Resource) -> set[str]:
    """What the mock engine made up for a resource (id, ARN, autoname, ...): every state value not an input."""
    made_up = {leaf for key, value in resource.state.items() if key not in resource.inputs for leaf in _leaves(value)}
    return {resource.mock_id, *made_up, *(_bare(value) for value in made_up)}


def dependency_order(resources: list[Resource]) -> list[Resource]:
    """The resources, each after everything it depends on (inputs and depends_on)."""
    by_urn = {resource.urn: resource for resource in resources}
    graph = {resource.urn: [urn for urn in resource.depends_on if urn in by_urn] for resource in resources}
    return [by_urn[urn] for urn in graphlib.TopologicalSorter(graph).static_order()]


def skipped(typ: str) -> bool:
    return typ in NOT_REPLAYABLE or is_component(typ)


@dataclass(frozen=True)
class Created:
    """One resource created in moto: its inputs (real values) and outputs (Pulumi's names)."""

    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Replay:
    """One AWS account's worth of stacks, replayed in the order they deploy (root, then the platforms)."""

    clients: Clients
    #: mock value -> real value, for everything created so far (or provided: what exists before the stacks).
    real: dict[str, str] = field(default_factory=dict)
    #: mock value -> the resource it stands for, for every run seen.
    owners: dict[str, str] = field(default_factory=dict)

    def provide(self, mock: str, real: str) -> None:
        """Something the stacks use but do not create (an ACM certificate), created by the test itself."""
        self.real[mock] = real
        self.owners[mock] = "provided by the test"

    def replay(self, run: Run) -> list[Created]:
        """Create every replayable resource of one program run; return them in creation order."""
        missing = unlisted({resource.typ for resource in run.recorder.resources})
        assert not missing, f"resource types neither replayed nor listed as not replayable: {sorted(missing)}"
        for resource in run.recorder.resources:
            owner = f"{resource.typ} {resource.name}"
            self.owners.update(dict.fromkeys(mock_values(resource) - self.owners.keys(), owner))
        ordered = dependency_order(run.recorder.resources)
        return [self.create(resource) for resource in ordered if not skipped(resource.typ)]

    def create(self, resource: Resource) -> Created:
        """Create one resource with real inputs; learn its real outputs."""
        declared = Declared(resource.typ, resource.name, self.resolve(resource))
        outputs = REPLAYED[resource.typ](self.clients, declared)
        assert not declared.unused(), f"{resource.typ} {resource.name}: inputs not replayed: {declared.unused()}"
        self.learn(resource, outputs)
        return Created(resource.typ, resource.name, declared.inputs, outputs)

    def learn(self, resource: Resource, outputs: dict[str, Any]) -> None:
        """Map the resource's mock values to the real ones its creation returned."""
        pairs = [(resource.mock_id, str(outputs["id"]))]
        for key, real in outputs.items():
            if key != "id" and key in resource.state and key not in resource.inputs:
                pairs.extend(_pairs(resource.state[key], real))
        self.real.update(_with_bare_urls(pairs))

    def resolve(self, resource: Resource) -> dict[str, Any]:
        """The resource's inputs with real values in place of mock ones, numbers as the provider sends them."""
        tokens = sorted(self.owners, key=len, reverse=True)
        pattern = re.compile(f"(?<!{_WORD})(?:{'|'.join(map(re.escape, tokens))})(?!{_WORD})")

        def real(match: re.Match[str], path: str) -> str:
            if match[0] not in self.real:
                raise DanglingReferenceError(
                    f"{resource.typ} {resource.name}: input {path} refers to {match[0]!r}, a mock value of "
                    f"{self.owners[match[0]]}, which the replay has not created"
                )
            return self.real[match[0]]

        def walk(value: Any, path: str) -> Any:
            if isinstance(value, str) and tokens:
                return pattern.sub(lambda match: real(match, path), value)
            if isinstance(value, Mapping):
                return {key: walk(item, f"{path}.{key}") for key, item in value.items()}
            if isinstance(value, list):
                return [walk(item, f"{path}[{index}]") for index, item in enumerate(value)]
            return value

        return {key: walk(value, key) for key, value in integral(resource.inputs).items()}
