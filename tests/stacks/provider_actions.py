"""What the CI deploy role must be allowed for each resource type the programs make: the API actions the Pulumi AWS
provider (pulumi-aws 7, the Terraform AWS provider v6 underneath) calls to create, read, update, tag and delete it,
and what the service checks on the caller when it is created (the role it is passed, its service-linked role, the
alarms Application Auto Scaling creates for a target-tracking policy).

Each action names the resource it is authorized on, as a template filled from the replayed resource: `{arn}` (its
real ARN), `{inputs[...]}` (its real inputs), `{account}`, `{region}`, `{name}` (`<project>-<env>`), `{cluster}`.
Compiled from the provider's source and AWS's documentation; not checked against AWS itself (see the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Need:
    """One action on one resource, with the condition keys the request carries."""

    action: str
    resource: str = "*"
    context: dict[str, str] = field(default_factory=dict)


def on(resource: str, *actions: str) -> tuple[Need, ...]:
    return tuple(Need(action, resource) for action in actions)


def passes(role: str, *services: str) -> tuple[Need, ...]:
    """iam:PassRole of a role the resource is given, to the service that will assume it."""
    return tuple(Need("iam:PassRole", role, {"iam:PassedToService": service}) for service in services)


def service_linked_role(service: str, role: str) -> tuple[Need, ...]:
    """The service creates its service-linked role on first use, with the caller's permission, and checks for it."""
    arn = f"arn:aws:iam::{{account}}:role/aws-service-role/{service}/{role}"
    return (Need("iam:CreateServiceLinkedRole", arn, {"iam:AWSServiceName": service}), Need("iam:GetRole", arn))


ROLE = "arn:aws:iam::{account}:role/{inputs[role]}"
BUCKET = "arn:aws:s3:::{inputs[bucket]}"
REPOSITORY = "arn:aws:ecr:{region}:{account}:repository/{inputs[repository]}"
CLUSTER = "arn:aws:eks:{region}:{account}:cluster/{cluster}"
ADDON = "arn:aws:eks:{region}:{account}:addon/{cluster}/{inputs[addonName]}/0ac7c0a2-1b2c-3d4e-5f60-718293a4b5c6"
ACCESS_ENTRY = "arn:aws:eks:{region}:{account}:access-entry/{cluster}/role/{account}/{name}-github-deploy/4ec7c0a2"
#: The alarms a target-tracking policy creates are named after the scalable target.
ALARM = "arn:aws:cloudwatch:{region}:{account}:alarm:TargetTracking-{inputs[resourceId]}-AlarmHigh-0a1b2c3d"
SG_RULE = ("ec2:DescribeSecurityGroupRules", "ec2:ModifySecurityGroupRules", "ec2:CreateTags")
ELB_TAGS = ("elasticloadbalancing:AddTags", "elasticloadbalancing:DescribeTags", "elasticloadbalancing:RemoveTags")

