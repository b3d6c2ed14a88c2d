"""stacks.ops against a real moto server: ECR promotion by digest, ECS and EKS rollout verification."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import ClassVar

import boto3
import pytest

from stacks.ops.promote import promote_image
from tests.conftest import MOTO_RUNNING_TASKS
from tests.stacks.ops_cli import run_ops

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
ROLE = "arn:aws:iam::123456789012:role/test"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _manifest(seed: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7023,
                "digest": f"sha256:{seed * 64}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 32654,
                    "digest": f"sha256:{'b' * 63}{seed}",
                }
            ],
        }
    )


@pytest.fixture
def repository(aws_env: dict[str, str]) -> str:
    """An immutable repository with one image tagged `3f2c1ab` (as CI pushes it) and another tagged `old`."""
    ecr = boto3.client("ecr")
    name = _unique("diabetes-dev/api")
    ecr.create_repository(
        repositoryName=name, imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True}
    )
    ecr.put_image(
        repositoryName=name,
        imageManifest=_manifest("a"),
        imageManifestMediaType=MANIFEST_TYPE,
        imageTag="3f2c1ab",
    )
    ecr.put_image(
        repositoryName=name,
        imageManifest=_manifest("c"),
        imageManifestMediaType=MANIFEST_TYPE,
        imageTag="old",
    )
    return name


def _digest(repository: str, tag: str) -> str:
    details = boto3.client("ecr").describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    return str(details["imageDetails"][0]["imageDigest"])


def test_promote_retags_by_digest(repository: str) -> None:
    result = promote_image(boto3.client("ecr"), repository, "3f2c1ab", "release-1.0.0")
    assert result.created is True
    assert result.digest == _digest(repository, "3f2c1ab") == _digest(repository, "release-1.0.0")
    images = boto3.client("ecr").list_images(repositoryName=repository)["imageIds"]
    assert {image["imageTag"] for image in images if image["imageDigest"] == result.digest} == {
        "3f2c1ab",
        "release-1.0.0",
    }


def test_promote_twice_is_a_no_op(repository: str) -> None:
    first = promote_image(boto3.client("ecr"), repository, "3f2c1ab", "release-1.0.1")
    second = promote_image(boto3.client("ecr"), repository, "3f2c1ab", "release-1.0.1")
    assert second.created is False
    assert second.digest == first.digest


def test_promote_cli_prints_the_digest(repository: str) -> None:
    completed = run_ops(
        "promote-image", "--repository", repository, "--source-tag", "3f2c1ab", "--target-tag", "release-2"
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"{repository}@{_digest(repository, '3f2c1ab')} tagged release-2"


def test_promote_cli_refuses_to_move_an_immutable_tag(repository: str) -> None:
    completed = run_ops("promote-image", "--repository", repository, "--source-tag", "3f2c1ab", "--target-tag", "old")
    assert completed.returncode == 1
    assert f"{repository}:old already names {_digest(repository, 'old')}" in completed.stderr
    assert "promote under a new tag" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("repository_name", "source", "message"),
    [
        (None, "feedbee", "not found (ImageNotFound: Requested image not found); push it before promoting"),
        ("does-not/exist", "3f2c1ab", "ECR repository 'does-not/exist' does not exist"),
    ],
)
def test_promote_cli_explains_missing_images(
    repository: str, repository_name: str | None, source: str, message: str
) -> None:
    completed = run_ops(
        "promote-image",
        "--repository",
        repository_name or repository,
        "--source-tag",
        source,
        "--target-tag",
        "r",
    )
    assert completed.returncode == 1
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


@dataclass
class EcsStack:
    cluster: str
    service: str
    target_group_arn: str


def _ecs_stack(desired: int, targets: int) -> EcsStack:
    """A cluster, a target group with `targets` registered IPs, a Fargate service wanting `desired` tasks."""
    ec2, elbv2, ecs = boto3.client("ec2"), boto3.client("elbv2"), boto3.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=f"eu-west-1{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("ab")
    ]
    group = ec2.create_security_group(GroupName=_unique("tasks"), Description="tasks", VpcId=vpc)["GroupId"]
    name = _unique("api")
    balancer = elbv2.create_load_balancer(Name=_unique("alb"), Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    target_group = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip")[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )
    if targets:
        elbv2.register_targets(
            TargetGroupArn=target_group,
            Targets=[{"Id": f"10.40.{i % 2}.{10 + i}", "Port": 8000} for i in range(targets)],
        )
    cluster = _unique("diabetes-dev-ecs")
    ecs.create_cluster(clusterName=cluster)
    task = ecs.register_task_definition(
        family=name,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "api", "image": "api:3f2c1ab", "portMappings": [{"containerPort": 8000}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=task,
        desiredCount=desired,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": subnets,
                "securityGroups": [group],
                "assignPublicIp": "DISABLED",
            }
        },
        loadBalancers=[{"targetGroupArn": target_group, "containerName": "api", "containerPort": 8000}],
    )
    return EcsStack(cluster, name, target_group)


def test_verify_ecs_passes_for_a_completed_rollout_with_healthy_targets(aws_env: dict[str, str]) -> None:
    stack = _ecs_stack(desired=MOTO_RUNNING_TASKS, targets=MOTO_RUNNING_TASKS)
    completed = run_ops(
        "verify-ecs",
        "--cluster",
        stack.cluster,
        "--service",
        stack.service,
        "--timeout",
        "5",
        "--interval",
        "1",
    )
    assert completed.returncode == 0, completed.stderr
    assert "rollout completed, all targets healthy" in completed.stdout


def test_verify_ecs_names_every_failing_check(aws_env: dict[str, str]) -> None:
    stack = _ecs_stack(desired=MOTO_RUNNING_TASKS + 1, targets=0)
    completed = run_ops(
        "verify-ecs",
        "--cluster",
        stack.cluster,
        "--service",
        stack.service,
        "--target-group-arn",
        stack.target_group_arn,
        "--timeout",
        "0",
    )
    assert completed.returncode == 1
    stderr = completed.stderr
    assert f"ECS service {stack.service} is not healthy after 0s" in stderr
    assert f"runs {MOTO_RUNNING_TASKS} of {MOTO_RUNNING_TASKS + 1} desired task(s)" in stderr
    assert "is IN_PROGRESS" in stderr
    assert f"target group {stack.target_group_arn} has 0 healthy target(s), expected 3" in stderr
    assert "Traceback" not in stderr


def test_verify_ecs_checks_the_deployed_image_tag(aws_env: dict[str, str]) -> None:
    stack = _ecs_stack(desired=MOTO_RUNNING_TASKS, targets=MOTO_RUNNING_TASKS)
    base = ["verify-ecs", "--cluster", stack.cluster, "--service", stack.service, "--timeout", "0"]
    assert run_ops(*base, "--image-tag", "3f2c1ab").returncode == 0
    completed = run_ops(*base, "--image-tag", "deadbee")
    assert completed.returncode == 1
    assert f"container api of {stack.service}:1 runs api:3f2c1ab, not tag deadbee" in completed.stderr


def test_verify_ecs_reports_a_missing_service(aws_env: dict[str, str]) -> None:
    stack = _ecs_stack(desired=1, targets=1)
    completed = run_ops("verify-ecs", "--cluster", stack.cluster, "--service", "nope", "--timeout", "0")
    assert completed.returncode == 1
    assert f"ECS service 'nope' not found in cluster '{stack.cluster}' (MISSING)" in completed.stderr


def _eks_cluster(profiles: list[str]) -> str:
    ec2, eks = boto3.client("ec2"), boto3.client("eks")
    vpc = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.41.{i}.0/24")["Subnet"]["SubnetId"] for i in range(2)]
    name = _unique("diabetes-dev-eks")
    eks.create_cluster(name=name, roleArn=ROLE, resourcesVpcConfig={"subnetIds": subnets})
    for profile in profiles:
        eks.create_fargate_profile(
            fargateProfileName=profile,
            clusterName=name,
            podExecutionRoleArn=ROLE,
            subnets=subnets,
            selectors=[{"namespace": "kube-system" if profile.endswith("system") else "diabetes"}],
        )
    return name


def test_verify_eks_passes_when_cluster_and_profiles_are_active(aws_env: dict[str, str]) -> None:
    cluster = _eks_cluster(["diabetes-dev-system", "diabetes-dev-app"])
    completed = run_ops(
        "verify-eks",
        "--cluster",
        cluster,
        "--fargate-profile",
        "diabetes-dev-system",
        "--fargate-profile",
        "diabetes-dev-app",
    )
    assert completed.returncode == 0, completed.stderr
    assert "Fargate profiles diabetes-dev-system, diabetes-dev-app are ACTIVE" in completed.stdout


def test_verify_eks_reports_a_missing_profile(aws_env: dict[str, str]) -> None:
    cluster = _eks_cluster(["diabetes-dev-system"])
    completed = run_ops(
        "verify-eks",
        "--cluster",
        cluster,
        "--fargate-profile",
        "diabetes-dev-app",
        "--timeout",
        "0",
        "--interval",
        "1",
    )
    assert completed.returncode == 1
    assert f"Fargate profile 'diabetes-dev-app' not found in cluster {cluster}" in completed.stderr


def test_verify_eks_reports_a_missing_cluster(aws_env: dict[str, str]) -> None:
    completed = run_ops("verify-eks", "--cluster", "no-such-cluster", "--fargate-profile", "p", "--timeout", "0")
    assert completed.returncode == 1
    assert "EKS cluster 'no-such-cluster' not found" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_cli_help_documents_the_subcommands() -> None:
    completed = run_ops("--help")
    assert completed.returncode == 0
    for command in ("promote-image", "verify-ecs", "verify-eks", "exit status"):
        assert command in completed.stdout


def test_cli_rejects_missing_arguments() -> None:
    completed = run_ops("promote-image", "--repository", "x")
    assert completed.returncode == 2
    assert "--source-tag" in completed.stderr


class CallRecorder:
    """The IAM actions a boto3 session's clients call (service prefix + operation, as IAM names them)."""

    PREFIXES: ClassVar[dict[str, str]] = {"elbv2": "elasticloadbalancing"}

    def __init__(self) -> None:
        self.actions: set[str] = set()
        self.session = boto3.session.Session()
        self.session.events.register("before-call", self._record)

    def _record(self, model: object, **_: object) -> None:
        endpoint_prefix = model.service_model.endpoint_prefix  # type: ignore[attr-defined]
        self.actions.add(f"{self.PREFIXES.get(endpoint_prefix, endpoint_prefix)}:{model.name}")  # type: ignore[attr-defined]


