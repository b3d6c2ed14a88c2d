"""Fixtures for the infrastructure tests: the Pulumi program run under mocks, and AWS_* pointing at moto.

The moto server itself (`moto_endpoint`) lives in tests/conftest.py: the container tests use it too.
"""

from __future__ import annotations

import pytest

from tests.stacks.harness import Run, run_program, settings_for

S3_MODEL = "s3://models-bucket/diabetes/champion"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f6b1a2c-1111-4222-8333-944455556666"


@pytest.fixture(scope="session")
def full_run() -> Run:
    """Both platforms, the UI, a certificate and a model in S3: every optional branch on."""
    return run_program(
        settings_for(
            ecsEnabled=True,
            eksEnabled=True,
            ui={"enabled": True},
            api={"cpu": 512, "memory": 1024, "desiredCount": 2, "minCount": 2, "maxCount": 6},
            certificateArn=CERTIFICATE,
            modelUri=S3_MODEL,
            logRetentionDays=14,
            ecrKeepLast=12,
            natGateways="perAz",
        )
    )


@pytest.fixture(scope="session")
def ecs_only_run() -> Run:
    """The minimal ECS stack: API only, HTTP only, model baked into the image."""
    return run_program(settings_for(ecsEnabled=True, eksEnabled=False))


@pytest.fixture(scope="session")
def eks_only_run() -> Run:
    """EKS only, API only."""
    return run_program(settings_for(ecsEnabled=False, eksEnabled=True))


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
