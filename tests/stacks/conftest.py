"""Fixtures for the infrastructure tests: the three programs run under mocks, and AWS_* pointing at moto.

The moto server itself (`moto_endpoint`) lives in tests/conftest.py: the container tests use it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.stacks.harness import Run, ensure_event_loop, run_ecs, run_eks, run_root

if TYPE_CHECKING:  # the replay imports this module's constants
    from tests.stacks.replay.stacks import Replayed

#: In the root's model bucket (autonamed `<project>-<env>-models-<suffix>`): the workload boundary allows no other.
S3_MODEL = "s3://diabetes-dev-models-0a1b2c3/models/champion"
MODEL_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f6b1a2c-1111-4222-8333-944455556666"
FULL = {
    "ui": {"enabled": True},
    "api": {"cpu": 512, "memory": 1024, "desiredCount": 2, "minCount": 2, "maxCount": 6},
    "certificateArn": CERTIFICATE,
    "modelUri": S3_MODEL,
    "modelSha256": MODEL_SHA256,
    "logRetentionDays": 14,
}


#: The ECS stack's own optional branch on top of FULL: the WAF rate-based rule.
FULL_ECS = {**FULL, "waf": {"rateLimit": 500, "windowSeconds": 300}}


@pytest.fixture(autouse=True)
def _event_loop() -> None:
    """Tests that set Pulumi's mocks themselves need the main thread's event loop too (see `ensure_event_loop`)."""
    ensure_event_loop()


@pytest.fixture(scope="session")
def root_run() -> Run:
    """The shared root with every knob set."""
    return run_root(logRetentionDays=14, ecrKeepLast=12, natGateways="perAz")


@pytest.fixture(scope="session")
def ecs_full_run(root_run: Run) -> Run:
    """ECS with the UI, a certificate, a model in S3 and the WAF: every optional branch on."""
    return run_ecs(root_run, **FULL_ECS)


@pytest.fixture(scope="session")
def ecs_minimal_run(root_run: Run) -> Run:
    """The minimal ECS stack: API only, HTTP only, model baked into the image."""
    return run_ecs(root_run)


@pytest.fixture(scope="session")
def eks_full_run(root_run: Run) -> Run:
    """EKS with the UI, a certificate and a model in S3, a public endpoint for one CIDR."""
    return run_eks(root_run, **FULL, eks={"publicAccessCidrs": ["203.0.113.0/24"]})


@pytest.fixture(scope="session")
def eks_minimal_run(root_run: Run) -> Run:
    """EKS, API only, private endpoint."""
    return run_eks(root_run)


@pytest.fixture(scope="session")
def full_replay(moto_endpoint: str) -> Replayed:
    """The full variant of the three programs created in moto (tests/stacks/replay), in an account of its own."""
    from tests.stacks.replay.stacks import ACCOUNTS, full_programs, replay_stacks

    return replay_stacks(moto_endpoint, ACCOUNTS["full"], full_programs)


@pytest.fixture(scope="session")
def minimal_replay(moto_endpoint: str) -> Replayed:
    """The minimal variant of the three programs created in moto, in another account."""
    from tests.stacks.replay.stacks import ACCOUNTS, minimal_programs, replay_stacks

    return replay_stacks(moto_endpoint, ACCOUNTS["minimal"], minimal_programs)


@pytest.fixture(scope="session")
def trial_replay(moto_endpoint: str) -> Replayed:
    """The cheap first try (root and ECS from the trial stack files, no NAT gateway) created in moto."""
    from tests.stacks.replay.stacks import ACCOUNTS, replay_stacks, trial_programs

    return replay_stacks(moto_endpoint, ACCOUNTS["trial"], trial_programs)


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """AWS_* variables pointing boto3 (in-process and in subprocesses) at the moto server, never at AWS."""
    values = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