def test_the_ci_roles_may_make_every_call_the_verify_steps_make(aws_env: dict[str, str]) -> None:
    """The deploy job runs verify-ecs and verify-eks as the deploy role: each call they make must be allowed (a good
    rollout once went red because elasticloadbalancing:DescribeTargetHealth was not)."""
    from stacks.ops.ci_roles import CiSetup, deploy_policy
    from stacks.ops.verify import check_ecs, check_eks
    from tests.stacks.iam_lint import allows

    recorder = CallRecorder()
    ecs_stack = _ecs_stack(desired=MOTO_RUNNING_TASKS, targets=MOTO_RUNNING_TASKS)
    check_ecs(
        recorder.session.client("ecs"),
        elbv2=recorder.session.client("elbv2"),
        cluster=ecs_stack.cluster,
        service_name=ecs_stack.service,
        target_group_arns=[],
        min_count=1,
        image_tag="3f2c1ab",
    )
    cluster = _eks_cluster(["diabetes-dev-system"])
    check_eks(recorder.session.client("eks"), cluster, ["diabetes-dev-system"])
    assert {"ecs:DescribeServices", "elasticloadbalancing:DescribeTargetHealth", "eks:DescribeCluster"} <= (
        recorder.actions
    )

    setup = CiSetup("acme/diabetes", "dev", "123456789012", "eu-west-1", "acme-pulumi-state", "1234abcd-0000")
    policy = deploy_policy(setup)
    # The stack's own names (what verify-ecs/verify-eks are given from the stack's outputs): the deploy role's ECS and
    # EKS statements are scoped to its cluster.
    eks_arn = "arn:aws:eks:eu-west-1:123456789012:{}/diabetes-dev-eks"
    resources = {
        "ecs:DescribeServices": "arn:aws:ecs:eu-west-1:123456789012:service/diabetes-dev-ecs/diabetes-dev-ecs-api-1a2b",
        "eks:DescribeCluster": eks_arn.format("cluster"),
        "eks:DescribeFargateProfile": eks_arn.format("fargateprofile") + "/diabetes-dev-system/0ac7c0a2",
    }
    context = {"aws:RequestedRegion": "eu-west-1"}
    denied = sorted(a for a in recorder.actions if not allows(policy, a, resources.get(a, "*"), context))
    assert not denied, f"the deploy role may not make these calls of the verify steps: {denied}"


def test_an_environment_named_like_another_plus_a_hyphen_is_refused_before_anything_is_made() -> None:
    """`dev-2` would share every grant made on `diabetes-dev-*` with `dev` (a second review reached dev-2's load
    balancers, log groups and WAF with dev's deploy role)."""
    for command in (
        ["bootstrap", "--repository", "acme/diabetes", "--environment", "dev-2", "--region", "eu-west-1"],
        ["ci-roles", "--repository", "acme/diabetes", "--environment", "dev-2", "--account-id", "111122223333"],
    ):
        done = run_ops(*command)
        assert done.returncode == 2, done.stderr
        assert "'dev-2': 1 to 16 lower-case letters and digits, no hyphen" in done.stderr
