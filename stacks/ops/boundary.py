"""The permissions boundary of every role the stacks create (`<project>-<env>-workload-boundary`, made by
`stacks.ops bootstrap` before any stack).

The deploy role may create and change roles only under the stack's path and only with this boundary attached, so a
role it makes can never do more than a workload of this project needs: pull images, write logs, read a model, what
the EKS cluster role and the AWS Load Balancer Controller do. No IAM write (but the ELB service-linked role), no STS,
no KMS beyond describing a key: a role the deploy role creates cannot be used to become an administrator.

The allowed actions are collected from the code that writes the workload policies, so the boundary cannot drift
from them (a test checks every policy the programs create against it).
"""

from __future__ import annotations

import json

from stacks.aws_context import ECR_PULL_ACTIONS, AwsContext, policy_json, statement
from stacks.eks.lb_controller_policy import lb_controller_policy

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
#: What the ECS and Fargate execution roles and the model readers do (stacks/ecs/iam.py, stacks/eks/iam.py).
WORKLOAD_ACTIONS = (
    "ecr:GetAuthorizationToken",
    *ECR_PULL_ACTIONS,
    "logs:CreateLogStream",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
    "s3:GetObject",
    "s3:ListBucket",
)
#: The only service-linked role a bounded role may create (the cluster role and the controller make ELB's).
LINKED_ROLE_SERVICE = "elasticloadbalancing.amazonaws.com"


def boundary_name(stack: str) -> str:
    """The boundary policy's name (`AwsContext.boundary_arn` is its ARN)."""
    return f"{stack}-workload-boundary"


def boundary_actions(ctx: AwsContext) -> set[str]:
    """Every action a role of the stack may ever be granted, but the service-linked role."""
    controller = lb_controller_policy(ctx, "vpc-0", f"{ctx.stack}-eks")
    granted = {action for item in json.loads(controller)["Statement"] for action in item["Action"]}
    return (granted | set(EKS_CLUSTER_POLICY_ACTIONS) | set(WORKLOAD_ACTIONS)) - {"iam:CreateServiceLinkedRole"}


def workload_boundary_policy(ctx: AwsContext) -> str:
    """The boundary document: the workloads' actions anywhere in the account (their own policies narrow them), and
    the ELB service-linked role."""
    linked_role = ctx.arn("iam", f"role/aws-service-role/{LINKED_ROLE_SERVICE}/*", region=False)
    return policy_json(
        [
            statement(sorted(boundary_actions(ctx)), "*", sid="WorkloadActions"),
            statement(
                ["iam:CreateServiceLinkedRole"],
                linked_role,
                {"StringEquals": {"iam:AWSServiceName": LINKED_ROLE_SERVICE}},
                sid="ElbServiceLinkedRole",
            ),
        ]
    )
