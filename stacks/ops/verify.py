"""Verify a rollout: poll until every check passes or the timeout expires, then name each failing check."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from stacks.ops import OpsError, error_code

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_elasticloadbalancingv2 import ElasticLoadBalancingv2Client


def _primary(service: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The service's PRIMARY deployment (the one being rolled out), if it has one."""
    return next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), None)


def ecs_service_problems(service: Mapping[str, Any], min_count: int) -> list[str]:
    """Why an ECS service (a describe_services entry) is not yet a healthy, finished rollout; [] if it is."""
    name = service.get("serviceName", "?")
    problems: list[str] = []
    if service.get("status") != "ACTIVE":
        problems.append(f"service {name} is {service.get('status')}, not ACTIVE")
    desired, running = int(service.get("desiredCount", 0)), int(service.get("runningCount", 0))
    if desired < min_count:
        problems.append(f"service {name} wants {desired} task(s), fewer than the required {min_count}")
    if running != desired:
        problems.append(f"service {name} runs {running} of {desired} desired task(s)")
    deployments = service.get("deployments", [])
    primary = _primary(service)
    if primary is None:
        problems.append(f"service {name} has no PRIMARY deployment")
    elif primary.get("rolloutState") != "COMPLETED":
        reason = primary.get("rolloutStateReason", "")
        problems.append(f"deployment {primary.get('id')} is {primary.get('rolloutState')}: {reason}".rstrip(": "))
    if len(deployments) > 1:
        problems.append(f"service {name} still has {len(deployments)} deployments (old tasks are draining)")
    return problems


def rollout_failed(service: Mapping[str, Any]) -> bool:
    """True when the circuit breaker has given up: waiting longer cannot help."""
    primary = _primary(service)
    return primary is not None and primary.get("rolloutState") == "FAILED"


def target_health_problems(
    target_group_arn: str, descriptions: Sequence[Mapping[str, Any]], expected: int
) -> list[str]:
    """Why a target group does not have `expected` healthy targets (each unhealthy target and its reason)."""
    healthy = [d for d in descriptions if d.get("TargetHealth", {}).get("State") == "healthy"]
    if len(healthy) >= max(expected, 1):
        return []
    problems = [f"target group {target_group_arn} has {len(healthy)} healthy target(s), expected {max(expected, 1)}"]
    for description in descriptions:
        health = description.get("TargetHealth", {})
        if health.get("State") != "healthy":
            target = description.get("Target", {})
            problems.append(
                f"  target {target.get('Id')}:{target.get('Port')} is {health.get('State')}"
                f" ({health.get('Reason', '')} {health.get('Description', '')})".rstrip()
            )
    return problems


def check_ecs(
    ecs: ECSClient,
    *,
    elbv2: ElasticLoadBalancingv2Client,
    cluster: str,
    service_name: str,
    target_group_arns: Sequence[str],
    min_count: int,
    image_tag: str | None = None,
) -> list[str]:
    """One pass of the ECS checks; raises OpsError when the service is missing or the rollout has failed."""
    response = ecs.describe_services(cluster=cluster, services=[service_name])
    services = response.get("services", [])
    if not services:
        reasons = ", ".join(failure.get("reason", "?") for failure in response.get("failures", []))
        raise OpsError(
            f"ECS service '{service_name}' not found in cluster '{cluster}' "
            f"({reasons or 'no such service'}); "
            "check `pulumi stack output ecsServiceNames` and ecsClusterName"
        )
    service: Mapping[str, Any] = services[0]
    if rollout_failed(service):
        reason = (_primary(service) or {}).get("rolloutStateReason", "no reason given")
        raise OpsError(
            f"deployment of {service_name} FAILED and was rolled back by the circuit breaker: "
            f"{reason}; see the service events and task logs"
        )
    problems = ecs_service_problems(service, min_count)
    if image_tag:
        problems.extend(image_problems(ecs, service, image_tag))
    arns = list(target_group_arns) or [lb["targetGroupArn"] for lb in service.get("loadBalancers", [])]
    for arn in arns:
        health = elbv2.describe_target_health(TargetGroupArn=arn)
        problems.extend(
            target_health_problems(arn, health.get("TargetHealthDescriptions", []), int(service.get("desiredCount", 0)))
        )
    return problems


def image_problems(ecs: ECSClient, service: Mapping[str, Any], image_tag: str) -> list[str]:
    """Whether the primary deployment runs `image_tag` (so a verified rollout is the one CI just started)."""
    primary = _primary(service)
    definition = primary["taskDefinition"] if primary else service.get("taskDefinition")
    if not definition:
        return [f"service {service.get('serviceName')} has no task definition"]
    containers = ecs.describe_task_definition(taskDefinition=definition)["taskDefinition"]["containerDefinitions"]
    return [
        f"container {c['name']} of {definition.rsplit('/', 1)[-1]} runs {c['image']}, not tag {image_tag}"
        for c in containers
        if c.get("essential", True) and not str(c.get("image", "")).endswith(f":{image_tag}")
    ]


def check_eks(eks: EKSClient, cluster: str, fargate_profiles: Sequence[str]) -> list[str]:
    """One pass of the EKS checks: cluster and every named Fargate profile ACTIVE."""
    try:
        status = eks.describe_cluster(name=cluster)["cluster"].get("status")
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise OpsError(
                f"EKS cluster '{cluster}' not found; check `pulumi stack output eksClusterName` and the region"
            ) from None
        raise
    problems = [] if status == "ACTIVE" else [f"cluster {cluster} is {status}, not ACTIVE"]
    if status == "FAILED":
        raise OpsError(f"EKS cluster '{cluster}' is FAILED; see its health issues in the EKS console")
    for profile in fargate_profiles:
        try:
            described = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=profile)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                problems.append(
                    f"Fargate profile '{profile}' not found in cluster {cluster} "
                    "(see `pulumi stack output eksFargateProfiles`)"
                )
                continue
            raise
        profile_status = described["fargateProfile"].get("status")
        if profile_status != "ACTIVE":
            problems.append(f"Fargate profile {profile} is {profile_status}, not ACTIVE")
    return problems


def served_model_problems(url: str, *, allow_synthetic: bool, timeout: float = 10.0) -> list[str]:
    """Whether the service behind `url` is ready with a model trained on the real data: [] when it is, the reason to
    wait while it is not ready; a synthetic-data model raises OpsError unless this environment allows one."""
    ready = f"{url.rstrip('/')}/ready"
    try:
        with urllib.request.urlopen(ready, timeout=timeout) as response:  # noqa: S310 - the stack's own https/http URL
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return [f"{ready} answers {exc.code}: the service is not ready"]
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        return [f"{ready} cannot be read yet ({exc})"]
    if body.get("synthetic") is not False and not allow_synthetic:
        raise OpsError(
            f"{url} serves model {body.get('model_version', '?')} trained on SYNTHETIC data (synthetic: "
            f"{body.get('synthetic')!r}): it must not serve anyone. Release a model trained on the real file "
            "(docs/deploy.md, Where the model comes from), or allow it for this environment only "
            "(ALLOW_SYNTHETIC_MODEL_<STACK>: true, --allow-synthetic) to test the pipeline"
        )
    return []


def wait_until_healthy(
    check: Callable[[], list[str]],
    what: str,
    *,
    timeout: float,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Repeat `check` until it reports no problems; then raise OpsError listing the last ones."""
    deadline = clock() + timeout
    while True:
        problems = check()
        if not problems:
            return
        if clock() + interval > deadline:
            raise OpsError(f"{what} is not healthy after {timeout:g}s:\n" + "\n".join(f"  - {p}" for p in problems))
        sleep(interval)
