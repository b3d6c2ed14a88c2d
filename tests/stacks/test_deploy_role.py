"""The CI deploy role may do everything `pulumi up` of the three stacks does, on the resources it really creates.

Every AWS resource type the programs make has its provider actions listed (tests/stacks/provider_actions.py); each
action is checked against the deploy role's policy on the ARNs of the resources the replay created in moto (the
account is the replay's), so a statement narrowed to the wrong names fails too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from stacks.aws_context import STACK_ROLES, AwsContext, stack_role
from stacks.config import EcsStackSettings, EksStackSettings, SharedSettings
from stacks.ecs.program import build as ecs_build
from stacks.eks.lb_controller_policy import CLUSTER_TAG
from stacks.eks.program import build as eks_build
from stacks.ops.boundary import CLUSTER_POLICY_DROPPED, EKS_CLUSTER_POLICY_ACTIONS, workload_boundary_policy
from stacks.ops.ci_roles import ECS_SCALING, CiSetup, ci_roles, deploy_policy, preview_policy, publish_policy
from stacks.root import build as root_build
from tests.stacks import eks_component
from tests.stacks.harness import ACCOUNT, REGION, integral, run_program, settings_for
from tests.stacks.iam_lint import allows, allows_bounded
from tests.stacks.provider_actions import (
    ECS_SERVICE_OPERATIONS,
    INVOKE_ACTIONS,
    PROVIDER_ACTIONS,
    SOURCE_FILES,
    Need,
    iam_action,
)
from tests.stacks.replay.catalog import declared_types, is_component
from tests.stacks.replay.stacks import ACCOUNTS, Replayed

ALL_RUNS = ["root_run", "ecs_full_run", "ecs_minimal_run", "eks_full_run", "eks_minimal_run"]
SG_WRITES = ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup")
SETUP = CiSetup("acme/diabetes", "dev", ACCOUNTS["full"], REGION, "acme-pulumi-state", "1234abcd-0000")


def _resources(replayed: Replayed) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, template fields) of every AWS resource of the full variant: created ones with their real inputs and
    outputs, the ones moto cannot create with their declared inputs."""
    base = {
        "account": SETUP.account_id,
        "region": REGION,
        "name": SETUP.name,
        "cluster": f"{SETUP.name}-eks",
        "boundary": SETUP.ctx.boundary_arn,
        "project": SETUP.project,
        "environment": SETUP.environment,
    }
    created = {(c.typ, c.name): c for stack in replayed.created.values() for c in stack}
    for run in replayed.runs.values():
        for resource in run.recorder.resources:
            if resource.typ == eks_component.TYPE:  # what the component made, with the inputs it gave each child
                for child, outputs in created[(resource.typ, resource.name)].outputs["children"]:
                    yield child.typ, {**base, "inputs": child.inputs, "arn": outputs.get("arn", "")}
                continue
            if resource.typ not in PROVIDER_ACTIONS:
                continue
            if (resource.typ, resource.name) in created:
                made = created[(resource.typ, resource.name)]
                arn = made.outputs.get("arn", "")
                yield (
                    resource.typ,
                    {
                        **base,
                        "inputs": made.inputs,
                        "arn": arn,
                        "id": made.outputs.get("id", ""),
                        "resource_path": arn.split(":", 5)[-1].partition("/")[2],
                    },
                )
            else:
                yield resource.typ, {**base, "inputs": integral(resource.inputs), "arn": ""}


def _denied(policy: str, need: Need, fields: dict[str, Any]) -> str | None:
    resource = need.resource.format(**fields)
    context = {key: value.format(**fields) for key, value in need.context.items()}
    if allows(policy, need.action, resource, {"aws:RequestedRegion": REGION, **context}):
        return None
    return f"{need.action} on {resource} {context or ''}"


def test_every_aws_resource_type_has_its_provider_actions_listed(request: pytest.FixtureRequest) -> None:
    types = {t for fixture in ALL_RUNS for t in declared_types(request.getfixturevalue(fixture).recorder.resources)}
    aws_types = {typ for typ in types if typ.startswith("aws:")}
    assert aws_types - PROVIDER_ACTIONS.keys() == set()
    assert PROVIDER_ACTIONS.keys() - aws_types == set(), "listed types no program makes any more"
    assert not [
        typ
        for typ in types - aws_types
        if not typ.startswith(("kubernetes:", "pulumi:")) and not is_component(typ) and typ != eks_component.TYPE
    ]


