"""CrossGuard rules: passing and failing inputs for each, then applied to all the program creates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.policy import PolicyCustomTimeouts

from stacks.policy.rules import RULES, policies, violations
from tests.stacks.harness import Run

LB_TAGS = {"diabetes:role": "load-balancer"}
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
ECR = "aws:ecr/repository:Repository"
ECS_SERVICE = "aws:ecs/service:Service"
SUBNET = "aws:ec2/subnet:Subnet"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
BOUNDARY = "arn:aws:iam::123456789012:policy/diabetes-dev-workload-boundary"

GOOD_CONTAINER = {"name": "api", "user": "10001:10001", "readonlyRootFilesystem": True, "privileged": False}
GOOD_SECURITY = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}


def _task(**overrides: Any) -> dict[str, Any]:
    return {"containerDefinitions": json.dumps([{**GOOD_CONTAINER, **overrides}])}


def _pod(security: dict[str, Any], pod_security: dict[str, Any] | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": "api", "securityContext": security}]}
    if pod_security is not None:
        pod["securityContext"] = pod_security
    return {"spec": {"template": {"spec": pod}}}


def _iam(*actions: str, key: str = "Action") -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", key: list(actions), "Resource": "*"}]}
    )


PASSING = [
    (
        "no-public-ingress",
        SG_INGRESS,
        {"cidrIpv4": "0.0.0.0/0", "fromPort": 443, "toPort": 443, "tags": LB_TAGS},
    ),
    (
        "no-public-ingress",
        SG_INGRESS,
        {"referencedSecurityGroupId": "sg-1", "fromPort": 8000, "toPort": 8000},
    ),
    ("no-public-ingress", SG_INGRESS, {"cidrIpv4": "10.40.0.0/16", "fromPort": 22, "toPort": 22}),
    (
        "no-public-ingress",
        SG,
        {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 80, "toPort": 80}], "tags": LB_TAGS},
    ),
    (
        "no-public-ingress",
        SG_RULE,
        {"type": "egress", "cidrBlocks": ["0.0.0.0/0"], "fromPort": 0, "toPort": 0},
    ),
    (
        "ecr-scan-immutable",
        ECR,
        {"imageScanningConfiguration": {"scanOnPush": True}, "imageTagMutability": "IMMUTABLE"},
    ),
    ("no-public-ips", ECS_SERVICE, {"networkConfiguration": {"assignPublicIp": False, "subnets": ["s"]}}),
    ("no-public-ips", SUBNET, {"mapPublicIpOnLaunch": False}),
    ("containers-hardened", TASK, _task()),
    ("containers-hardened", DEPLOYMENT, _pod(GOOD_SECURITY)),
    (
        "containers-hardened",
        DEPLOYMENT,
        _pod({**GOOD_SECURITY, "runAsNonRoot": None}, {"runAsNonRoot": True}),
    ),
    ("log-retention", LOG_GROUP, {"retentionInDays": 30}),
    ("iam-explicit-actions", ROLE_POLICY, {"policy": _iam("s3:GetObject", "ecr:GetAuthorizationToken")}),
    ("iam-role-boundary", ROLE, {"path": "/diabetes-dev/", "permissionsBoundary": BOUNDARY}),
]

FAILING = [
    ("iam-role-boundary", ROLE, {"path": "/diabetes-dev/"}, "must set permissionsBoundary"),
    ("iam-role-boundary", ROLE, {"permissionsBoundary": BOUNDARY}, "must set path"),
    (
        "no-public-ingress",
        SG_INGRESS,
        {"cidrIpv4": "0.0.0.0/0", "fromPort": 22, "toPort": 22, "tags": LB_TAGS},
        "22-22",
    ),
    (
        "no-public-ingress",
        SG_INGRESS,
        {"cidrIpv4": "0.0.0.0/0", "fromPort": 443, "toPort": 443},
        "load balancer",
    ),
    (
        "no-public-ingress",
        SG_INGRESS,
        {"cidrIpv6": "::/0", "fromPort": 80, "toPort": 443, "tags": LB_TAGS},
        "80-443",
    ),
    (
        "no-public-ingress",
        SG,
        {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 0, "toPort": 65535}]},
        "inline",
    ),
    (
        "no-public-ingress",
        SG_RULE,
        {"type": "ingress", "cidrBlocks": ["0.0.0.0/0"], "fromPort": 443, "toPort": 443},
        "rule",
    ),
    (
        "ecr-scan-immutable",
        ECR,
        {"imageScanningConfiguration": {"scanOnPush": False}, "imageTagMutability": "IMMUTABLE"},
        "scanOnPush",
    ),
    (
        "ecr-scan-immutable",
        ECR,
        {"imageScanningConfiguration": {"scanOnPush": True}, "imageTagMutability": "MUTABLE"},
        "IMMUTABLE",
    ),
    ("no-public-ips", ECS_SERVICE, {"networkConfiguration": {"assignPublicIp": True}}, "assignPublicIp"),
    ("no-public-ips", SUBNET, {"mapPublicIpOnLaunch": True}, "mapPublicIpOnLaunch"),
    ("containers-hardened", TASK, _task(user="root"), "non-root"),
    ("containers-hardened", TASK, _task(user="0:0"), "non-root"),
    (
        "containers-hardened",
        TASK,
        {"containerDefinitions": json.dumps([{"name": "x", "readonlyRootFilesystem": True}])},
        "non-root",
    ),
    ("containers-hardened", TASK, _task(readonlyRootFilesystem=False), "readonlyRootFilesystem"),
    ("containers-hardened", TASK, _task(privileged=True), "privileged"),
    ("containers-hardened", DEPLOYMENT, _pod({**GOOD_SECURITY, "runAsNonRoot": False}), "runAsNonRoot"),
    ("containers-hardened", DEPLOYMENT, _pod({**GOOD_SECURITY, "runAsUser": 0}), "runAsNonRoot"),
    (
        "containers-hardened",
        DEPLOYMENT,
        _pod({**GOOD_SECURITY, "readOnlyRootFilesystem": False}),
        "readOnlyRootFilesystem",
    ),
    (
        "containers-hardened",
        DEPLOYMENT,
        _pod({"runAsNonRoot": True, "readOnlyRootFilesystem": True}),
        "allowPrivilegeEscalation",
    ),
    ("log-retention", LOG_GROUP, {"name": "/ecs/x"}, "retentionInDays"),
    ("log-retention", LOG_GROUP, {"retentionInDays": 0}, "retentionInDays"),
    ("iam-explicit-actions", ROLE_POLICY, {"policy": _iam("s3:*")}, "s3:*"),
    ("iam-explicit-actions", ROLE_POLICY, {"policy": _iam("*")}, "'*'"),
    ("iam-explicit-actions", ROLE_POLICY, {"policy": _iam("ec2:Describe*")}, "ec2:Describe*"),
    ("iam-explicit-actions", ROLE_POLICY, {"policy": _iam("iam:PassRole", key="NotAction")}, "NotAction"),
    ("iam-explicit-actions", ROLE, {"inlinePolicies": [{"name": "p", "policy": _iam("s3:*")}]}, "s3:*"),
]


@pytest.mark.parametrize(("rule", "typ", "props"), PASSING, ids=[f"{r}-{i}" for i, (r, *_) in enumerate(PASSING)])
def test_rule_accepts_compliant_resources(rule: str, typ: str, props: dict[str, Any]) -> None:
    assert [v for v in violations(typ, props) if v[0] == rule] == []


@pytest.mark.parametrize(
    ("rule", "typ", "props", "fragment"), FAILING, ids=[f"{r}-{i}" for i, (r, *_) in enumerate(FAILING)]
)
def test_rule_reports_violations(rule: str, typ: str, props: dict[str, Any], fragment: str) -> None:
    found = [message for name, message in violations(typ, props) if name == rule]
    assert found, f"{rule} accepted {props}"
    assert any(fragment in message for message in found), found


def test_every_rule_has_passing_and_failing_cases() -> None:
    names = {rule.name for rule in RULES}
    assert {case[0] for case in PASSING} == names
    assert {case[0] for case in FAILING} == names


def test_policy_pack_wrappers_are_mandatory_and_report_through_crossguard() -> None:
    wrapped = {policy.name: policy for policy in policies()}
    assert wrapped.keys() == {rule.name for rule in RULES}
    assert all(policy.enforcement_level == EnforcementLevel.MANDATORY for policy in wrapped.values())
    reported: list[str] = []
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    args = ResourceValidationArgs(LOG_GROUP, {"name": "/x"}, "urn:pulumi:dev::diabetes::lg", "lg", options, None)
    wrapped["log-retention"].validate(args, lambda message, urn: reported.append(message))
    assert reported == ["log group must set retentionInDays (e.g. 30)"]


@pytest.mark.parametrize("fixture", ["root_run", "ecs_full_run", "eks_full_run", "ecs_minimal_run"])
def test_program_resources_pass_every_rule(fixture: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(fixture)
    found = [(r.typ, r.name, v) for r in run.recorder.resources for v in violations(r.typ, r.inputs)]
    assert found == []
    checked = {r.typ for r in run.recorder.resources}
    assert checked & {"aws:ecr/repository:Repository", "aws:cloudwatch/logGroup:LogGroup"}


def test_rules_catch_a_regression_in_the_program_output(ecs_full_run: Run) -> None:
    task = ecs_full_run.recorder.one("aws:ecs/taskDefinition:TaskDefinition", "-api")
    containers = json.loads(task.inputs["containerDefinitions"])
    containers[0]["readonlyRootFilesystem"] = False
    service = ecs_full_run.recorder.one("aws:ecs/service:Service", "-ecs-api").inputs
    exposed = {**service, "networkConfiguration": {**service["networkConfiguration"], "assignPublicIp": True}}
    assert [name for name, _ in violations(TASK, {**task.inputs, "containerDefinitions": json.dumps(containers)})] == [
        "containers-hardened"
    ]
    assert [name for name, _ in violations(ECS_SERVICE, exposed)] == ["no-public-ips"]


def test_the_public_ip_exception_reaches_the_rule_through_crossguards_config() -> None:
    """The per-stack exception comes from the policy-pack config (`--policy-pack-config`), with a schema and a
    default that keeps it off."""
    wrapped = {policy.name: policy for policy in policies()}["no-public-ips"]
    assert wrapped.config_schema is not None
    assert wrapped.config_schema.properties["allowPublicTaskIps"] == {"type": "boolean", "default": False}
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    props = {"networkConfiguration": {"assignPublicIp": True}}
    for config, expected in ((None, 1), ({"allowPublicTaskIps": False}, 1), ({"allowPublicTaskIps": True}, 0)):
        reported: list[str] = []
        urn = "urn:pulumi:trial::diabetes-ecs::svc"
        args = ResourceValidationArgs(ECS_SERVICE, props, urn, "svc", options, None, config)
        wrapped.validate(args, lambda message, urn, found=reported: found.append(message))
        assert len(reported) == expected, config
