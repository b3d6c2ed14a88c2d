"""Operations that CI and operators run around `pulumi up`: promote an image, verify a rollout.

Promotion retags by digest (the manifest is copied with put_image; no layer is pulled or pushed), so the
release tag names exactly the bytes that were tested. Verification polls until every check passes or the
timeout expires, then names each failing check. Exit status: 0 ok, 1 failed or unhealthy, 2 bad arguments.
Credentials, region and endpoint come from the usual AWS_* variables (AWS_ENDPOINT_URL for a test server).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_elasticloadbalancingv2 import ElasticLoadBalancingv2Client

EXAMPLES = """examples:
  python -m stacks.ops promote-image --repository diabetes-dev/api --source-tag 3f2c1ab \\
      --target-tag release-1.4.0
  python -m stacks.ops verify-ecs --cluster diabetes-dev-ecs --service diabetes-dev-ecs-api
  python -m stacks.ops verify-eks --cluster diabetes-dev-eks --fargate-profile diabetes-dev-system \\
      --fargate-profile diabetes-dev-app

exit status: 0 success, 1 operation failed or deployment unhealthy, 2 bad arguments
"""

#: Manifest types ECR may return; asking for all of them keeps multi-arch indexes and OCI images intact.
MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
]


class OpsError(Exception):
    """An operation failed; the message says what, where and what to do next."""


@dataclass(frozen=True)
class Promotion:
    """Result of a promotion: the digest both tags now name, and whether the target tag was new."""

    repository: str
    digest: str
    target_tag: str
    created: bool


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _digest_of(ecr: ECRClient, repository: str, tag: str) -> str | None:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as exc:
        if _error_code(exc) == "ImageNotFoundException":
            return None
        raise
    details = found.get("imageDetails", [])
    return details[0]["imageDigest"] if details else None


def promote_image(ecr: ECRClient, repository: str, source_tag: str, target_tag: str) -> Promotion:
    """Give the image at `source_tag` the extra tag `target_tag`, by digest, without pulling it."""
    if source_tag == target_tag:
        raise OpsError(f"source and target tag are both '{source_tag}': choose a different --target-tag")
    try:
        response = ecr.batch_get_image(
            repositoryName=repository, imageIds=[{"imageTag": source_tag}], acceptedMediaTypes=MANIFEST_TYPES
        )
    except ClientError as exc:
        if _error_code(exc) == "RepositoryNotFoundException":
            raise OpsError(
                f"ECR repository '{repository}' does not exist; check the name (pulumi stack output "
                "apiRepositoryUrl) and the region"
            ) from None
        raise
    images = response.get("images", [])
    if not images:
        reasons = "; ".join(
            f"{failure.get('failureCode', '?')}: {failure.get('failureReason', '')}"
            for failure in response.get("failures", [])
        )
        raise OpsError(
            f"image {repository}:{source_tag} not found ({reasons or 'no image returned'}); push it before promoting"
        )
    image = images[0]
    digest = image["imageId"]["imageDigest"]

    existing = _digest_of(ecr, repository, target_tag)
    if existing == digest:
        return Promotion(repository, digest, target_tag, created=False)
    if existing is not None:
        raise OpsError(
            f"{repository}:{target_tag} already names {existing}, not {digest}; tags are immutable, "
            "so promote under a new tag"
        )
    put: dict[str, Any] = {
        "repositoryName": repository,
        "imageManifest": image["imageManifest"],
        "imageTag": target_tag,
        "imageDigest": digest,
    }
    if image.get("imageManifestMediaType"):
        put["imageManifestMediaType"] = image["imageManifestMediaType"]
    try:
        ecr.put_image(**put)
    except ClientError as exc:
        if _error_code(exc) in {"ImageAlreadyExistsException", "ImageTagAlreadyExistsException"}:
            if _digest_of(ecr, repository, target_tag) == digest:
                return Promotion(repository, digest, target_tag, created=False)
            raise OpsError(f"{repository}:{target_tag} was taken by another image meanwhile; use a new tag") from None
        raise
    return Promotion(repository, digest, target_tag, created=True)


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
        if _error_code(exc) == "ResourceNotFoundException":
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
            if _error_code(exc) == "ResourceNotFoundException":
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.ops",
        description="Deployment operations: promote an ECR image by digest, verify an ECS or EKS rollout.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    promote = commands.add_parser(
        "promote-image", help="tag an existing image with a release tag, by digest (no pull/push of layers)"
    )
    promote.add_argument("--repository", required=True, help="ECR repository name, e.g. diabetes-dev/api")
    promote.add_argument("--source-tag", required=True, help="tag that exists, e.g. the git sha CI pushed")
    promote.add_argument("--target-tag", required=True, help="new tag, e.g. release-1.4.0")

    for name, help_text in (
        ("verify-ecs", "wait until an ECS service finished its rollout and its targets are healthy"),
        ("verify-eks", "wait until an EKS cluster and its Fargate profiles are ACTIVE"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--cluster", required=True, help="cluster name (pulumi stack output)")
        sub.add_argument("--timeout", type=float, default=600.0, help="seconds to wait before failing (600)")
        sub.add_argument("--interval", type=float, default=15.0, help="seconds between checks (15)")
        if name == "verify-ecs":
            sub.add_argument("--service", required=True, help="ECS service name")
            sub.add_argument(
                "--target-group-arn",
                action="append",
                default=[],
                help="target group to check (repeatable; default: the service's own target groups)",
            )
            sub.add_argument("--min-count", type=int, default=1, help="fewest desired tasks accepted (1)")
            sub.add_argument("--image-tag", help="also require the primary deployment to run this image tag")
        else:
            sub.add_argument(
                "--fargate-profile", action="append", required=True, help="Fargate profile name (repeatable)"
            )
    return parser


def run(args: argparse.Namespace) -> str:
    """Execute one parsed command; returns the success message."""
    session = boto3.session.Session(region_name=args.region)
    if args.command == "promote-image":
        result = promote_image(session.client("ecr"), args.repository, args.source_tag, args.target_tag)
        verb = "tagged" if result.created else "already tagged"
        return f"{result.repository}@{result.digest} {verb} {result.target_tag}"
    if args.command == "verify-ecs":
        ecs, elbv2 = session.client("ecs"), session.client("elbv2")
        wait_until_healthy(
            lambda: check_ecs(
                ecs,
                elbv2=elbv2,
                cluster=args.cluster,
                service_name=args.service,
                target_group_arns=args.target_group_arn,
                min_count=args.min_count,
                image_tag=args.image_tag,
            ),
            f"ECS service {args.service}",
            timeout=args.timeout,
            interval=args.interval,
        )
        return f"ECS service {args.service} in {args.cluster}: rollout completed, all targets healthy"
    eks = session.client("eks")
    wait_until_healthy(
        lambda: check_eks(eks, args.cluster, args.fargate_profile),
        f"EKS cluster {args.cluster}",
        timeout=args.timeout,
        interval=args.interval,
    )
    return f"EKS cluster {args.cluster} and Fargate profiles {', '.join(args.fargate_profile)} are ACTIVE"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 on success, 1 when the operation or verification failed, 2 for bad arguments."""
    args = _parser().parse_args(argv)
    try:
        print(run(args))
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"error: AWS refused {exc.operation_name}: {exc}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"error: cannot reach AWS ({exc}); check credentials, AWS_REGION and network", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