def test_every_listed_type_names_the_provider_source_it_was_read_from() -> None:
    assert SOURCE_FILES.keys() == PROVIDER_ACTIONS.keys()


def test_a_steady_state_wait_needs_the_service_deployment_calls() -> None:
    """The provider's wait_for_steady_state polls the deployments of the service (ecs/service.go): without these two
    calls every ECS `up` fails after the service was created."""
    needed = {iam_action("ecs", operation) for operation in ECS_SERVICE_OPERATIONS}
    assert {"ecs:ListServiceDeployments", "ecs:DescribeServiceDeployments"} <= needed
    assert iam_action("s3", "HeadBucket") == "s3:ListBucket"


def test_the_deploy_role_may_do_what_the_provider_does_on_every_resource(full_replay: Replayed) -> None:
    policy = deploy_policy(SETUP)
    denied, checked = set(), set()
    for typ, fields in _resources(full_replay):
        for need in PROVIDER_ACTIONS[typ]:
            try:
                problem = _denied(policy, need, fields)
            except KeyError:  # an optional input this resource does not have (a task role, say)
                continue
            checked.add((typ, need.action, need.resource))
            if problem:
                denied.add(f"{typ}: {problem}")
    assert not denied, "\n".join(sorted(denied))
    unchecked = {(typ, n.action, n.resource) for typ, needs in PROVIDER_ACTIONS.items() for n in needs} - checked
    assert unchecked == set(), "needs no resource could fill in"


