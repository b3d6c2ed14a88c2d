"""The API's memory-bearing limits fit the memory the stacks give its container: on the 512 MiB task the service's
defaults let a flood of valid batches take 770 MB (review 4, R4-1), 2,000 connections not reading their answers hold
379 MB of kernel send buffers (review 5, R5-4) and slow readers 393 MB of answers (R5-1)."""

from __future__ import annotations

import pytest

from service.settings import Settings as ServiceSettings
from stacks.config import FARGATE_SIZES, PlatformSettings
from stacks.service_limits import (
    BODY_LIMIT_BYTES,
    MIB,
    RESERVE_FRACTION,
    RESIDENT_MIB,
    ServiceLimits,
    service_limits,
)
from stacks.workloads import api_environment
from tests.stacks.test_workload_environment import PUBLIC_CIDRS, read_as_the_container_would


def default(name: str) -> int:
    """The service's own default for a setting (not what this process's environment says)."""
    value = ServiceSettings.model_fields[name].default
    assert isinstance(value, int)
    return value


MEMORY_SIZES = sorted({memory for sizes in FARGATE_SIZES.values() for memory in sizes})
#: A Fargate CPU size each memory size is offered with (the smallest).
FARGATE_CPU_OF = {
    memory: min(cpu for cpu, sizes in FARGATE_SIZES.items() if memory in sizes) for memory in MEMORY_SIZES
}


def worst_case_mib(settings: ServiceSettings) -> float:
    """What the service may hold at once under `settings`, with its resident memory (the costs of service_limits)."""
    limits = ServiceLimits(**{name: getattr(settings, name) for name in ServiceLimits.__dataclass_fields__})
    return RESIDENT_MIB + limits.worst_case_bytes() / MIB


def _api_settings(cpu: int, memory: int, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    platform = PlatformSettings(
        environment="dev", region="eu-west-1", image_tag="0123abc", api={"cpu": cpu, "memory": memory}
    )
    read = read_as_the_container_would(ServiceSettings, api_environment(platform, PUBLIC_CIDRS), monkeypatch)
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
    assert settings.max_unsent_answer_bytes < default("max_unsent_answer_bytes")


@pytest.mark.parametrize("memory", MEMORY_SIZES)
def test_the_kernel_buffers_of_every_connection_a_task_accepts_fit_it(
    memory: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 5, R5-4: the stacks left `max_connections` at 4,096, and a connection that reads nothing holds its
    send buffer (Linux doubles `send_buffer_bytes`: 190 KB measured), so 2,000 such connections held 379 MB on the
    512 MiB task, 142 MB of RSS aside. Every connection the task accepts, its send buffer full, and the process at
    rest fit the task's memory less its reserve; enough connections stay for a load balancer's pool."""
    settings = _api_settings(FARGATE_CPU_OF[memory], memory, monkeypatch)
    send_buffers_mib = settings.max_connections * 2 * settings.send_buffer_bytes / MIB
    assert RESIDENT_MIB + send_buffers_mib <= memory * (1 - RESERVE_FRACTION), settings.max_connections
    assert settings.max_connections >= 256


@pytest.mark.parametrize("memory", MEMORY_SIZES)
def test_a_larger_task_gets_more_but_never_past_the_services_own_defaults(memory: int) -> None:
    limits = service_limits(memory)
    for name, value in vars(limits).items():
        assert 0 < value <= default(name), name
    if memory > MEMORY_SIZES[0]:
        smaller = service_limits(MEMORY_SIZES[MEMORY_SIZES.index(memory) - 1])
        assert all(getattr(limits, name) >= value for name, value in vars(smaller).items())
    assert limits.worst_case_bytes() / MIB + RESIDENT_MIB <= memory * (1 - RESERVE_FRACTION)


@pytest.mark.parametrize("memory", MEMORY_SIZES)
def test_every_connection_a_task_accepts_may_be_an_idle_keep_alive_one(
    memory: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 16, F8: `max_idle_connections` (512) was below the 512 MiB task's `max_connections` (535): 520
    keep-alive clients had their connections closed under them as others reconnected, and lost 91% of the requests
    they sent on them (a load balancer's 502s). Every connection the task accepts may stay idle."""
    settings = _api_settings(FARGATE_CPU_OF[memory], memory, monkeypatch)
    assert settings.max_idle_connections >= settings.max_connections


def test_the_costs_are_of_the_services_body_limit() -> None:
    assert default("body_limit_bytes") == BODY_LIMIT_BYTES


def test_a_container_too_small_for_one_request_is_refused() -> None:
    with pytest.raises(ValueError, match="no room for one request"):
        service_limits(192)
