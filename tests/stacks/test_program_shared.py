"""The root project (ECR, VPC, buckets) and cross-cutting properties (tags, IAM) of all three programs."""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

import pytest

from stacks import shared
from tests.stacks.conftest import S3_MODEL
from tests.stacks.harness import ELB_ACCOUNT, REGION, Run, subnet_ids

TAG_KEYS = {"Project", "Environment", "Component", "ManagedBy"}
#: Actions AWS only authorizes on Resource "*" (no resource-level permissions), and read-only ones.
STAR_RESOURCE_OK = ("ecr:GetAuthorizationToken", "acm:ListCertificates")
ALL_RUNS = ["root_run", "ecs_full_run", "ecs_minimal_run", "eks_full_run", "eks_minimal_run"]


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


def test_root_exports_everything_the_platforms_read(root_run: Run) -> None:
    read = {
        shared.VPC_ID,
        shared.PUBLIC_SUBNET_IDS,
        shared.PRIVATE_SUBNET_IDS,
        shared.ACCESS_LOG_BUCKET,
        *(shared.repository_url_output(t) for t in shared.TARGETS),
        *(shared.repository_arn_output(t) for t in shared.TARGETS),
    }
    assert read <= root_run.outputs.keys()
    assert len(root_run.outputs[shared.PRIVATE_SUBNET_IDS]) == 2
    assert root_run.outputs["apiRepositoryArn"].endswith(":repository/diabetes-dev/api")


def test_root_creates_no_platform_resources(root_run: Run) -> None:
    types = {resource.typ for resource in root_run.recorder.resources}
    assert not [t for t in types if t.startswith(("aws:ecs", "aws:eks", "kubernetes:", "aws:lb"))]


def test_ecr_repositories_scan_on_push_with_immutable_tags(root_run: Run) -> None:
    repositories = root_run.recorder.of_type("aws:ecr/repository:Repository")
    assert sorted(r.inputs["name"] for r in repositories) == ["diabetes-dev/api", "diabetes-dev/ui"]
    for repository in repositories:
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}


def test_ecr_lifecycle_keeps_last_n_from_config(root_run: Run) -> None:
    policies = root_run.recorder.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(policies) == 2
    rules = json.loads(policies[0].inputs["policy"])["rules"]
    assert [rule["rulePriority"] for rule in rules] == [1, 2, 3]
    counts = [
        rule["selection"]["countNumber"] for rule in rules if rule["selection"]["countType"] == "imageCountMoreThan"
    ]
    assert counts == [12, 12]
    assert rules[0]["selection"]["tagPrefixList"] == ["release-"]


