"""The shared layer (ECR, VPC) and cross-cutting properties (tags, IAM) of the program's resource graph."""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

import pytest

from tests.stacks.conftest import S3_MODEL
from tests.stacks.harness import REGION, Run, run_program, settings_for, subnet_ids

TAG_KEYS = {"Project", "Environment", "Component", "ManagedBy"}
#: Actions AWS only authorizes on Resource "*" (no resource-level permissions), and read-only ones.
STAR_RESOURCE_OK = ("ecr:GetAuthorizationToken", "acm:ListCertificates")


def _policy_statements(run: Run) -> list[dict[str, Any]]:
    statements = []
    for resource in run.recorder.of_type("aws:iam/rolePolicy:RolePolicy"):
        statements.extend(json.loads(resource.inputs["policy"])["Statement"])
    return statements


def _resource_class(typ: str) -> Any:
    """The pulumi_aws class of a type token, e.g. aws:ec2/subnet:Subnet -> pulumi_aws.ec2.Subnet."""
    _, module_path, name = typ.split(":")
    module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
    return getattr(module, name)


def test_ecr_repositories_scan_on_push_with_immutable_tags(full_run: Run) -> None:
    repositories = full_run.recorder.of_type("aws:ecr/repository:Repository")
    assert sorted(r.inputs["name"] for r in repositories) == ["diabetes-dev/api", "diabetes-dev/ui"]
    for repository in repositories:
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}


def test_ecr_lifecycle_keeps_last_n_from_config(full_run: Run) -> None:
    policies = full_run.recorder.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(policies) == 2
    rules = json.loads(policies[0].inputs["policy"])["rules"]
    assert [rule["rulePriority"] for rule in rules] == [1, 2, 3]
    counts = [
        rule["selection"]["countNumber"] for rule in rules if rule["selection"]["countType"] == "imageCountMoreThan"
    ]
    assert counts == [12, 12]
    assert rules[0]["selection"]["tagPrefixList"] == ["release-"]
    assert rules[-1]["selection"]["tagStatus"] == "any"


def test_vpc_has_public_and_private_subnets_in_two_zones(full_run: Run) -> None:
    subnets = full_run.recorder.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"]["Tier"] == "public"]
    private = [s for s in subnets if s.inputs["tags"]["Tier"] == "private"]
    assert len(public) == len(private) == 2
    assert {s.inputs["availabilityZone"] for s in public} == {f"{REGION}a", f"{REGION}b"}
    assert {s.inputs["availabilityZone"] for s in private} == {f"{REGION}a", f"{REGION}b"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert all(s.inputs["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)
    # The EKS cluster tag lets the Load Balancer Controller pick these subnets.
    assert all(s.inputs["tags"]["kubernetes.io/cluster/diabetes-dev-eks"] == "shared" for s in subnets)


def test_cluster_subnet_tag_only_when_eks_is_enabled(ecs_only_run: Run) -> None:
    for subnet in ecs_only_run.recorder.of_type("aws:ec2/subnet:Subnet"):
        assert not any(key.startswith("kubernetes.io/cluster/") for key in subnet.inputs["tags"])


@pytest.mark.parametrize(("fixture", "expected"), [("full_run", 2), ("ecs_only_run", 1)])
def test_nat_gateways_follow_config_and_private_routes_use_them(
    fixture: str, expected: int, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(fixture)
    nats = run.recorder.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == expected
    public_ids = subnet_ids(run, "public")
    assert {nat.inputs["subnetId"] for nat in nats} <= public_ids
    private_tables = [t for t in run.recorder.of_type("aws:ec2/routeTable:RouteTable") if "private" in t.name]
    assert len(private_tables) == 2
    nat_ids = {f"{nat.name}-id" for nat in nats}
    for table in private_tables:
        (route,) = table.inputs["routes"]
        assert route["cidrBlock"] == "0.0.0.0/0"
        assert route["natGatewayId"] in nat_ids
    endpoint = run.recorder.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{REGION}.s3"


@pytest.mark.parametrize("fixture", ["full_run", "ecs_only_run", "eks_only_run"])
def test_every_taggable_aws_resource_is_tagged(fixture: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(fixture)
    checked = 0
    for resource in run.recorder.resources:
        if not resource.typ.startswith("aws:"):
            continue
        if "tags" not in inspect.signature(_resource_class(resource.typ)._internal_init).parameters:
            continue
        checked += 1
        tags = resource.inputs.get("tags") or {}
        assert tags.keys() >= TAG_KEYS, f"{resource.typ} {resource.name} lacks tags: {sorted(tags)}"
        assert tags["Environment"] == "dev"
    assert checked >= 15


@pytest.mark.parametrize("fixture", ["full_run", "ecs_only_run", "eks_only_run"])
def test_iam_names_actions_and_scopes_resources(fixture: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(fixture)
    statements = _policy_statements(run)
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        assert all("*" not in action for action in actions), actions
        if statement["Resource"] == "*":
            # Only calls without resource-level permissions: the ECR login and read-only describes/lists.
            assert all(a in STAR_RESOURCE_OK or a.split(":")[1].startswith(("Describe", "Get")) for a in actions), (
                actions
            )
        else:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all(r.startswith("arn:aws:") for r in resources), resources


def test_service_trust_policies_are_bound_to_this_account(full_run: Run) -> None:
    for role in full_run.recorder.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        if "Service" in statement["Principal"]:
            assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
        else:
            assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"


def test_s3_model_access_is_limited_to_the_model_prefix(full_run: Run) -> None:
    bucket, prefix = S3_MODEL.removeprefix("s3://").split("/", 1)
    model_policies = [r for r in full_run.recorder.of_type("aws:iam/rolePolicy:RolePolicy") if "model" in r.name]
    assert len(model_policies) == 2  # the ECS task role and the EKS IRSA role
    for policy in model_policies:
        statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
        assert statements.keys() == {"ReadModel", "ListModel"}
        assert statements["ReadModel"]["Action"] == ["s3:GetObject"]
        assert statements["ReadModel"]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}/*"
        assert statements["ListModel"]["Action"] == ["s3:ListBucket"]
        assert statements["ListModel"]["Resource"] == f"arn:aws:s3:::{bucket}"
        assert statements["ListModel"]["Condition"]["StringLike"]["s3:prefix"] == [prefix, f"{prefix}/*"]


def test_no_model_policy_when_the_model_is_baked_into_the_image(ecs_only_run: Run) -> None:
    names = [r.name for r in ecs_only_run.recorder.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert names == ["diabetes-dev-ecs-execution"]


def test_bootstrap_stack_creates_only_the_registry_and_network() -> None:
    run = run_program(settings_for(ecsEnabled="false", eksEnabled="false"))
    types = {resource.typ for resource in run.recorder.resources}
    assert "aws:ecr/repository:Repository" in types
    assert "aws:ec2/vpc:Vpc" in types
    assert not [t for t in types if t.startswith(("aws:ecs", "aws:eks", "eks:", "kubernetes:", "aws:lb"))]
    assert run.outputs == {}
