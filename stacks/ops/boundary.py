"""The permissions boundary of every role the stacks create (`<project>-<env>-workload-boundary`, made by
`stacks.ops bootstrap` before any stack).

The deploy role may create and change roles only under the stack's path, by the names the programs use, and only
with this boundary attached. A role carrying it can never do more than this stack's workloads need, on this stack's
resources, in this stack's region, whatever policy it is given (AdministratorAccess included): pull this stack's
images, write this stack's log groups, read this stack's model bucket, what the EKS cluster role does to resources
tagged for this cluster, and what the AWS Load Balancer Controller does to its own `k8s-*` load balancers. An explicit
deny keeps every IAM, STS and Organizations action out (but the ELB service-linked role) and every other region.

What a trust policy says cannot be held to anything by IAM: a role the deploy role makes may trust any principal;
the boundary is what limits what such a role can do (docs/deploy.md, "What stays possible").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stacks.aws_context import ECR_PULL_ACTIONS, AwsContext, policy_json, statement, tag_keys
from stacks.eks.lb_controller_policy import CLUSTER_TAG, KINDS, lb_controller_policy, own_elb_resources

#: AmazonEKSClusterPolicy, the AWS managed policy the EKS cluster role carries (its actions as AWS publishes them;
#: a test compares this list with the copy moto ships).
EKS_CLUSTER_POLICY_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:UpdateAutoScalingGroup",
    "ec2:AttachVolume",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateRoute",
    "ec2:CreateSecurityGroup",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteRoute",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteVolume",
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeInstanceTopology",
    "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVolumes",
    "ec2:DescribeVolumesModifications",
    "ec2:DescribeVpcs",
    "ec2:DetachVolume",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyVolume",
    "ec2:RevokeSecurityGroupIngress",
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
    "elasticloadbalancing:AttachLoadBalancerToSubnets",
    "elasticloadbalancing:ConfigureHealthCheck",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateLoadBalancerListeners",
    "elasticloadbalancing:CreateLoadBalancerPolicy",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteLoadBalancerListeners",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancerPolicies",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DetachLoadBalancerFromSubnets",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
    "elasticloadbalancing:SetLoadBalancerPoliciesOfListener",
    "iam:CreateServiceLinkedRole",
    "kms:DescribeKey",
)
#: Cluster-policy actions a Fargate-only cluster never needs, and why the boundary leaves them out: the cluster role
#: keeps its reads only.
_NODES = "nodes: a Fargate-only cluster has none (pods get VPC addresses; no EBS volumes on Fargate)"
_IN_TREE = (
    "the in-tree cloud provider's Service load balancers and their node security groups: they target nodes, which a "
    "Fargate-only cluster has none of; the app's load balancer is the Load Balancer Controller's"
)
CLUSTER_POLICY_DROPPED: dict[str, str] = {
    **dict.fromkeys(
        (
            "autoscaling:UpdateAutoScalingGroup",
            "ec2:AttachVolume",
            "ec2:CreateRoute",
            "ec2:CreateVolume",
            "ec2:DeleteRoute",
            "ec2:DeleteVolume",
            "ec2:DetachVolume",
            "ec2:ModifyInstanceAttribute",
            "ec2:ModifyVolume",
        ),
        _NODES,
    ),
    **{
        action: _IN_TREE
        for action in EKS_CLUSTER_POLICY_ACTIONS
        if action.startswith("elasticloadbalancing:") and not action.split(":")[1].startswith("Describe")
    },
    **dict.fromkeys(
        (
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:CreateSecurityGroup",
            "ec2:CreateTags",
            "ec2:DeleteSecurityGroup",
            "ec2:RevokeSecurityGroupIngress",
        ),
        _IN_TREE,
    ),
    "ec2:DeleteNetworkInterface": "ENIs the VPC CNI left behind (tag eks:eni:owner): Fargate runs no VPC CNI",
    "kms:DescribeKey": "the envelope encryption of Kubernetes secrets: the cluster has no encryptionConfig",
    "iam:CreateServiceLinkedRole": "granted on its own, for the ELB service-linked role only",
}
#: The only service-linked role a bounded role may create (the cluster role and the controller make ELB's).
LINKED_ROLE_SERVICE = "elasticloadbalancing.amazonaws.com"
#: Never allowed to a bounded role, whatever its own policy says (the ELB service-linked role apart).
DENIED_SERVICES = ("iam:*", "sts:*", "organizations:*", "account:*")


def _reads(ctx: AwsContext) -> list[str]:
    """The calls without resource-level permissions the workloads make: ECR's login, the controller's and the
    cluster role's look-ups; and the controller's ACM look-up, which AWS authorizes on `certificate/*` but which
    reaches no further on `*` (ACM has no resource policies: only this account's certificates; ThisRegionOnly holds the
    region), so the document fits a managed policy's 6,144 characters."""
    controller = json.loads(lb_controller_policy(ctx, "*", f"{ctx.stack}-eks"))["Statement"]
    looked_up = {a for item in controller if item["Resource"] == "*" for a in item["Action"]}
    kept = {a for a in EKS_CLUSTER_POLICY_ACTIONS if a not in CLUSTER_POLICY_DROPPED}
    return sorted({"ecr:GetAuthorizationToken", "acm:DescribeCertificate", *looked_up, *kept})


