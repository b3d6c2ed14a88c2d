"""IAM for EKS on Fargate: the pod execution role and the IRSA roles (Load Balancer Controller, API model
access).

IRSA trust is pinned to one service account in one namespace of this cluster's OIDC issuer. The Load Balancer
Controller policy lists its actions explicitly and confines its writes, in this account and region, to what the
controller itself creates. It may create load balancers and target groups only with its `elbv2.k8s.aws/cluster`
tag, and change or delete only those named `k8s-*` (its naming scheme; no `load-balancer-name` annotation is used)
that carry the tag. It may edit ingress rules only of security groups in this VPC that carry that tag, and of the
EKS cluster security group the Fargate pods use (where it opens the target port to its backend group). The ECS ALB,
its listeners, target groups and security groups in the same VPC are therefore out of reach. Only the read-only
Describe calls (which AWS does not scope by resource) use `Resource: *`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.aws_context import AwsContext, ecr_pull_statements, policy_json, statement

LBC_SERVICE_ACCOUNT = "aws-load-balancer-controller"
_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
#: Names the controller gives the load balancers and target groups it creates (`k8s-<namespace>-<name>-<hash>`).
LBC_NAME_PATTERN = "k8s-*"

_LBC_DESCRIBE = (
    "acm:ListCertificates",
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeCoipPools",
    "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeIpamPools",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVpcPeeringConnections",
    "ec2:DescribeVpcs",
    "ec2:GetCoipPoolUsage",
    "ec2:GetSecurityGroupsForVpc",
    "elasticloadbalancing:DescribeCapacityReservation",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeSSLPolicies",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTrustStores",
)
_LBC_MODIFY_TAGGED = (
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyCapacityReservation",
    "elasticloadbalancing:ModifyIpPools",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
)
_LBC_LISTENERS = (
    "elasticloadbalancing:AddListenerCertificates",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:SetRulePriorities",
)


def lbc_policy(ctx: AwsContext, vpc_id: str, cluster_name: str) -> str:
    """The AWS Load Balancer Controller's permissions, scoped to its own resources in this account, region and VPC."""
    kinds = ("app", "net")
    own = LBC_NAME_PATTERN
    elb = [ctx.arn("elasticloadbalancing", f"loadbalancer/{kind}/{own}/*") for kind in kinds]
    target_groups = ctx.arn("elasticloadbalancing", f"targetgroup/{own}/*")
    # Creating (and tagging while creating) is scoped by the request tag alone, as upstream does: whether IAM matches
    # the new resource's name at creation is not documented, and a create cannot touch existing resources.
    any_new = [
        *(ctx.arn("elasticloadbalancing", f"loadbalancer/{kind}/*/*") for kind in kinds),
        ctx.arn("elasticloadbalancing", "targetgroup/*/*"),
    ]
    listeners = [
        ctx.arn("elasticloadbalancing", resource)
        for kind in kinds
        for resource in (f"listener/{kind}/{own}/*/*", f"listener-rule/{kind}/{own}/*/*/*")
    ]
    security_groups = ctx.arn("ec2", "security-group/*")
    vpc = ctx.arn("ec2", f"vpc/{vpc_id}")
    in_vpc = {"ArnEquals": {"ec2:Vpc": vpc}}
    tagged: dict[str, dict[str, Any]] = {"Null": {f"aws:ResourceTag/{_CLUSTER_TAG}": "false"}}
    tagging_own = {"Null": {f"aws:RequestTag/{_CLUSTER_TAG}": "true", f"aws:ResourceTag/{_CLUSTER_TAG}": "false"}}
    # EKS tags the cluster security group (the one Fargate pods use) with kubernetes.io/cluster/<name> = owned.
    cluster_security_group = {"StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}}
    slr = ctx.arn("iam", "role/aws-service-role/elasticloadbalancing.amazonaws.com/*", region=False)
    return policy_json(
        [
            statement(
                ["iam:CreateServiceLinkedRole"],
                slr,
                {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
                sid="ServiceLinkedRole",
            ),
            statement(_LBC_DESCRIBE, "*", sid="ReadOnlyDescribe"),
            statement(["acm:DescribeCertificate"], ctx.arn("acm", "certificate/*"), sid="Certificates"),
            statement(["ec2:CreateSecurityGroup"], [vpc, security_groups], sid="CreateSecurityGroupInVpc"),
            statement(
                ["ec2:CreateTags"],
                security_groups,
                {
                    "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"},
                    "Null": {f"aws:RequestTag/{_CLUSTER_TAG}": "false"},
                },
                sid="TagNewSecurityGroup",
            ),
            statement(
                ["ec2:CreateTags", "ec2:DeleteTags"],
                security_groups,
                tagging_own,
                sid="RetagOwnSecurityGroup",
            ),
            statement(
                ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                security_groups,
                {**in_vpc, **tagged},
                sid="IngressRulesInVpc",
            ),
            statement(
                ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                security_groups,
                {**in_vpc, **cluster_security_group},
                sid="IngressRulesOnClusterSecurityGroup",
            ),
            statement(["ec2:DeleteSecurityGroup"], security_groups, tagged, sid="DeleteOwnSecurityGroup"),
            statement(
                ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
                any_new,
                {"Null": {f"aws:RequestTag/{_CLUSTER_TAG}": "false"}},
                sid="CreateTagged",
            ),
            statement(_LBC_LISTENERS, [*elb, *listeners], sid="Listeners"),
            statement(
                ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                [*elb, target_groups],
                tagging_own,
                sid="RetagOwnLoadBalancers",
            ),
            statement(
                ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                listeners,
                sid="TagListeners",
            ),
            statement(
                ["elasticloadbalancing:AddTags"],
                any_new,
                {
                    "StringEquals": {"elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"]},
                    "Null": {f"aws:RequestTag/{_CLUSTER_TAG}": "false"},
                },
                sid="TagOnCreate",
            ),
            statement(_LBC_MODIFY_TAGGED, [*elb, target_groups], tagged, sid="ModifyOwn"),
            statement(
                ["elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"],
                target_groups,
                sid="Targets",
            ),
        ]
    )


def irsa_trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> str:
    """Trust one Kubernetes service account of this cluster (audience sts.amazonaws.com)."""
    return policy_json(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{oidc_issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{oidc_issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ]
    )


def irsa_role(
    name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """A role assumable only by one service account through the cluster's OIDC provider."""
    return aws.iam.Role(
        name,
        assume_role_policy=pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
            lambda values: irsa_trust_policy(values[0], values[1], namespace, service_account)
        ),
        tags=tags,
        opts=opts,
    )


def pod_execution_policy(ctx: AwsContext, repository_arns: list[str], log_group_arn: str) -> str:
    """What Fargate needs to start pods: pull our images and the EKS add-on images, ship logs to one group."""
    # EKS add-on images (CoreDNS) live in AWS-owned accounts that differ by region, under eks/.
    addon_images = f"arn:{ctx.partition}:ecr:{ctx.region}:*:repository/eks/*"
    return policy_json(
        [
            *ecr_pull_statements([*repository_arns, addon_images]),
            statement(
                ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                [log_group_arn, f"{log_group_arn}:log-stream:*"],
                sid="FargateLogs",
            ),
        ]
    )