def test_vpc_has_public_and_private_subnets_in_two_zones(root_run: Run) -> None:
    subnets = root_run.recorder.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"]["Tier"] == "public"]
    private = [s for s in subnets if s.inputs["tags"]["Tier"] == "private"]
    assert len(public) == len(private) == 2
    assert {s.inputs["availabilityZone"] for s in public} == {f"{REGION}a", f"{REGION}b"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert all(s.inputs["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)


def test_nat_gateways_follow_config_and_private_routes_use_them(root_run: Run) -> None:
    nats = root_run.recorder.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 2  # perAz
    assert {nat.inputs["subnetId"] for nat in nats} <= subnet_ids(root_run, "public")
    private_tables = [t for t in root_run.recorder.of_type("aws:ec2/routeTable:RouteTable") if "private" in t.name]
    nat_ids = {nat.mock_id for nat in nats}
    for table in private_tables:
        (route,) = table.inputs["routes"]
        assert route["natGatewayId"] in nat_ids
    endpoint = root_run.recorder.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{REGION}.s3"


def test_buckets_are_private_encrypted_and_tls_only(root_run: Run) -> None:
    buckets = root_run.recorder.of_type("aws:s3/bucket:Bucket")
    assert sorted(b.name for b in buckets) == ["diabetes-dev-access-logs", "diabetes-dev-models"]
    assert all("bucket" not in b.inputs for b in buckets), "buckets are autonamed (globally unique, no clash)"
    for block in root_run.recorder.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(block.inputs[key] is True for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))
    for policy in root_run.recorder.of_type("aws:s3/bucketPolicy:BucketPolicy"):
        deny = [s for s in json.loads(policy.inputs["policy"])["Statement"] if s["Effect"] == "Deny"]
        assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    versioning = root_run.recorder.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["bucket"] == "diabetes-dev-models-bucket-id"


def test_access_log_bucket_lets_elb_write_only_under_the_platform_prefixes(root_run: Run) -> None:
    policy = json.loads(root_run.recorder.one("aws:s3/bucketPolicy:BucketPolicy", "access-logs").inputs["policy"])
    writers = {s["Sid"]: s for s in policy["Statement"] if s["Effect"] == "Allow"}
    assert writers["ElbAccount"]["Principal"] == {"AWS": ELB_ACCOUNT}
    assert writers["ElbDelivery"]["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    for statement in writers.values():
        assert statement["Action"] == ["s3:PutObject"]
        assert statement["Resource"] == [
            f"arn:aws:s3:::diabetes-dev-access-logs-bucket/{prefix}/AWSLogs/123456789012/*" for prefix in ("ecs", "eks")
        ]
    rules = root_run.recorder.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert rules[0]["expiration"] == {"days": 14}


#: AWS makes the VPC's default group untagged; the deploy role may not tag a group it did not create (ci_roles.py).
UNTAGGED = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"


@pytest.mark.parametrize("fixture", ALL_RUNS)
def test_every_taggable_aws_resource_is_tagged(fixture: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(fixture)
    checked = 0
    for resource in run.recorder.resources:
        if not resource.typ.startswith("aws:"):
            continue
        if "tags" not in inspect.signature(_resource_class(resource.typ)._internal_init).parameters:
            continue
        if resource.typ == UNTAGGED:
            continue
        checked += 1
        tags = resource.inputs.get("tags") or {}
        assert tags.keys() >= TAG_KEYS, f"{resource.typ} {resource.name} lacks tags: {sorted(tags)}"
        assert tags["Environment"] == "dev"
    assert checked >= 5


@pytest.mark.parametrize("fixture", ["ecs_full_run", "ecs_minimal_run", "eks_full_run", "eks_minimal_run"])
def test_iam_names_actions_and_scopes_resources(fixture: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(fixture)
    statements = _policy_statements(run)
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        assert all("*" not in action for action in actions), actions
        if statement["Resource"] == "*":
            assert all(a in STAR_RESOURCE_OK or a.split(":")[1].startswith(("Describe", "Get")) for a in actions), (
                actions
            )
        else:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all(r.startswith("arn:aws:") for r in resources), resources


def test_service_trust_policies_are_bound_to_this_account(ecs_full_run: Run, eks_full_run: Run) -> None:
    roles = [*ecs_full_run.recorder.of_type("aws:iam/role:Role"), *eks_full_run.recorder.of_type("aws:iam/role:Role")]
    for role in roles:
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        if "Service" in statement["Principal"]:
            assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
        else:
            assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"


def test_s3_model_access_is_limited_to_the_model_prefix(ecs_full_run: Run, eks_full_run: Run) -> None:
    bucket, prefix = S3_MODEL.removeprefix("s3://").split("/", 1)
    model_policies = [
        r
        for run in (ecs_full_run, eks_full_run)
        for r in run.recorder.of_type("aws:iam/rolePolicy:RolePolicy")
        if "model" in r.name
    ]
    assert len(model_policies) == 2  # the ECS task role and the EKS IRSA role
    for policy in model_policies:
        statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
        assert statements.keys() == {"ReadModel", "ListModel"}
        assert statements["ReadModel"]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}/*"
        assert statements["ListModel"]["Condition"]["StringLike"]["s3:prefix"] == [prefix, f"{prefix}/*"]


def test_no_model_policy_when_the_model_is_baked_into_the_image(ecs_minimal_run: Run) -> None:
    names = [r.name for r in ecs_minimal_run.recorder.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert names == ["diabetes-dev-ecs-execution"]