def _workload_statements(ctx: AwsContext) -> list[dict[str, Any]]:
    """The ECS and Fargate execution roles and the model readers: this stack's images (and EKS add-on images, which
    AWS keeps in accounts of its own under eks/), this stack's log groups, this stack's model bucket."""
    models = ctx.arn("s3", f"{ctx.stack}-models-*", region=False, account=False)
    return [
        statement(_reads(ctx), "*", sid="LookUps"),
        statement(
            ECR_PULL_ACTIONS,
            [ctx.arn("ecr", f"repository/{ctx.stack}/*"), ctx.eks_addon_images],
            sid="Images",
        ),
        statement(
            ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [ctx.arn("logs", f"log-group:{prefix}{ctx.stack}-*") for prefix in ("/ecs/", "/eks/")],
            sid="Logs",
        ),
        statement(["s3:GetObject", "s3:ListBucket"], [models, f"{models}/*"], sid="Model"),
    ]


def _elb_writes(document: list[dict[str, Any]], arns: set[str], creates: list[str]) -> list[str]:
    """The controller's load balancer writes (not creates) its policy `document` grants on any of `arns`."""
    return sorted(
        {
            a
            for item in document
            if set(item["Resource"] if isinstance(item["Resource"], list) else [item["Resource"]]) & arns
            for a in item["Action"]
            if a.startswith("elasticloadbalancing:") and a not in creates
        }
    )


def _compact(owned: Mapping[str, list[str]], on: list[str]) -> list[str]:
    """The ARNs of the kinds `on` with `app`/`net` as one wildcard (a managed policy holds at most 6,144 characters)."""
    return sorted({arn.replace(f"/{KINDS[0]}/", "/*/").replace(f"/{KINDS[1]}/", "/*/") for k in on for arn in owned[k]})


def _ec2_writes(document: list[dict[str, Any]]) -> list[str]:
    """The controller's security group writes on named resources, creating and listing left out."""
    return sorted(
        {
            a
            for item in document
            if item["Resource"] != "*"
            for a in item["Action"]
            if a.startswith("ec2:") and a not in ("ec2:CreateSecurityGroup", "ec2:GetSecurityGroupsForVpc")
        }
    )