def test_the_check_fails_for_a_name_outside_the_stack() -> None:
    policy = deploy_policy(SETUP)
    role = f"arn:aws:iam::{SETUP.account_id}:role/diabetes-dev/diabetes-dev-ecs-execution-1a2b3c4"
    bounded = {"iam:PermissionsBoundary": SETUP.ctx.boundary_arn}
    assert allows(policy, "iam:CreateRole", role, bounded)
    assert not allows(policy, "iam:CreateRole", role.replace("diabetes-dev/", "other/"), bounded)
    assert not allows(policy, "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allows(policy, "sqs:CreateQueue", "*", {"aws:RequestedRegion": REGION})


CI_ROLES = [f"arn:aws:iam::{SETUP.account_id}:role/{name}" for name in ci_roles(SETUP)]
IAM_WRITES = (
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:PassRole",
)


@pytest.mark.parametrize("role", CI_ROLES)
def test_the_deploy_role_cannot_touch_any_ci_role(role: str) -> None:
    """The deploy role once could put an admin policy on itself (`role/diabetes-dev-*` matched the CI roles)."""
    policy = deploy_policy(SETUP)
    for boundary in ("", SETUP.ctx.boundary_arn):
        context = {
            "aws:RequestedRegion": REGION,
            "iam:PermissionsBoundary": boundary,
            "iam:PassedToService": "ecs-tasks.amazonaws.com",
        }
        assert [a for a in IAM_WRITES if allows(policy, a, role, context)] == []


def test_every_role_the_deploy_role_creates_or_changes_carries_the_boundary() -> None:
    policy = deploy_policy(SETUP)
    role = f"arn:aws:iam::{SETUP.account_id}:role{SETUP.ctx.role_path}diabetes-dev-eks-cluster-1a2b3c4"
    managed = {"iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"}
    bounded = {"iam:PermissionsBoundary": SETUP.ctx.boundary_arn, **managed}
    writes = ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary")
    for action in writes:
        assert allows(policy, action, role, bounded), action
        assert not allows(policy, action, role, managed), f"{action} without the boundary"
        other = f"arn:aws:iam::{SETUP.account_id}:policy/AdministratorAccess"
        assert not allows(policy, action, role, {**managed, "iam:PermissionsBoundary": other}), action
    # Removing or rewriting the boundary itself is never allowed.
    assert not allows(policy, "iam:DeleteRolePermissionsBoundary", role, bounded)
    boundary = SETUP.ctx.boundary_arn
    for action in ("iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:SetDefaultPolicyVersion", "iam:CreatePolicy"):
        assert not allows(policy, action, boundary, {}), action


def _satisfying(conditions: dict[str, dict[str, Any]], cluster: str) -> dict[str, str]:
    """A request context meeting a statement's conditions, as the workload's own requests do (a tag a condition only
    requires to exist carries the stack's cluster name: the controller tags what it makes with its cluster)."""
    context: dict[str, str] = {}
    for operator, keys in conditions.items():
        for key, values in keys.items():
            first = str(values[0] if isinstance(values, list) else values)
            if operator == "Null":
                if first == "false":
                    context[key] = cluster
            else:
                context[key] = first
    return context


def test_the_boundary_covers_every_policy_the_programs_give_their_roles(request: pytest.FixtureRequest) -> None:
    """A role bounded too tightly fails at run time: every action of every workload policy, on the resources and with
    the conditions that policy grants it, must be inside the boundary; of the managed policy the EKS cluster role
    carries, every action is inside or dropped with the reason (a Fargate-only cluster has no nodes)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from moto.iam.aws_managed_policies import aws_managed_policies_data

    ctx = AwsContext(ACCOUNT, "aws", REGION, "", "diabetes-dev")
    boundary = workload_boundary_policy(ctx, SETUP.owner)
    owner_tags = {
        f"aws:{kind}Tag/{key}": value for key, value in SETUP.owner.items() for kind in ("Request", "Resource")
    }
    outside = []
    for fixture in ("ecs_full_run", "eks_full_run"):
        for resource in request.getfixturevalue(fixture).recorder.of_type("aws:iam/rolePolicy:RolePolicy"):
            for item in json.loads(resource.inputs["policy"])["Statement"]:
                context = {"aws:RequestedRegion": REGION, **_satisfying(item.get("Condition", {}), "diabetes-dev-eks")}
                for action in item["Action"]:
                    for arn in item["Resource"] if isinstance(item["Resource"], list) else [item["Resource"]]:
                        # The controller's k8s-* load balancers and target groups carry its cluster tag: it may create
                        # them only so tagged (CreateTaggedLoadBalancer, CreateTaggedTargetGroup).
                        if re.search(r":(loadbalancer/\w+|targetgroup)/k8s-", arn):
                            context = {f"aws:ResourceTag/{CLUSTER_TAG}": "diabetes-dev-eks", **context}
                        # The stack's VPC, and the security groups the controller makes with the chart's defaultTags,
                        # carry the stack's Project and Environment tags.
                        if re.search(r":(vpc|security-group)/", arn):
                            context = {**owner_tags, **context}
                        if not allows(boundary, action, arn, context):
                            outside.append(f"{resource.name}: {action} on {arn} {context}")
    assert outside == []
    managed = json.loads(aws_managed_policies_data)["AmazonEKSClusterPolicy"]["Document"]["Statement"]
    cluster_policy = {
        a for item in managed for a in ([item["Action"]] if isinstance(item["Action"], str) else item["Action"])
    }
    assert cluster_policy == set(EKS_CLUSTER_POLICY_ACTIONS)
    kept = cluster_policy - CLUSTER_POLICY_DROPPED.keys()
    assert [a for a in kept if not allows(boundary, a, "*", {"aws:RequestedRegion": REGION})] == []
    assert [a for a in CLUSTER_POLICY_DROPPED if allows(boundary, a, "*", {"aws:RequestedRegion": REGION})] == []


ADMINISTRATOR = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
#: What other workloads of the account own, and what a bounded role once reached with AdministratorAccess attached.
FOREIGN = {
    "s3:GetObject": "arn:aws:s3:::acme-payroll-exports/2026/payroll.csv",
    "s3:ListBucket": "arn:aws:s3:::acme-pulumi-state",
    "ecr:BatchGetImage": "arn:aws:ecr:eu-west-1:{account}:repository/other-team/app",
    "logs:PutLogEvents": "arn:aws:logs:eu-west-1:{account}:log-group:/aws/cloudtrail:log-stream:x",
    "ec2:ModifyInstanceAttribute": "arn:aws:ec2:eu-west-1:{account}:instance/i-0prod",
    "ec2:DeleteVolume": "arn:aws:ec2:eu-west-1:{account}:volume/vol-0prod",
    "ec2:AuthorizeSecurityGroupIngress": "arn:aws:ec2:eu-west-1:{account}:security-group/sg-proddb",
    "elasticloadbalancing:RegisterTargets": "arn:aws:elasticloadbalancing:eu-west-1:{account}:targetgroup/prod-api/1",
    "elasticloadbalancing:DeleteLoadBalancer": (
        "arn:aws:elasticloadbalancing:eu-west-1:{account}:loadbalancer/app/k8s-prod-api/1"
    ),
    "autoscaling:UpdateAutoScalingGroup": (
        "arn:aws:autoscaling:eu-west-1:{account}:autoScalingGroup:x:autoScalingGroupName/prod"
    ),
    "iam:CreateRole": "arn:aws:iam::{account}:role/backdoor",
    "iam:AttachRolePolicy": "arn:aws:iam::{account}:role/diabetes-dev/diabetes-dev-ecs-execution-1a2b3c4",
    "sts:AssumeRole": "arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
    "kms:Decrypt": "arn:aws:kms:eu-west-1:{account}:key/k1",
    "secretsmanager:GetSecretValue": "arn:aws:secretsmanager:eu-west-1:{account}:secret:prod-db",
}


def test_a_role_the_deploy_role_makes_can_do_nothing_outside_the_stack_whatever_it_is_given() -> None:
    """The deploy role may create a bounded role and give it any inline policy: with AdministratorAccess it once got
    the boundary's 99 actions on every resource in every region (every bucket, Pulumi's state included). Now the
    boundary holds it to the stack's own resources in the stack's region."""
    account = SETUP.account_id
    boundary = workload_boundary_policy(SETUP.ctx, SETUP.owner)
    here = {"aws:RequestedRegion": REGION}
    reached = [
        f"{action} on {arn}"
        for action, arn in FOREIGN.items()
        if allows_bounded(ADMINISTRATOR, boundary, action, arn.format(account=account), here)
    ]
    assert reached == []
    # Another region: not even the stack's own images.
    own_image = f"arn:aws:ecr:{REGION}:{account}:repository/diabetes-dev/api"
    assert allows_bounded(ADMINISTRATOR, boundary, "ecr:BatchGetImage", own_image, here)
    assert not allows_bounded(
        ADMINISTRATOR, boundary, "ecr:BatchGetImage", own_image, {"aws:RequestedRegion": "us-west-2"}
    )
    own_model = "arn:aws:s3:::diabetes-dev-models-11dbd40/models/abc/model.txt"
    assert allows_bounded(ADMINISTRATOR, boundary, "s3:GetObject", own_model, here)
    # The deploy role cannot make such a role under another name, nor attach an AWS managed policy but the cluster's.
    policy = deploy_policy(SETUP)
    bounded = {**here, "iam:PermissionsBoundary": SETUP.ctx.boundary_arn}
    assert not allows(policy, "iam:CreateRole", f"arn:aws:iam::{account}:role/diabetes-dev/backdoor", bounded)
    cluster_role = f"arn:aws:iam::{account}:role/diabetes-dev/diabetes-dev-eks-cluster-2e31f3a"
    admin = {**bounded, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}
    assert not allows(policy, "iam:AttachRolePolicy", cluster_role, admin)
    eks = {**bounded, "iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"}
    assert allows(policy, "iam:AttachRolePolicy", cluster_role, eks)
    assert not allows(policy, "iam:AttachRolePolicy", cluster_role.replace("eks-cluster", "ecs-execution"), eks)
    assert not allows(policy, "iam:UpdateAssumeRolePolicy", cluster_role, bounded)


def test_a_bounded_role_cannot_tag_its_way_into_another_workloads_groups_and_load_balancers() -> None:
    """Review 2, N1: the boundary let a bounded role (any inline policy) tag an existing security group, load balancer
    or target group of someone else with this cluster's tag, then open, delete or retarget it. Tags are written only
    while creating, or on what already carries this cluster's value and (security groups) the stack's tags."""
    account, here = SETUP.account_id, {"aws:RequestedRegion": REGION}
    boundary = workload_boundary_policy(SETUP.ctx, SETUP.owner)
    cluster = {CLUSTER_TAG: f"{SETUP.name}-eks"}
    ours = {**cluster, **SETUP.owner}

    def can(action: str, arn: str, **tags: dict[str, str]) -> bool:
        context = {f"aws:{kind}Tag/{key}": value for kind, given in tags.items() for key, value in given.items()}
        return allows_bounded(ADMINISTRATOR, boundary, action, arn, {**here, **context})

    group = f"arn:aws:ec2:{REGION}:{account}:security-group/sg-0payments-db"
    elb = f"arn:aws:elasticloadbalancing:{REGION}:{account}:"
    balancer, target_group = f"{elb}loadbalancer/app/k8s-prod-api-abc/1", f"{elb}targetgroup/k8s-prod-api-abc/1"
    prod = {CLUSTER_TAG: "diabetes-prod-eks", "Project": "diabetes", "Environment": "prod"}
    for existing in ({}, prod, {"Team": "payments"}):  # untagged, another cluster's, another team's
        for arn in (balancer, target_group):
            assert not can("elasticloadbalancing:AddTags", arn, Request=cluster, Resource=existing), (arn, existing)
    # A group with this cluster's tag but not the stack's is not the controller's either (its groups carry both).
    for existing in ({}, prod, {"Team": "payments"}, cluster):
        assert not can("ec2:CreateTags", group, Request=ours, Resource=existing), existing
        for action in SG_WRITES:
            assert not can(action, group, Resource=existing), (action, existing)
    for action in ("DeleteLoadBalancer", "SetSecurityGroups", "ModifyLoadBalancerAttributes"):
        assert not can(f"elasticloadbalancing:{action}", balancer, Resource=prod), action
    for action in ("DeleteTargetGroup", "RegisterTargets", "ModifyTargetGroup"):
        assert not can(f"elasticloadbalancing:{action}", target_group, Resource=prod), action
    # A security group only in the stack's VPC (the VPC's id is unknown when the boundary is made; its tags are not).
    vpc = f"arn:aws:ec2:{REGION}:{account}:vpc/vpc-0other"
    assert not can("ec2:CreateSecurityGroup", vpc, Resource={"Project": "shop"})
    assert can("ec2:CreateSecurityGroup", vpc, Resource=SETUP.owner)
    # What the controller itself does still passes: tag while creating, write what carries this cluster's and the
    # stack's tags, and on load balancers this cluster's value.
    creating = {**here, "ec2:CreateAction": "CreateSecurityGroup"}
    new_tags = {f"aws:RequestTag/{key}": value for key, value in ours.items()}
    assert allows_bounded(ADMINISTRATOR, boundary, "ec2:CreateTags", group, {**creating, **new_tags})
    for action in SG_WRITES:
        assert can(action, group, Resource=ours), action
    created = {**here, f"aws:RequestTag/{CLUSTER_TAG}": cluster[CLUSTER_TAG]}
    for action, kind in (("CreateLoadBalancer", "CreateLoadBalancer"), ("CreateTargetGroup", "CreateTargetGroup")):
        arn = balancer if kind == "CreateLoadBalancer" else target_group
        assert allows_bounded(ADMINISTRATOR, boundary, f"elasticloadbalancing:{action}", arn, created)
        tagging = {**created, "elasticloadbalancing:CreateAction": kind}
        assert allows_bounded(ADMINISTRATOR, boundary, "elasticloadbalancing:AddTags", arn, tagging)
        assert can("elasticloadbalancing:RegisterTargets", target_group, Resource=cluster)


def test_every_stack_role_is_replaced_rather_than_retrusted(request: pytest.FixtureRequest) -> None:
    """Without iam:UpdateAssumeRolePolicy a changed trust policy must replace the role; every role asks for it."""
    roles = [
        r
        for f in ("ecs_full_run", "eks_full_run")
        for r in request.getfixturevalue(f).recorder.of_type("aws:iam/role:Role")
    ]
    assert roles
    assert [r.name for r in roles if "assumeRolePolicy" not in r.replace_on_changes] == []
    kinds = {r.name.removeprefix("diabetes-dev-") for r in roles}
    assert kinds == STACK_ROLES.keys(), "the deploy role's role names and the programs' roles differ"


def test_a_role_outside_the_stacks_list_is_refused_before_anything_is_made() -> None:
    import pulumi

    ctx = AwsContext(ACCOUNT, "aws", REGION, "", "diabetes-dev")
    with pytest.raises(ValueError, match="not one of the stack's roles"):
        stack_role("diabetes-dev-backdoor", ctx, "{}", {}, pulumi.ResourceOptions())


def test_every_managed_policy_fits_iams_size_limit() -> None:
    """A managed policy holds at most 6,144 characters (whitespace not counted), a role at most 10 of them: the
    longest names a stack may have, in a long region."""
    import re

    longest = CiSetup(
        "acme-corporation/diabetes-service",
        "stagingenv",
        ACCOUNT,
        "ap-southeast-2",
        "s" * 63,
        "k" * 36,
        project="diabetess",
    )
    assert len(longest.name) == 20
    size = len(re.sub(r"\s", "", workload_boundary_policy(longest.ctx, longest.owner)))
    assert size <= 6144, size
    for name, spec in ci_roles(longest).items():
        documents = spec["permissionPolicies"]
        assert 1 <= len(documents) <= 10, name
        assert all(len(re.sub(r"\s", "", json.dumps(d))) <= 6144 for d in documents), name


@pytest.mark.parametrize("role", ["deploy", "preview"])
def test_the_lookups_pulumi_eks_makes_at_preview_and_update_are_allowed(role: str) -> None:
    """pulumi-eks reads route tables (which of the Fargate subnets are private) and CoreDNS's add-on version inside
    its component, at every preview too: without them the CI preview of the EKS stack fails."""
    policy = {"deploy": deploy_policy, "preview": preview_policy}[role](SETUP)
    denied = [
        i.action for i in eks_component.INVOKES if not allows(policy, i.action, "*", {"aws:RequestedRegion": REGION})
    ]
    assert denied == []


def test_without_the_programs_roles_pulumi_eks_would_make_roles_the_deploy_role_refuses(eks_full_run: Any) -> None:
    """pulumi-eks's own roles have no path and no boundary: the cluster and pod roles must be passed in."""
    cluster = eks_full_run.recorder.one(eks_component.TYPE)
    inputs = {key: value for key, value in cluster.inputs.items() if key != "serviceRole"}
    (role,) = [c for c in eks_component.children(cluster.name, inputs) if c.typ == "aws:iam/role:Role"]
    arn = f"arn:aws:iam::{SETUP.account_id}:role/{role.name}-1a2b3c4"
    assert not allows(deploy_policy(SETUP), "iam:CreateRole", arn, {"aws:RequestedRegion": REGION})


