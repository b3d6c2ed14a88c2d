"""IAM for EKS on Fargate: the pod execution role and the IRSA roles (Load Balancer Controller, API model
access).

IRSA trust is pinned to one service account in one namespace of this cluster's OIDC issuer. The Load Balancer
Controller policy lists its actions explicitly and confines writes to load balancers, target groups and
security groups that carry the controller's `elbv2.k8s.aws/cluster` tag, in this account and region; only the
read-only Describe calls (which AWS does not scope by resource) use `Resource: *`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.aws_context import AwsContext, policy_json, statement

LBC_SERVICE_ACCOUNT = "aws-load-balancer-controller"
_CLUSTER_TAG = "elbv2.k8s.aws/cluster"

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


def lbc_policy(ctx: AwsContext, vpc_id: str) -> str:
    """The AWS Load Balancer Controller's permissions, scoped to this account, region and VPC."""
    elb = [ctx.arn("elasticloadbalancing", f"loadbalancer/{kind}/*/*") for kind in ("app", "net")]
    target_groups = ctx.arn("elasticloadbalancing", "targetgroup/*/*")
    listeners = [
        ctx.arn("elasticloadbalancing", resource)
        for kind in ("app", "net")
        for resource in (f"listener/{kind}/*/*/*", f"listener-rule/{kind}/*/*/*/*")
    ]
    security_groups = ctx.arn("ec2", "security-group/*")
    vpc = ctx.arn("ec2", f"vpc/{vpc_id}")
    tagged: dict[str, dict[str, Any]] = {"Null": {f"aws:ResourceTag/{_CLUSTER_TAG}": "false"}}
    tagging_own = {"Null": {f"aws:RequestTag/{_CLUSTER_TAG}": "true", f"aws:ResourceTag/{_CLUSTER_TAG}": "false"}}
    slr = f"arn:{ctx.partition}:iam::{ctx.account_id}:role/aws-service-role/elasticloadbalancing.amazonaws.com/*"
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
                {"ArnEquals": {"ec2:Vpc": vpc}},
                sid="IngressRulesInVpc",
            ),
            statement(["ec2:DeleteSecurityGroup"], security_groups, tagged, sid="DeleteOwnSecurityGroup"),
            statement(
                ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
                [*elb, target_groups],
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
                [*elb, target_groups],
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
    return policy_json(
        [
            statement(["ecr:GetAuthorizationToken"], "*", sid="EcrLogin"),
            statement(
                ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                # EKS add-on images (CoreDNS) live in AWS-owned accounts that differ by region, under eks/.
                [*repository_arns, f"arn:{ctx.partition}:ecr:{ctx.region}:*:repository/eks/*"],
                sid="EcrPull",
            ),
            statement(
                ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                [log_group_arn, f"{log_group_arn}:log-stream:*"],
                sid="FargateLogs",
            ),
        ]
    )
