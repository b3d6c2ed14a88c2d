"""Every IAM policy document the programs and the CI bootstrap make, linted with parliament.

No error is allowed; each accepted finding is listed below with the reason it is accepted. The program's own
identity policies are also held to the stricter check of `iam_lint.resource_type_mismatches`.
"""

from __future__ import annotations

import json

import pytest

from stacks.aws_context import AwsContext
from stacks.eks.lb_controller_policy import DROPPED, lb_controller_policy
from stacks.ops.ci_roles import EC2_CREATES, CiSetup, ci_roles
from tests.stacks.harness import Run
from tests.stacks.iam_lint import findings, resource_type_mismatches

RUNS = ["root_run", "ecs_full_run", "eks_full_run"]
DOCUMENT_KEYS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
}
#: Actions newer than parliament's copy of the service authorization reference (checked by hand against AWS's).
NEWER_THAN_PARLIAMENT = {"elasticloadbalancing:ModifyIpPools"}
#: Findings accepted, by issue, with the reason.
ACCEPTED = {
    "MALFORMED": "trust policies have no Resource by design (parliament lints them as identity policies)",
    "UNKNOWN_FEDERATION_SOURCE": "an EKS cluster's OIDC provider is per cluster; parliament knows fixed providers only",
    "UNKNOWN_ACTION": f"{sorted(NEWER_THAN_PARLIAMENT)} are newer than parliament's database",
    "UNKNOWN_CONDITION_FOR_ACTION": "elasticloadbalancing:CreateAction on AddTags: documented by AWS, used upstream",
}
#: The CI deploy role creates what the programs declare; ids of new VPC, ELB, ECS resources are unknown before.
CI_ACCEPTED = {
    "RESOURCE_STAR": "create/delete of resources whose ids are unknown beforehand; held to the region by condition",
    "RESOURCE_POLICY_PRIVILEGE_ESCALATION": "the deploy role writes the buckets' policies the root declares",
}
#: Parliament wants every resource type an action requires in one statement. An EC2 create of the deploy role grants
#: the type it makes (with the stack's tags in the request) in one statement and the existing resources it names (the
#: VPC of an endpoint, the group of a rule: the stack's tags on them) in another, so that a request's tags can never
#: open another workload's VPC or security group; IAM evaluates each resource against every statement.
SPLIT_CREATES = {action for actions in EC2_CREATES.values() for action in actions}
SETUP = CiSetup("acme/diabetes", "dev", "111122223333", "eu-west-1", "acme-pulumi-state", "1234abcd-0000")


def _documents(run: Run) -> list[tuple[str, str, str]]:
    return [
        (resource.typ, resource.name, resource.inputs[key])
        for resource in run.recorder.resources
        if (key := DOCUMENT_KEYS.get(resource.typ)) and resource.inputs.get(key)
    ]


@pytest.mark.parametrize("fixture", RUNS)
def test_program_policies_pass_parliament(fixture: str, request: pytest.FixtureRequest) -> None:
    documents = _documents(request.getfixturevalue(fixture))
    assert documents
    for typ, name, document in documents:
        unexpected = {finding for finding in findings(document) if finding[0] not in ACCEPTED}
        assert not unexpected, f"{typ} {name}: {unexpected}"
        if typ == "aws:iam/role:Role":
            continue
        if typ == "aws:iam/rolePolicy:RolePolicy":
            statements = json.loads(document)["Statement"]
            known = [s | {"Action": [a for a in s["Action"] if a not in NEWER_THAN_PARLIAMENT]} for s in statements]
            assert resource_type_mismatches(json.dumps({"Statement": known})) == [], name


def test_every_lb_controller_action_is_granted_on_its_resource_type() -> None:
    ctx = AwsContext("123456789012", "aws", "eu-west-1", "", "diabetes-dev")
    document = json.loads(lb_controller_policy(ctx, "vpc-0abc", "diabetes-dev-eks"))
    known = [s | {"Action": [a for a in s["Action"] if a not in NEWER_THAN_PARLIAMENT]} for s in document["Statement"]]
    assert resource_type_mismatches(json.dumps({"Statement": known})) == []


def test_the_strict_check_catches_an_action_on_the_wrong_resource_type() -> None:
    """The fault this replaces: ModifyListenerAttributes granted on load balancer and target group ARNs."""
    wrong = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:DeleteTargetGroup"],
                "Resource": [
                    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/k8s-*/*",
                    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/k8s-*/*",
                ],
            }
        ]
    }
    problems = resource_type_mismatches(json.dumps(wrong))
    assert any(p.startswith("elasticloadbalancing:ModifyListenerAttributes on") for p in problems), problems
    assert any(p.startswith("elasticloadbalancing:DeleteTargetGroup on") and "loadbalancer" in p for p in problems)


def test_every_upstream_action_is_granted_or_dropped_with_a_reason() -> None:
    ctx = AwsContext("123456789012", "aws", "eu-west-1", "", "diabetes-dev")
    granted = {a for s in json.loads(lb_controller_policy(ctx, "vpc-0abc", "c"))["Statement"] for a in s["Action"]}
    # The action list of docs/install/iam_policy.json at v3.5.0 (80 actions, as at v2.13.4).
    assert len(granted | DROPPED.keys()) == 80
    assert not granted & DROPPED.keys()


@pytest.mark.parametrize("role", sorted(ci_roles(SETUP)))
def test_ci_role_policies_pass_parliament(role: str) -> None:
    spec = ci_roles(SETUP)[role]
    assert spec["maxSessionDuration"] <= 3600
    trust = {f for f in findings(json.dumps(spec["trustPolicy"])) if f[0] not in ACCEPTED}
    assert not trust, trust
    for document in spec["permissionPolicies"]:
        permissions = {f for f in findings(json.dumps(document)) if f[0] not in CI_ACCEPTED and not _split_create(f)}
        assert not permissions, permissions


def _split_create(finding: tuple[str, str]) -> bool:
    issue, detail = finding
    return issue == "RESOURCE_MISMATCH" and {item["action"] for item in json.loads(detail)} <= SPLIT_CREATES