@pytest.mark.parametrize("job", ["deploy", "preview"])
def test_every_data_source_the_programs_read_is_allowed_to_the_role_that_runs_them(job: str) -> None:
    """Each program's own look-ups run at preview (preview role) and at update (deploy role). The EKS program's
    session-context look-up calls iam:GetRole on the caller's own role: the deploy role lacked it, so every CI EKS
    deploy failed at its first step."""
    setup = SETUP
    caller = f"arn:aws:iam::{setup.account_id}:role/{setup.role_name(job)}"
    policy = {"deploy": deploy_policy, "preview": preview_policy}[job](setup)
    root = run_program(root_build, settings_for(SharedSettings), deployer=caller, account=setup.account_id)
    runs = [root] + [
        run_program(
            build,
            settings_for(model),
            root.outputs,
            deployer=caller,
            preview=job == "preview",
            account=setup.account_id,
        )
        for build, model in ((ecs_build, EcsStackSettings), (eks_build, EksStackSettings))
    ]
    tokens = {token for run in runs for token, _ in run.recorder.invokes}
    assert "aws:iam/getSessionContext:getSessionContext" in tokens
    assert tokens - INVOKE_ACTIONS.keys() == set(), "a data source with no listed calls"
    fields = {"caller": caller}
    denied = [
        f"{token}: {problem}"
        for token in sorted(tokens)
        for need in INVOKE_ACTIONS[token]
        if (problem := _denied(policy, need, fields))
    ]
    assert denied == []


