"""stacks.ops decisions on recorded AWS responses, incl. states moto cannot produce (failed rollouts)."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.ops import OpsError
from stacks.ops.verify import (
    ecs_service_problems,
    rollout_failed,
    target_health_problems,
    wait_until_healthy,
)


def _service(**overrides: Any) -> dict[str, Any]:
    service = {
        "serviceName": "diabetes-dev-ecs-api",
        "status": "ACTIVE",
        "desiredCount": 2,
        "runningCount": 2,
        "deployments": [{"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "COMPLETED"}],
    }
    return service | overrides


def test_a_finished_rollout_has_no_problems() -> None:
    assert ecs_service_problems(_service(), min_count=1) == []


def test_an_old_deployment_still_draining_is_reported() -> None:
    draining = _service(
        deployments=[
            {"id": "ecs-svc/2", "status": "PRIMARY", "rolloutState": "COMPLETED"},
            {"id": "ecs-svc/1", "status": "ACTIVE", "rolloutState": "COMPLETED"},
        ]
    )
    assert ecs_service_problems(draining, min_count=1) == [
        "service diabetes-dev-ecs-api still has 2 deployments (old tasks are draining)"
    ]


def test_a_failed_rollout_is_detected_and_explained() -> None:
    failed = _service(
        runningCount=0,
        deployments=[
            {
                "id": "ecs-svc/3",
                "status": "PRIMARY",
                "rolloutState": "FAILED",
                "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start.",
            }
        ],
    )
    assert rollout_failed(failed)
    problems = ecs_service_problems(failed, min_count=1)
    assert "deployment ecs-svc/3 is FAILED: ECS deployment circuit breaker: tasks failed to start." in problems
    assert "service diabetes-dev-ecs-api runs 0 of 2 desired task(s)" in problems


def test_a_service_scaled_below_the_minimum_is_reported() -> None:
    assert ecs_service_problems(_service(desiredCount=0, runningCount=0), min_count=1) == [
        "service diabetes-dev-ecs-api wants 0 task(s), fewer than the required 1"
    ]


def test_unhealthy_targets_are_listed_with_their_reasons() -> None:
    descriptions = [
        {"Target": {"Id": "10.40.128.10", "Port": 8000}, "TargetHealth": {"State": "healthy"}},
        {
            "Target": {"Id": "10.40.144.11", "Port": 8000},
            "TargetHealth": {
                "State": "unhealthy",
                "Reason": "Target.ResponseCodeMismatch",
                "Description": "Health checks failed with these codes: [503]",
            },
        },
    ]
    assert target_health_problems("tg-api", descriptions, expected=2) == [
        "target group tg-api has 1 healthy target(s), expected 2",
        "  target 10.40.144.11:8000 is unhealthy "
        "(Target.ResponseCodeMismatch Health checks failed with these codes: [503])",
    ]
    assert target_health_problems("tg-api", descriptions, expected=1) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


def test_waiting_stops_as_soon_as_the_checks_pass() -> None:
    clock = FakeClock()
    results = iter([["not yet"], ["not yet"], []])
    wait_until_healthy(lambda: next(results), "thing", timeout=60, interval=10, sleep=clock.sleep, clock=clock.time)
    assert clock.sleeps == [10, 10]


def test_waiting_gives_up_at_the_timeout_with_the_last_problems() -> None:
    clock = FakeClock()
    with pytest.raises(OpsError) as caught:
        wait_until_healthy(
            lambda: ["runs 1 of 2"],
            "ECS service api",
            timeout=30,
            interval=10,
            sleep=clock.sleep,
            clock=clock.time,
        )
    assert str(caught.value) == "ECS service api is not healthy after 30s:\n  - runs 1 of 2"
    assert sum(clock.sleeps) <= 30
