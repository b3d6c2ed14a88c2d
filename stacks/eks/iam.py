"""IAM for EKS on Fargate: the cluster role, the pod execution role and IRSA roles (one service account each).

IRSA trust is pinned to one service account in one namespace of this cluster's OIDC issuer. No AWS-managed policy
is attached except the one EKS documents for its cluster role.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from stacks.aws_context import (
    AwsContext,
    RoleWithPolicies,
    ecr_pull_statements,
    policy_json,
    stack_role,
    statement,
    web_identity_trust_policy,
)


def cluster_trust_policy(ctx: AwsContext) -> str:
    """EKS itself, for this account; EKS tags its session (sts:TagSession), so that is allowed too."""
    return policy_json(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": "eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            }
        ]
    )


def irsa_trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> str:
    """Trust one Kubernetes service account of this cluster (audience sts.amazonaws.com)."""
    subject = f"system:serviceaccount:{namespace}:{service_account}"
    return web_identity_trust_policy(oidc_provider_arn, oidc_issuer, subject)


def irsa_role(
    name: str,
    ctx: AwsContext,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    policy: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> RoleWithPolicies:
    """A role assumable only by one service account through the cluster's OIDC provider, with one inline policy."""
    trust = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda values: irsa_trust_policy(values[0], values[1], namespace, service_account)
    )
    role = stack_role(name, ctx, trust, tags, opts)
    return RoleWithPolicies(role, [aws.iam.RolePolicy(name, role=role.id, policy=policy, opts=opts)])


def pod_execution_policy(ctx: AwsContext, repository_arns: Sequence[str], log_group_arn: str) -> str:
    """What Fargate needs to start pods: pull our images and the EKS add-on images, ship logs to one group."""
    return policy_json(
        [
            *ecr_pull_statements([*repository_arns, ctx.eks_addon_images]),
            statement(["logs:DescribeLogStreams"], log_group_arn, sid="FargateLogStreams"),
            statement(
                ["logs:CreateLogStream", "logs:PutLogEvents"], f"{log_group_arn}:log-stream:*", sid="FargateLogs"
            ),
        ]
    )