def test_every_type_whose_tags_the_provider_adds_can_also_have_them_removed() -> None:
    """The provider's tags_gen.go updateTags calls TagResource for new keys and UntagResource for removed ones: the
    scalable target listed only the first, so removing a tag key from the stack would fail the ECS deploy."""
    untag = {"ecs": "UntagResource", "elasticloadbalancing": "RemoveTags", "ec2": "DeleteTags", "iam": None}
    missing = []
    for typ, needs in PROVIDER_ACTIONS.items():
        actions = {need.action for need in needs}
        for action in actions:
            prefix, name = action.split(":")
            if name != "TagResource":
                continue
            removal = untag.get(prefix, "UntagResource")
            if removal and f"{prefix}:{removal}" not in actions:
                missing.append(f"{typ}: {prefix}:{removal}")
    assert missing == []


#: Another workload's resources in the same account and region (another environment, another team).
ELSEWHERE = {
    "elasticloadbalancing:ModifyListener": "elasticloadbalancing:{region}:{account}:listener/app/prod-api/1/2",
    "elasticloadbalancing:DeleteLoadBalancer": "elasticloadbalancing:{region}:{account}:loadbalancer/app/prod-api/1",
    "elasticloadbalancing:DeleteTargetGroup": "elasticloadbalancing:{region}:{account}:targetgroup/payments/1",
    "elasticloadbalancing:CreateRule": "elasticloadbalancing:{region}:{account}:listener/app/prod-api/1/2",
    "ecs:UpdateService": "ecs:{region}:{account}:service/prod/payments",
    "ecs:DeleteService": "ecs:{region}:{account}:service/diabetes-prod-ecs/diabetes-prod-ecs-api-1a2b",
    "ecs:DeleteCluster": "ecs:{region}:{account}:cluster/prod",
    "ecs:RegisterTaskDefinition": "ecs:{region}:{account}:task-definition/payments:7",
    "ec2:AuthorizeSecurityGroupIngress": "ec2:{region}:{account}:security-group/sg-proddb",
    "ec2:ReplaceRoute": "ec2:{region}:{account}:route-table/rtb-prod",
    "ec2:DeleteVpc": "ec2:{region}:{account}:vpc/vpc-prod",
    "ec2:CreateSubnet": "ec2:{region}:{account}:vpc/vpc-prod",
    "ec2:CreateTags": "ec2:{region}:{account}:security-group/sg-proddb",
}


