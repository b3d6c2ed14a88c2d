"""The API's memory-bearing limits fit the memory the stacks give its container (review 4, R4-1): on the 512 MiB task
the service's defaults let a flood of valid batches take 770 MB."""

from __future__ import annotations

import pytest

from service.settings import Settings as ServiceSettings
from stacks.config import FARGATE_SIZES, PlatformSettings
from stacks.service_limits import (
    ARRIVING_BYTE_COST,
    BODY_LIMIT_BYTES,
    MIB,
    REQUEST_COST_BYTES,
    RESERVE_FRACTION,
    RESIDENT_MIB,
    service_limits,
)
from stacks.workloads import api_environment
from tests.stacks.test_workload_environment import read_as_the_container_would


def default(name: str) -> int:
    """The service's own default for a setting (not what this process's environment says)."""
    value = ServiceSettings.model_fields[name].default
    assert isinstance(value, int)
    return value


MEMORY_SIZES = sorted({memory for sizes in FARGATE_SIZES.values() for memory in sizes})


def worst_case_mib(settings: ServiceSettings) -> float:
    """What the service may hold at once under `settings`, with its resident memory (the costs of service_limits)."""
    held = (
        settings.max_requests_in_flight * REQUEST_COST_BYTES
        + (settings.max_pending_body_bytes + settings.max_head_bytes_buffered) * ARRIVING_BYTE_COST
    )
    return RESIDENT_MIB + held / MIB


def _api_settings(cpu: int, memory: int, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    platform = PlatformSettings(
        environment="dev", region="eu-west-1", image_tag="0123abc", api={"cpu": cpu, "memory": memory}
    )
    read = read_as_the_container_would(ServiceSettings, api_environment(platform), monkeypatch)
    assert isinstance(read, ServiceSettings)
    return read


@pytest.mark.parametrize(("cpu", "memory"), [(cpu, memory) for cpu, sizes in FARGATE_SIZES.items() for memory in sizes])
def test_the_api_a_stack_deploys_holds_at_most_what_its_task_has(
    cpu: int, memory: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings the container reads from the stack's environment (the service's defaults for what it leaves
    out), costed as measured: they fit the task's memory less its reserve. Fails on the defaults alone (64 requests
    of 12 MiB in flight are 768 MiB)."""
    settings = _api_settings(cpu, memory, monkeypatch)
    assert worst_case_mib(settings) <= memory * (1 - RESERVE_FRACTION), settings


def test_the_default_task_is_held_to_a_few_requests_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _api_settings(256, 512, monkeypatch)
    assert 8 <= settings.max_requests_in_flight < default("max_requests_in_flight")
    assert settings.max_pending_body_bytes < default("max_pending_body_bytes")


@pytest.mark.parametrize("memory", MEMORY_SIZES)
def test_a_larger_task_gets_more_but_never_past_the_services_own_defaults(memory: int) -> None:
    limits = service_limits(memory)
    for name, value in vars(limits).items():
        assert 0 < value <= default(name), name
    if memory > MEMORY_SIZES[0]:
        smaller = service_limits(MEMORY_SIZES[MEMORY_SIZES.index(memory) - 1])
        assert all(getattr(limits, name) >= value for name, value in vars(smaller).items())
    assert limits.worst_case_bytes() / MIB + RESIDENT_MIB <= memory * (1 - RESERVE_FRACTION)


def test_the_costs_are_of_the_services_body_limit() -> None:
    assert default("body_limit_bytes") == BODY_LIMIT_BYTES


def test_a_container_too_small_for_one_request_is_refused() -> None:
    with pytest.raises(ValueError, match="no room for one request"):
        service_limits(192)
