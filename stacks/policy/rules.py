"""CrossGuard rules every stack of this project must pass (all mandatory).

Each rule is a plain function over a resource's type and input properties (camelCase, as the engine sends
them), so it can be tested directly and applied to the resources the program creates under mocks. The
PolicyPack in `__main__.py` wraps the same functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

PUBLIC_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
PUBLIC_PORTS = frozenset({80, 443})
#: Tag marking the load balancer's security group, the only one allowed to face the internet.
LB_ROLE_TAG = ("diabetes:role", "load-balancer")
ROOT_USERS = frozenset({"root", "0"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")

Props = Mapping[str, Any]
#: A rule: resource type, its input properties and the rule's configuration (policy-pack config) -> violations.
Check = Callable[[str, Props, Mapping[str, Any]], Iterator[str]]
NO_CONFIG: Mapping[str, Any] = {}


def _is_lb_group(props: Props) -> bool:
    tags = props.get("tags") or {}
    return bool(tags.get(LB_ROLE_TAG[0]) == LB_ROLE_TAG[1])


def _public_web(from_port: Any, to_port: Any) -> bool:
    return from_port == to_port and from_port in PUBLIC_PORTS


def check_public_ingress(resource_type: str, props: Props, config: Mapping[str, Any] = NO_CONFIG) -> Iterator[str]:
    """Ingress from 0.0.0.0/0 or ::/0 only on 80/443, only on the load balancer's tagged security group."""
    rules: list[tuple[set[str], Any, Any, bool, str]] = []
    if resource_type == "aws:ec2/securityGroup:SecurityGroup":
        for rule in props.get("ingress") or []:
            cidrs = {*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])}
            rules.append((cidrs, rule.get("fromPort"), rule.get("toPort"), _is_lb_group(props), "inline ingress"))
    elif resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        cidrs = {cidr for cidr in (props.get("cidrIpv4"), props.get("cidrIpv6")) if cidr}
        rules.append((cidrs, props.get("fromPort"), props.get("toPort"), _is_lb_group(props), "ingress rule"))
    elif resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        cidrs = {*(props.get("cidrBlocks") or []), *(props.get("ipv6CidrBlocks") or [])}
        rules.append((cidrs, props.get("fromPort"), props.get("toPort"), False, "security group rule"))
    for cidrs, from_port, to_port, lb_group, where in rules:
        if cidrs & PUBLIC_CIDRS and not (lb_group and _public_web(from_port, to_port)):
            yield (
                f"{where} opens ports {from_port}-{to_port} to the internet; only 80 and 443 on the load "
                f"balancer's security group (tag {LB_ROLE_TAG[0]}={LB_ROLE_TAG[1]}) may be public"
            )


def check_ecr(resource_type: str, props: Props, config: Mapping[str, Any] = NO_CONFIG) -> Iterator[str]:
    """ECR repositories scan every push and refuse to overwrite a tag."""
    if resource_type != "aws:ecr/repository:Repository":
        return
    scanning = props.get("imageScanningConfiguration") or {}
    if scanning.get("scanOnPush") is not True:
        yield "ECR repository must set imageScanningConfiguration.scanOnPush = true"
    if props.get("imageTagMutability") != "IMMUTABLE":
        yield "ECR repository must set imageTagMutability = IMMUTABLE"


#: The policy-pack config key of the one exception to `no-public-ips` (stacks/policy/<stack>.json).
ALLOW_PUBLIC_TASK_IPS = "allowPublicTaskIps"


def check_public_ips(resource_type: str, props: Props, config: Mapping[str, Any] = NO_CONFIG) -> Iterator[str]:
    """No ECS task gets a public IP, and no subnet hands them out automatically.

    One exception, switched on per stack in the policy-pack config (`allowPublicTaskIps: true`): a stack without a
    NAT gateway (the cheap first try) runs its tasks in the public subnets with a public address each, so they can
    pull images and write logs. That is acceptable because the program still admits inbound traffic to a task only
    from the load balancer's security group; the address itself is not an opening. Subnets never hand out addresses.
    """
    if resource_type == "aws:ecs/service:Service":
        network = props.get("networkConfiguration") or {}
        if network.get("assignPublicIp") is True and config.get(ALLOW_PUBLIC_TASK_IPS) is not True:
            yield (
                "ECS service must set networkConfiguration.assignPublicIp = false (tasks run in private subnets); "
                f"a stack without a NAT gateway allows it with the policy-pack config {ALLOW_PUBLIC_TASK_IPS}: true"
            )
    elif resource_type == "aws:ec2/subnet:Subnet" and props.get("mapPublicIpOnLaunch") is True:
        yield ("subnet must not set mapPublicIpOnLaunch = true; load balancers get public addresses, tasks do not")


def _ecs_container_problems(container: Mapping[str, Any]) -> Iterator[str]:
    name = container.get("name", "?")
    user = str(container.get("user") or "")
    if not user or user.split(":", maxsplit=1)[0] in ROOT_USERS:
        yield f"container '{name}' must run as a non-root user (set `user`, e.g. 10001:10001)"
    if container.get("readonlyRootFilesystem") is not True:
        yield f"container '{name}' must set readonlyRootFilesystem = true"
    if container.get("privileged") is True:
        yield f"container '{name}' must not be privileged"