@pytest.mark.parametrize("tags", [{}, {"Project": "payments", "Environment": "prod"}], ids=["untagged", "other"])
def test_the_deploy_role_cannot_touch_another_workloads_network_balancers_or_services(tags: dict[str, str]) -> None:
    """The deploy role's EC2, ELB and ECS writes were limited by region only: the dev role could delete prod's load
    balancer, update a payments service, open any security group or replace any route. ELB and ECS are now held to
    the stack's names, EC2 to the stack's tags (tagging another's resource is refused too, whatever the request's
    tags say)."""
    policy = deploy_policy(SETUP)
    ours = {f"aws:RequestTag/{key}": value for key, value in {"Project": "diabetes", "Environment": "dev"}.items()}
    context = {
        "aws:RequestedRegion": REGION,
        **{f"aws:ResourceTag/{key}": value for key, value in tags.items()},
        **ours,  # a request may carry the stack's tags: they must not open another's resource
    }
    reached = [
        f"{action} on {arn}"
        for action, arn in ELSEWHERE.items()
        if allows(policy, action, f"arn:aws:{arn.format(region=REGION, account=SETUP.account_id)}", context)
    ]
    assert reached == []
    # The stack's own, so named and tagged, stay within reach.
    own = {"aws:RequestedRegion": REGION, "aws:ResourceTag/Project": "diabetes", "aws:ResourceTag/Environment": "dev"}
    assert allows(
        policy, "ec2:AuthorizeSecurityGroupIngress", f"arn:aws:ec2:{REGION}:{SETUP.account_id}:security-group/sg-1", own
    )
    lb = f"arn:aws:elasticloadbalancing:{REGION}:{SETUP.account_id}:loadbalancer/app/diabetes-dev-lb-1a2b3c4/5"
    assert allows(policy, "elasticloadbalancing:DeleteLoadBalancer", lb, own)


