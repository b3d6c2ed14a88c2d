"""The three programs replayed against a real moto server, in the order they deploy: root, then ECS and EKS.

Each AWS resource a program declares is created with the boto3 call that creates it (see tests/stacks/replay), its
inputs checked against the AWS API model, and its references replaced by what the earlier creations returned. What
moto cannot create is listed in `replay.catalog.NOT_REPLAYABLE` with the reason: EKS access entries, access policy
associations and add-ons (moto has no such APIs; they are not faked), and the Kubernetes objects (not AWS; validated
against the Kubernetes schema in test_program_eks).

Each variant runs in its own moto account, so it shares nothing with the other tests on the same server.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.stacks.harness import Resource
from tests.stacks.replay.api_model import ApiModelError
from tests.stacks.replay.catalog import NOT_REPLAYABLE, REPLAYED, declared_types, unlisted
from tests.stacks.replay.engine import DanglingReferenceError, Replay, skipped
from tests.stacks.replay.stacks import STACKS, Replayed

ALL_RUNS = ["root_run", "ecs_full_run", "ecs_minimal_run", "eks_full_run", "eks_minimal_run"]


def _copy(resource: Resource, **inputs: Any) -> Resource:
    return dataclasses.replace(resource, inputs={**resource.inputs, **inputs})


def test_every_resource_type_is_replayed_or_listed_as_not_replayable(request: pytest.FixtureRequest) -> None:
    types = {t for fixture in ALL_RUNS for t in declared_types(request.getfixturevalue(fixture).recorder.resources)}
    assert unlisted(types) == set()
    listed = REPLAYED.keys() | NOT_REPLAYABLE.keys()
    assert listed <= types, f"listed but no program makes them any more: {sorted(listed - types)}"
    assert unlisted({"aws:sqs/queue:Queue"}) == {"aws:sqs/queue:Queue"}, "a new type must fail the check above"


@pytest.mark.parametrize("variant", ["full", "minimal"])
@pytest.mark.parametrize("stack", STACKS)
def test_every_aws_resource_of_each_stack_is_created_in_moto(
    variant: str, stack: str, request: pytest.FixtureRequest
) -> None:
    replayed: Replayed = request.getfixturevalue(f"{variant}_replay")
    declared = [r for r in replayed.runs[stack].recorder.resources if not skipped(r.typ)]
    created = replayed.created[stack]
    assert sorted((c.typ, c.name) for c in created) == sorted((r.typ, r.name) for r in declared)
    assert all(c.outputs["id"] for c in created)


def test_ecs_services_run_the_real_task_definitions_behind_the_real_target_groups(full_replay: Replayed) -> None:
    ecs = full_replay.clients("ecs")
    private = full_replay.ids("root", "aws:ec2/subnet:Subnet", "-private-")
    for workload in ("api", "ui"):
        service = full_replay.one("ecs", "aws:ecs/service:Service", f"-{workload}")
        (described,) = ecs.describe_services(cluster="diabetes-dev-ecs", services=[service.outputs["arn"]])["services"]
        task = full_replay.one("ecs", "aws:ecs/taskDefinition:TaskDefinition", f"-{workload}")
        assert described["taskDefinition"] == task.outputs["arn"]
        group = full_replay.one("ecs", "aws:lb/targetGroup:TargetGroup", f"-{workload}")
        assert [lb["targetGroupArn"] for lb in described["loadBalancers"]] == [group.outputs["arn"]]
        subnets = described["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
        assert set(subnets) == private


def test_ecs_scaling_policies_track_the_real_load_balancer(full_replay: Replayed) -> None:
    scaling = full_replay.clients("application-autoscaling")
    policies = scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    labels = {
        p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"].get("ResourceLabel")
        for p in policies
    }
    balancer = full_replay.one("ecs", "aws:lb/loadBalancer:LoadBalancer")
    group = full_replay.one("ecs", "aws:lb/targetGroup:TargetGroup", "-api")
    assert f"{balancer.outputs['arnSuffix']}/{group.outputs['arnSuffix']}" in labels


def test_the_fargate_profile_uses_the_real_pod_role_and_private_subnets(full_replay: Replayed) -> None:
    eks = full_replay.clients("eks")
    role = full_replay.one("eks", "aws:iam/role:Role", "-pod-execution")
    private = full_replay.ids("root", "aws:ec2/subnet:Subnet", "-private-")
    cluster, profile = full_replay.one("eks", "eks:index:Cluster").outputs["fargateProfileId"].split(":")
    described = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=profile)["fargateProfile"]
    assert cluster == "diabetes-dev-eks"
    assert described["podExecutionRoleArn"] == role.outputs["arn"]
    assert set(described["subnets"]) == private
    assert [s["namespace"] for s in described["selectors"]] == ["kube-system", "diabetes"]


def test_irsa_roles_trust_the_real_cluster_issuer(full_replay: Replayed) -> None:
    provider = full_replay.one("eks", "aws:iam/openIdConnectProvider:OpenIdConnectProvider").outputs
    issuer = full_replay.clients("eks").describe_cluster(name="diabetes-dev-eks")["cluster"]["identity"]["oidc"][
        "issuer"
    ]
    role = full_replay.one("eks", "aws:iam/role:Role", "-lb-controller")
    trust = full_replay.clients("iam").get_role(RoleName=role.outputs["name"])["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Federated": provider["arn"]}
    subject = statement["Condition"]["StringEquals"][f"{issuer.removeprefix('https://')}:sub"]
    assert subject == "system:serviceaccount:kube-system:aws-load-balancer-controller"


def test_the_trial_runs_its_tasks_public_in_a_vpc_without_nat(trial_replay: Replayed) -> None:
    """The cheap first try as moto creates it: no NAT gateway, the private subnets without a default route, the API
    task in the public subnets with a public address."""
    declared = [
        r for stack in ("root", "ecs") for r in trial_replay.runs[stack].recorder.resources if not skipped(r.typ)
    ]
    assert len(declared) == sum(len(created) for created in trial_replay.created.values())
    ec2 = trial_replay.clients("ec2")
    vpc = trial_replay.one("root", "aws:ec2/vpc:Vpc").outputs["id"]
    assert ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NatGateways"] == []
    for table in (c for c in trial_replay.created["root"] if c.typ == "aws:ec2/routeTable:RouteTable"):
        routes = ec2.describe_route_tables(RouteTableIds=[table.outputs["id"]])["RouteTables"][0]["Routes"]
        defaults = [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert bool(defaults) == ("-public" in table.name), table.name
    service = trial_replay.one("ecs", "aws:ecs/service:Service", "-api")
    (described,) = trial_replay.clients("ecs").describe_services(
        cluster="diabetes-trial-ecs", services=[service.outputs["arn"]]
    )["services"]
    network = described["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "ENABLED"
    assert set(network["subnets"]) == trial_replay.ids("root", "aws:ec2/subnet:Subnet", "-public-")


# The replay must be able to fail: each fault below is one a real `pulumi up` would hit.


def test_an_invalid_policy_document_fails(full_replay: Replayed) -> None:
    policy = full_replay.declared("ecs", "aws:iam/rolePolicy:RolePolicy", "-execution")
    broken = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs PutLogEvents"}]})
    with pytest.raises(ClientError, match="MalformedPolicyDocument"):
        full_replay.replay.create(_copy(policy, policy=broken))


def test_a_bad_enum_fails(full_replay: Replayed) -> None:
    group = full_replay.declared("ecs", "aws:lb/targetGroup:TargetGroup", "-api")
    with pytest.raises(ApiModelError, match="'HTTP2' is not one of"):
        full_replay.replay.create(_copy(group, protocol="HTTP2"))


def test_a_wrong_shape_fails(full_replay: Replayed) -> None:
    task = full_replay.declared("ecs", "aws:ecs/taskDefinition:TaskDefinition", "-api")
    containers = json.loads(task.inputs["containerDefinitions"])
    containers[0]["readOnlyRootFilesystem"] = containers[0].pop("readonlyRootFilesystem")
    with pytest.raises(ParamValidationError, match="readOnlyRootFilesystem"):
        full_replay.replay.create(_copy(task, containerDefinitions=json.dumps(containers)))


def test_a_reference_to_nothing_fails(full_replay: Replayed) -> None:
    group = full_replay.declared("ecs", "aws:lb/targetGroup:TargetGroup", "-api")
    with pytest.raises(ClientError, match="VPC ID 'vpc-0123456789abcdef0' is not found"):
        full_replay.replay.create(_copy(group, vpcId="vpc-0123456789abcdef0"))


def test_a_reference_to_a_resource_not_created_yet_fails(full_replay: Replayed) -> None:
    """A replay that knows the programs' mock values but has created nothing: a subnet's VPC dangles."""
    replay = Replay(full_replay.clients, owners=dict(full_replay.replay.owners))
    subnet = full_replay.declared("root", "aws:ec2/subnet:Subnet", "-private-0")
    with pytest.raises(DanglingReferenceError, match=r"input vpcId refers to .* aws:ec2/vpc:Vpc diabetes-dev-net-vpc,"):
        replay.create(subnet)


def test_an_input_the_replay_does_not_translate_fails(full_replay: Replayed) -> None:
    repository = full_replay.declared("root", "aws:ecr/repository:Repository", "-api")
    with pytest.raises(AssertionError, match=r"inputs not replayed: \{'forceDelete'\}"):
        full_replay.replay.create(_copy(repository, name="diabetes-dev/extra", forceDelete=True))
