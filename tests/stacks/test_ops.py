"""stacks.ops decisions on recorded AWS responses, incl. states moto cannot produce (failed rollouts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

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


class _ScanNotFoundError(Exception):
    pass


class FakeEcr:
    """describe_image_scan_findings as ECR answers it under basic and enhanced (Inspector) scanning."""

    class exceptions:  # noqa: N801 - boto3's attribute name
        ScanNotFoundException = _ScanNotFoundError
        ImageNotFoundException = _ScanNotFoundError

    def __init__(self, status: str, counts: dict[str, int] | None = None, description: str = "") -> None:
        self.answer = {
            "imageScanStatus": {"status": status, "description": description},
            "imageScanFindings": {"findingSeverityCounts": counts or {}},
        }

    def describe_image_scan_findings(self, **_: Any) -> dict[str, Any]:
        return self.answer


@pytest.mark.parametrize("status", ["COMPLETE", "ACTIVE"])
def test_the_scan_gate_reads_the_findings_of_basic_and_enhanced_scanning(status: str) -> None:
    """Enhanced scanning reports ACTIVE, never COMPLETE: the gate waited until its timeout on every release."""
    from stacks.ops.scan import scan_problems

    assert scan_problems(FakeEcr(status), "diabetes-dev/api", "abc", ["CRITICAL"]) == []  # type: ignore[arg-type]
    with pytest.raises(OpsError, match="has 3 CRITICAL finding"):
        scan_problems(FakeEcr(status, {"CRITICAL": 3}), "diabetes-dev/api", "abc", ["CRITICAL"])  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ["LIMIT_EXCEEDED", "SCAN_ELIGIBILITY_EXPIRED", "FINDINGS_UNAVAILABLE"])
def test_a_scan_that_cannot_finish_fails_with_its_reason(status: str) -> None:
    from stacks.ops.scan import scan_problems

    with pytest.raises(OpsError, match=f"is {status}: Inspector says why"):
        scan_problems(FakeEcr(status, description="Inspector says why"), "r", "t", ["CRITICAL"])  # type: ignore[arg-type]


def test_a_scan_still_running_is_waited_for() -> None:
    from stacks.ops.scan import scan_problems

    assert scan_problems(FakeEcr("IN_PROGRESS"), "r", "t", ["CRITICAL"]) == ["scan of r:t is IN_PROGRESS"]  # type: ignore[arg-type]
    assert scan_problems(FakeEcr("PENDING"), "r", "t", ["CRITICAL"]) == ["scan of r:t is PENDING"]  # type: ignore[arg-type]


@pytest.fixture
def service_url() -> Iterator[Callable[[int, dict[str, Any]], str]]:
    """A real HTTP server on 127.0.0.1 answering /ready with the given status and body."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answer: dict[str, Any] = {}

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer["body"]).encode()
            self.send_response(answer["status"] if self.path == "/ready" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(status: int, body: dict[str, Any]) -> str:
        answer.update(status=status, body=body)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    server.shutdown()


def test_a_service_serving_a_synthetic_model_fails_the_verification_unless_allowed(
    service_url: Callable[[int, dict[str, Any]], str],
) -> None:
    """The service only reported `synthetic` on /ready and no deploy step read it: a synthetic model went live."""
    from stacks.ops.__main__ import main
    from stacks.ops.verify import served_model_problems

    synthetic = service_url(200, {"status": "ready", "model_version": "m1", "synthetic": True})
    with pytest.raises(OpsError, match="trained on SYNTHETIC data"):
        served_model_problems(synthetic, allow_synthetic=False)
    assert served_model_problems(synthetic, allow_synthetic=True) == []
    real = service_url(200, {"status": "ready", "model_version": "m2", "synthetic": False})
    assert served_model_problems(real, allow_synthetic=False) == []
    starting = service_url(503, {"detail": "model not loaded"})
    assert served_model_problems(starting, allow_synthetic=False) == [
        f"{starting}/ready answers 503: the service is not ready"
    ]
    unknown = service_url(200, {"status": "ready"})  # an older service that does not say: not accepted as real
    with pytest.raises(OpsError):
        served_model_problems(unknown, allow_synthetic=False)
    # The CLI: verify-eks stops on it (exit 1), before any AWS call is waited for.
    synthetic = service_url(200, {"status": "ready", "model_version": "m1", "synthetic": True})
    args = ["verify-eks", "--cluster", "c", "--fargate-profile", "p", "--url", synthetic, "--timeout", "0"]
    args += ["--region", "eu-west-1"]
    with mock.patch("stacks.ops.__main__.check_eks", return_value=[]):
        assert main(args) == 1
        assert main([*args, "--allow-synthetic"]) == 0