@pytest.mark.parametrize(
    ("namespace", "dimension"),
    [("dynamodb", "dynamodb:table:WriteCapacityUnits"), ("rds", "rds:cluster:ReadReplicaCount"), ("ecs", "x:y:z")],
)
def test_the_deploy_role_scales_only_ecs_services(namespace: str, dimension: str) -> None:
    """Review 2, N3: Application Auto Scaling's writes were granted on `*`: the dev deploy role could delete the
    scaling policies or deregister the targets of any DynamoDB table or Aurora cluster in the region. They are held to
    ECS services' desired count now (what is left, any ECS service's, is in docs/deploy.md's "What stays possible")."""
    policy = deploy_policy(SETUP)
    target = f"arn:aws:application-autoscaling:{REGION}:{SETUP.account_id}:scalable-target/0a1b2c3d"
    here = {"aws:RequestedRegion": REGION}
    other = {
        **here,
        "application-autoscaling:service-namespace": namespace,
        "application-autoscaling:scalable-dimension": dimension,
    }
    ecs = {**here, **ECS_SCALING}
    for action in ("DeleteScalingPolicy", "DeregisterScalableTarget", "PutScalingPolicy", "RegisterScalableTarget"):
        assert not allows(policy, f"application-autoscaling:{action}", target, other), action
        assert allows(policy, f"application-autoscaling:{action}", target, ecs), action