PROVIDER_ACTIONS: dict[str, tuple[Need, ...]] = {
    "aws:ec2/vpc:Vpc": on(
        "*",
        "ec2:CreateVpc",
        "ec2:CreateTags",
        "ec2:DescribeVpcs",
        "ec2:DescribeVpcAttribute",
        "ec2:ModifyVpcAttribute",
        "ec2:DescribeNetworkAcls",  # the VPC's default network ACL, read with the VPC
        "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroups",
        "ec2:DeleteVpc",
    ),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": on(
        "*",
        "ec2:DescribeSecurityGroups",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:CreateTags",
        "ec2:DeleteTags",
    ),
    "aws:ec2/internetGateway:InternetGateway": on(
        "*",
        "ec2:CreateInternetGateway",
        "ec2:AttachInternetGateway",
        "ec2:DescribeInternetGateways",
        "ec2:DetachInternetGateway",
        "ec2:DeleteInternetGateway",
        "ec2:CreateTags",
    ),
    "aws:ec2/routeTable:RouteTable": on(
        "*",
        "ec2:CreateRouteTable",
        "ec2:CreateRoute",
        "ec2:ReplaceRoute",
        "ec2:DeleteRoute",
        "ec2:DescribeRouteTables",
        "ec2:DeleteRouteTable",
        "ec2:CreateTags",
    ),
    "aws:ec2/subnet:Subnet": on(
        "*",
        "ec2:CreateSubnet",
        "ec2:DescribeSubnets",
        "ec2:ModifySubnetAttribute",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteSubnet",
        "ec2:CreateTags",
    ),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": on(
        "*",
        "ec2:AssociateRouteTable",
        "ec2:ReplaceRouteTableAssociation",  # a changed route table is swapped in place
        "ec2:DescribeRouteTables",
        "ec2:DisassociateRouteTable",
    ),
    "aws:ec2/eip:Eip": on(
        "*",
        "ec2:AllocateAddress",
        "ec2:DescribeAddresses",
        "ec2:DescribeAddressesAttribute",
        "ec2:DisassociateAddress",
        "ec2:ReleaseAddress",
        "ec2:CreateTags",
    ),
    "aws:ec2/natGateway:NatGateway": on(
        "*", "ec2:CreateNatGateway", "ec2:DescribeNatGateways", "ec2:DeleteNatGateway", "ec2:CreateTags"
    ),
    "aws:ec2/vpcEndpoint:VpcEndpoint": on(
        "*",
        "ec2:CreateVpcEndpoint",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribePrefixLists",
        "ec2:ModifyVpcEndpoint",
        "ec2:DeleteVpcEndpoints",
        "ec2:CreateTags",
    ),
    "aws:ec2/securityGroup:SecurityGroup": on(
        "*",
        "ec2:CreateSecurityGroup",
        "ec2:DescribeSecurityGroups",
        "ec2:RevokeSecurityGroupEgress",  # the allow-all egress rule AWS adds
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteSecurityGroup",
        "ec2:CreateTags",
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": on(
        "*", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", *SG_RULE
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": on(
        "*", "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", *SG_RULE
    ),
    "aws:ecr/repository:Repository": on(
        "{arn}",
        "ecr:CreateRepository",
        "ecr:DescribeRepositories",
        "ecr:ListTagsForResource",
        "ecr:TagResource",
        "ecr:UntagResource",
        "ecr:PutImageScanningConfiguration",
        "ecr:PutImageTagMutability",
        "ecr:DeleteRepository",
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": on(
        REPOSITORY, "ecr:PutLifecyclePolicy", "ecr:GetLifecyclePolicy", "ecr:DeleteLifecyclePolicy"
    ),
    "aws:s3/bucket:Bucket": on(
        "{arn}",
        "s3:CreateBucket",
        "s3:ListBucket",
        "s3:PutBucketTagging",
        "s3:GetBucketTagging",
        "s3:GetBucketAcl",
        "s3:GetBucketCORS",
        "s3:GetBucketWebsite",
        "s3:GetBucketVersioning",
        "s3:GetAccelerateConfiguration",
        "s3:GetBucketRequestPayment",
        "s3:GetBucketLogging",
        "s3:GetLifecycleConfiguration",
        "s3:GetReplicationConfiguration",
        "s3:GetEncryptionConfiguration",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketPolicy",
        "s3:ListBucketVersions",
        "s3:DeleteBucket",
    )
    + on("{arn}/AWSLogs/log.gz", "s3:DeleteObject", "s3:DeleteObjectVersion"),  # emptied by a destroy
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": on(
        BUCKET, "s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock"
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": on(
        BUCKET, "s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls"
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": on(
        BUCKET, "s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration"
    ),
    "aws:s3/bucketVersioning:BucketVersioning": on(BUCKET, "s3:PutBucketVersioning", "s3:GetBucketVersioning"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": on(
        BUCKET, "s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration"
    ),
    "aws:s3/bucketPolicy:BucketPolicy": on(BUCKET, "s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"),
    "aws:cloudwatch/logGroup:LogGroup": on(
        "{arn}",
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "logs:ListTagsForResource",
        "logs:TagResource",
        "logs:DeleteLogGroup",
    )
    + on("*", "logs:DescribeLogGroups"),
    "aws:iam/role:Role": on(
        "{arn}",
        "iam:CreateRole",
        "iam:GetRole",
        "iam:TagRole",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:DeleteRole",
    ),
    "aws:iam/rolePolicy:RolePolicy": on(ROLE, "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": on(
        ROLE, "iam:AttachRolePolicy", "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy"
    ),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": on(
        "{arn}",
        "iam:CreateOpenIDConnectProvider",
        "iam:GetOpenIDConnectProvider",
        "iam:TagOpenIDConnectProvider",
        "iam:DeleteOpenIDConnectProvider",
    ),
    "aws:servicediscovery/httpNamespace:HttpNamespace": on(
        "*",
        "servicediscovery:CreateHttpNamespace",
        "servicediscovery:GetOperation",
        "servicediscovery:GetNamespace",
        "servicediscovery:ListTagsForResource",
        "servicediscovery:TagResource",
        "servicediscovery:DeleteNamespace",
    ),
    "aws:ecs/cluster:Cluster": on(
        "*",
        "ecs:CreateCluster",
        "ecs:DescribeClusters",
        "ecs:UpdateCluster",
        "ecs:ListTagsForResource",
        "ecs:TagResource",
        "ecs:DeleteCluster",
    )
    + service_linked_role("ecs.amazonaws.com", "AWSServiceRoleForECS"),
    "aws:ecs/taskDefinition:TaskDefinition": on(
        "*",
        "ecs:RegisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "ecs:TagResource",
        "ecs:DeregisterTaskDefinition",
    )
    + passes("{inputs[executionRoleArn]}", "ecs-tasks.amazonaws.com")
    + passes("{inputs[taskRoleArn]}", "ecs-tasks.amazonaws.com"),
    "aws:ecs/service:Service": on(
        "*", "ecs:CreateService", "ecs:DescribeServices", "ecs:UpdateService", "ecs:TagResource", "ecs:DeleteService"
    ),
    "aws:appautoscaling/target:Target": on(
        "*",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:ListTagsForResource",
        "application-autoscaling:TagResource",
        "application-autoscaling:DeregisterScalableTarget",
        "ecs:DescribeServices",
        "ecs:UpdateService",
    )
    + service_linked_role(
        "ecs.application-autoscaling.amazonaws.com", "AWSServiceRoleForApplicationAutoScaling_ECSService"
    ),
    "aws:appautoscaling/policy:Policy": on(
        "*",
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DescribeScalingPolicies",
        "application-autoscaling:DeleteScalingPolicy",
    )
    + on(ALARM, "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"),
    "aws:lb/loadBalancer:LoadBalancer": on(
        "*",
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:DescribeCapacityReservation",  # read with every ALB
        "elasticloadbalancing:SetSecurityGroups",
        "elasticloadbalancing:SetSubnets",
        "elasticloadbalancing:DeleteLoadBalancer",
        *ELB_TAGS,
    )
    + service_linked_role("elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing"),
    "aws:lb/targetGroup:TargetGroup": on(
        "*",
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:ModifyTargetGroup",
        "elasticloadbalancing:DeleteTargetGroup",
        *ELB_TAGS,
    ),
    "aws:lb/listener:Listener": on(
        "*",
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:DeleteListener",
        *ELB_TAGS,
    ),
    "aws:lb/listenerRule:ListenerRule": on(
        "*",
        "elasticloadbalancing:CreateRule",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:ModifyRule",
        "elasticloadbalancing:DeleteRule",
        *ELB_TAGS,
    ),
    "aws:eks/cluster:Cluster": on(
        "{arn}",
        "eks:CreateCluster",
        "eks:DescribeCluster",
        "eks:TagResource",
        "eks:UpdateClusterConfig",
        "eks:UpdateClusterVersion",
        "eks:DescribeUpdate",
        "eks:DeleteCluster",
    )
    + passes("{inputs[roleArn]}", "eks.amazonaws.com")
    + service_linked_role("eks.amazonaws.com", "AWSServiceRoleForAmazonEKS"),
    "aws:eks/fargateProfile:FargateProfile": on(CLUSTER, "eks:CreateFargateProfile")
    + on("{arn}", "eks:DescribeFargateProfile", "eks:TagResource", "eks:DeleteFargateProfile")
    # Which of the two EKS names as the service the pod role is passed to is not documented: both are allowed.
    + passes("{inputs[podExecutionRoleArn]}", "eks.amazonaws.com", "eks-fargate-pods.amazonaws.com")
    + service_linked_role("eks-fargate.amazonaws.com", "AWSServiceRoleForAmazonEKSForFargate"),
    "aws:eks/addon:Addon": on(CLUSTER, "eks:CreateAddon")
    + on(ADDON, "eks:DescribeAddon", "eks:UpdateAddon", "eks:TagResource", "eks:DeleteAddon")
    + on("*", "eks:DescribeAddonVersions"),
    "aws:eks/accessEntry:AccessEntry": on(CLUSTER, "eks:CreateAccessEntry")
    + on(ACCESS_ENTRY, "eks:DescribeAccessEntry", "eks:UpdateAccessEntry", "eks:TagResource", "eks:DeleteAccessEntry"),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": on(
        ACCESS_ENTRY, "eks:AssociateAccessPolicy", "eks:ListAssociatedAccessPolicies", "eks:DisassociateAccessPolicy"
    ),
}