def _controller_statements(ctx: AwsContext, owner: Mapping[str, str]) -> list[dict[str, Any]]:
    """The Load Balancer Controller on what it owns: load balancers and target groups it creates tagged with this
    cluster's value of `elbv2.k8s.aws/cluster` (the tag set only while creating), its `k8s-*` listeners and rules,
    security groups created in the stack's VPC with this cluster's tag and the stack's `owner` tags (the chart's
    `defaultTags`: the VPC's id is unknown when the boundary is made, its tags are not), or EKS's cluster security
    group. A resource of someone else cannot be re-tagged into reach: tags are written to existing resources only where
    they already carry this cluster's value."""
    cluster = f"{ctx.stack}-eks"
    document = json.loads(lb_controller_policy(ctx, "*", cluster))["Statement"]
    owned = own_elb_resources(ctx)
    creates = ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]

    def granted_on(*on: str) -> list[str]:
        return _elb_writes(document, {arn for kind in on for arn in owned[kind]}, creates)

    def compact(on: list[str]) -> list[str]:
        return _compact(owned, on)

    new_tag = {f"aws:RequestTag/{CLUSTER_TAG}": cluster}
    ours = {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster}}
    stacks = tag_keys("aws:ResourceTag", owner)
    new_group = {**new_tag, **tag_keys("aws:RequestTag", owner)}
    security_groups = ctx.arn("ec2", "security-group/*")
    # A create makes a resource in this account, and ThisRegionOnly holds the region: creates and the tagging they do
    # name `*` (a managed policy holds at most 6,144 characters).
    return [
        statement(creates, "*", {"StringEquals": new_tag}, sid="Creates"),
        statement(
            ["elasticloadbalancing:AddTags"],
            "*",
            {"StringEquals": {**new_tag, "elasticloadbalancing:CreateAction": [a.split(":")[1] for a in creates]}},
            sid="TagOnCreate",
        ),
        statement(
            granted_on("loadbalancer", "targetgroup"), compact(["loadbalancer", "targetgroup"]), ours, sid="Tagged"
        ),
        statement(granted_on("listener", "listener-rule"), compact(["listener", "listener-rule"]), sid="Listeners"),
        statement(
            ["ec2:CreateSecurityGroup", "ec2:GetSecurityGroupsForVpc"],
            ctx.arn("ec2", "vpc/*"),
            {"StringEquals": stacks},
            sid="StackVpc",
        ),
        # A group made untagged is of no use: every write below needs this cluster's and the stack's tags on it.
        statement(["ec2:CreateSecurityGroup"], security_groups, sid="NewSecurityGroups"),
        statement(
            ["ec2:CreateTags"],
            "*",
            {"StringEquals": {**new_group, "ec2:CreateAction": "CreateSecurityGroup"}},
            sid="TagNewSecurityGroups",
        ),
        statement(
            _ec2_writes(document),
            security_groups,
            {"StringEquals": {**ours["StringEquals"], **stacks}},
            sid="SecurityGroups",
        ),
        statement(
            ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
            security_groups,
            {"StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}},
            sid="ClusterSecurityGroup",
        ),
    ]


def workload_boundary_policy(ctx: AwsContext, owner: Mapping[str, str]) -> str:
    """The boundary document: each workload's actions on this stack's resources, this region only, and the ELB
    service-linked role; IAM, STS and Organizations denied. `owner` is the stack's Project and Environment tags
    (`CiSetup.owner`), which its VPC and the controller's security groups carry."""
    linked_role = ctx.arn("iam", f"role/aws-service-role/{LINKED_ROLE_SERVICE}/*", region=False)
    allowed = [
        *_workload_statements(ctx),
        *_controller_statements(ctx, owner),
        statement(
            ["iam:CreateServiceLinkedRole"],
            linked_role,
            {"StringEquals": {"iam:AWSServiceName": LINKED_ROLE_SERVICE}},
            sid="ElbServiceLinkedRole",
        ),
    ]
    # The allows' Sids name them here only: the document must fit a managed policy's 6,144 characters.
    return policy_json(
        [
            *({key: value for key, value in item.items() if key != "Sid"} for item in allowed),
            {
                "Effect": "Deny",
                "Action": list(DENIED_SERVICES),
                "Resource": "*",
                "Condition": {"StringNotEquals": {"iam:AWSServiceName": LINKED_ROLE_SERVICE}},
                "Sid": "NoIdentityChanges",
            },
            {
                "Effect": "Deny",
                "NotAction": ["iam:CreateServiceLinkedRole"],
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:RequestedRegion": ctx.region}},
                "Sid": "ThisRegionOnly",
            },
        ]
    )