def test_the_publish_role_can_read_enhanced_scanning_findings() -> None:
    """Review 2, open question: under enhanced scanning ECR reads the findings from Amazon Inspector with the caller's
    rights (ECR user guide, "IAM permissions required for enhanced scanning"): without inspector2:ListFindings the
    publish job's scan gate fails on the first push. Reads only, this region only; never switching scanning off."""
    publish = publish_policy(SETUP)
    here = {"aws:RequestedRegion": REGION}
    for action in ("inspector2:ListFindings", "inspector2:ListCoverage"):
        assert allows(publish, action, "*", here), action
        assert not allows(publish, action, "*", {"aws:RequestedRegion": "us-east-1"}), action
    for action in ("inspector2:Disable", "inspector2:Enable", "inspector2:UpdateConfiguration"):
        assert not allows(publish, action, "*", here), action


def test_service_connect_needs_no_cloud_map_service_calls_of_the_deploy_role() -> None:
    """Review 2, open question, settled from AWS's managed policy (a guard, not a fix: the role was right): ECS makes
    the Service Connect services in the namespace with its service-linked role, whose policy grants the Cloud Map
    service calls for what ECS tags AmazonECSManaged; the deploy role creates that role and the namespace only."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from moto.iam.aws_managed_policies import aws_managed_policies_data

    document = json.loads(aws_managed_policies_data)["AmazonECSServiceRolePolicy"]["Document"]
    (creates,) = [s for s in document["Statement"] if "servicediscovery:CreateService" in s["Action"]]
    assert creates["Condition"] == {"ForAllValues:StringEquals": {"aws:TagKeys": ["AmazonECSManaged"]}}
    linked = json.dumps(document)
    assert allows(linked, "servicediscovery:DeleteService", "*", {"aws:ResourceTag/AmazonECSManaged": "true"})
    deploy = deploy_policy(SETUP)
    ecs_role = f"arn:aws:iam::{SETUP.account_id}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    assert allows(deploy, "iam:CreateServiceLinkedRole", ecs_role, {"iam:AWSServiceName": "ecs.amazonaws.com"})
    namespace = f"arn:aws:servicediscovery:{REGION}:{SETUP.account_id}:namespace/ns-1"
    assert allows(deploy, "servicediscovery:CreateHttpNamespace", namespace, {"aws:RequestedRegion": REGION})
    assert not allows(deploy, "servicediscovery:CreateService", "*", {"aws:RequestedRegion": REGION})


def _state_keys(stack: str) -> list[str]:
    """Objects Pulumi's S3 backend keeps for one stack of each project: checkpoint, history, backup, lock."""
    bucket = f"arn:aws:s3:::{SETUP.state_bucket}"
    return [
        f"{bucket}/.pulumi/stacks/diabetes/{stack}.json",
        f"{bucket}/.pulumi/history/diabetes-ecs/{stack}/{stack}-1733500000000000000.history.json",
        f"{bucket}/.pulumi/backups/diabetes-eks/{stack}/{stack}.1733500000000000000.json",
        f"{bucket}/.pulumi/locks/organization/diabetes-eks/{stack}/0f6b1a2c.json",
    ]


@pytest.mark.parametrize("other", ["prod", "trial"])
def test_each_ci_role_reads_and_writes_only_its_own_environments_state(other: str) -> None:
    """The state is code (a provider's kubeconfig `exec` runs at the next destroy): the dev deploy role could write
    every stack's state (`.pulumi/*`), prod's and trial's included where environments share a bucket, and the dev
    preview role could read them. Each role now has its environment's objects only; the preview role writes nothing
    (review 2, N5: it could delete the lock of an update in progress; Pulumi's DIY backend takes no lock to preview)."""
    here = {"aws:RequestedRegion": REGION}
    deploy, preview = deploy_policy(SETUP), preview_policy(SETUP)
    *own_state, own_lock = _state_keys("dev")
    for key in [*own_state, own_lock]:
        assert allows(deploy, "s3:PutObject", key, here), key
        assert allows(preview, "s3:GetObject", key, here), key
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not allows(preview, action, own_lock, here), action
    assert [key for key in own_state if allows(preview, "s3:PutObject", key, here)] == []
    reached = [
        f"{role} {action} {key}"
        for key in _state_keys(other)
        for role, policy in (("deploy", deploy), ("preview", preview))
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
        if allows(policy, action, key, here)
    ]
    assert reached == []