def _pod_container_problems(pod: Mapping[str, Any], container: Mapping[str, Any]) -> Iterator[str]:
    name = container.get("name", "?")
    pod_ctx = pod.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    # A container's own setting wins; an unset (or null) one inherits the pod's.
    non_root = ctx.get("runAsNonRoot") if ctx.get("runAsNonRoot") is not None else pod_ctx.get("runAsNonRoot")
    user = ctx.get("runAsUser") if ctx.get("runAsUser") is not None else pod_ctx.get("runAsUser")
    if non_root is not True or user == 0:
        yield f"container '{name}' must set runAsNonRoot = true (and not runAsUser 0)"
    if ctx.get("readOnlyRootFilesystem") is not True:
        yield f"container '{name}' must set securityContext.readOnlyRootFilesystem = true"
    if ctx.get("allowPrivilegeEscalation") is not False:
        yield f"container '{name}' must set securityContext.allowPrivilegeEscalation = false"
    if ctx.get("privileged") is True:
        yield f"container '{name}' must not be privileged"


def check_containers(resource_type: str, props: Props, config: Mapping[str, Any] = NO_CONFIG) -> Iterator[str]:
    """Containers run as non-root on a read-only root filesystem, without privilege (ECS and Kubernetes)."""
    if resource_type == "aws:ecs/taskDefinition:TaskDefinition":
        raw = props.get("containerDefinitions")
        definitions = json.loads(raw) if isinstance(raw, str) else raw or []
        for container in definitions:
            yield from _ecs_container_problems(container)
        return
    if not resource_type.startswith("kubernetes:") or resource_type.rsplit(":", maxsplit=1)[-1] not in WORKLOAD_KINDS:
        return
    spec = props.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        yield from _pod_container_problems(pod, container)


def check_log_retention(resource_type: str, props: Props, config: Mapping[str, Any] = NO_CONFIG) -> Iterator[str]:
    """CloudWatch log groups expire their events (the default keeps them, and bills for them, forever)."""
    if resource_type == "aws:cloudwatch/logGroup:LogGroup" and not props.get("retentionInDays"):
        yield "log group must set retentionInDays (e.g. 30)"


def _actions(document: Any) -> Iterator[tuple[str, str]]:
    parsed = json.loads(document) if isinstance(document, str) else document or {}
    statements = parsed.get("Statement") or []
    for item in statements if isinstance(statements, list) else [statements]:
        if item.get("Effect") != "Allow":
            continue
        if "NotAction" in item:
            yield "NotAction", str(item["NotAction"])
        actions = item.get("Action") or []
        for action in actions if isinstance(actions, list) else [actions]:
            yield "Action", action


def check_iam_actions(resource_type: str, props: Props, config: Mapping[str, Any] = NO_CONFIG) -> Iterator[str]:
    """IAM policies name every action; no `*`, `service:*` or NotAction grants."""
    documents: list[Any] = []
    if resource_type in ("aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy"):
        documents.append(props.get("policy"))
    elif resource_type == "aws:iam/role:Role":
        documents.extend(item.get("policy") for item in props.get("inlinePolicies") or [])
    for document in documents:
        for key, action in _actions(document):
            if key == "NotAction" or "*" in action:
                yield f"IAM policy grants {key} '{action}': list the exact actions instead"


def check_role_boundary(resource_type: str, props: Props, config: Mapping[str, Any] = NO_CONFIG) -> Iterator[str]:
    """Every role the stacks create sits under the stack's own path with the stack's permissions boundary: the deploy
    role may manage those and no other, so it cannot make itself (or a role it makes) an administrator."""
    if resource_type != "aws:iam/role:Role":
        return
    if not props.get("permissionsBoundary"):
        yield "IAM role must set permissionsBoundary (the stack's <project>-<env>-workload-boundary policy)"
    if (props.get("path") or "/") == "/":
        yield "IAM role must set path to the stack's own (/<project>-<env>/): the CI roles live at /"


@dataclass(frozen=True)
class Rule:
    """A named, documented check, with the schema of its policy-pack config when it has one."""

    name: str
    description: str
    check: Check
    config: dict[str, dict[str, Any]] | None = None


RULES = (
    Rule(
        "no-public-ingress",
        "No ingress from the internet except 80/443 on the load balancer",
        check_public_ingress,
    ),
    Rule("ecr-scan-immutable", "ECR repositories scan on push and have immutable tags", check_ecr),
    Rule(
        "no-public-ips",
        "ECS tasks and subnets do not assign public IPs (tasks may, per stack, without a NAT gateway)",
        check_public_ips,
        {ALLOW_PUBLIC_TASK_IPS: {"type": "boolean", "default": False}},
    ),
    Rule("containers-hardened", "Containers are non-root with read-only root filesystems", check_containers),
    Rule("log-retention", "CloudWatch log groups have a retention period", check_log_retention),
    Rule("iam-explicit-actions", "IAM policies list explicit actions (no wildcards)", check_iam_actions),
    Rule(
        "iam-role-boundary", "IAM roles sit under the stack's path with its permissions boundary", check_role_boundary
    ),
)


def violations(
    resource_type: str, props: Props, config: Mapping[str, Mapping[str, Any]] = NO_CONFIG
) -> list[tuple[str, str]]:
    """All (rule name, message) violations of one resource; `config` maps a rule's name to its policy-pack config."""
    return [
        (rule.name, message)
        for rule in RULES
        for message in rule.check(resource_type, props, config.get(rule.name, NO_CONFIG))
    ]


def _as_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(args.resource_type, args.props, args.get_config()):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(rule.config) if rule.config else None,
    )


def policies() -> list[Policy]:
    """The rules as CrossGuard policies, all mandatory."""
    return [_as_policy(rule) for rule in RULES]
