"""The three IAM roles GitHub Actions assumes through OIDC, with their exact trust and permission policies.

`python -m stacks.ops ci-roles ...` prints them; docs/deploy.md shows the output for example values and a test
checks the two agree, so the bootstrap in the docs is always what the code says.

- preview: pull requests of the repository (`repo:<org>/<repo>:pull_request`); reads the state and the cloud
  (`pulumi preview` of the three stacks), views the EKS cluster (its access entry is in the EKS stack's config).
- publish: the GitHub environment (`repo:<org>/<repo>:environment:<env>`); pushes the two images, reads their scan
  findings and reads the released models in the state bucket (the recursive copy needs s3:ListBucket).
- deploy: the same environment; `pulumi up` of the three stacks, so it manages exactly the resource kinds the
  programs declare, named after the stack where AWS lets a policy say so.

Sessions last at most one hour (MaxSessionDuration 3600, IAM's default): each `up` job fits in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stacks.aws_context import (
    MANAGED_POLICIES,
    STACK_ROLES,
    AwsContext,
    policy_json,
    statement,
    tag_keys,
    web_identity_trust_policy,
)
from stacks.shared import TARGETS

GITHUB_OIDC = "token.actions.githubusercontent.com"
MAX_SESSION_SECONDS = 3600


@dataclass(frozen=True)
class CiSetup:
    """Where CI deploys: the repository, its GitHub environment (= stack name), the account and the state."""

    repository: str
    environment: str
    account_id: str
    region: str
    state_bucket: str
    kms_key_id: str
    project: str = "diabetes"

    @property
    def name(self) -> str:
        return f"{self.project}-{self.environment}"

    @property
    def owner(self) -> dict[str, str]:
        """The tags every resource of the stack carries (`StackSettings.tags_for`) that say whose it is."""
        return {"Project": self.project, "Environment": self.environment}

    @property
    def in_region(self) -> dict[str, dict[str, str]]:
        """The condition that holds a call without resource-level permissions to the stack's region."""
        return {"StringEquals": {"aws:RequestedRegion": self.region}}

    def bucket_arn(self, bucket: str) -> str:
        return self.ctx.arn("s3", bucket, region=False, account=False)

    @property
    def ctx(self) -> AwsContext:
        return AwsContext(
            account_id=self.account_id, partition="aws", region=self.region, caller_arn="", stack=self.name
        )

    def role_name(self, job: str) -> str:
        return f"{self.name}-github-{job}"

    @property
    def github_provider_arn(self) -> str:
        """GitHub's OIDC provider in the account (the bootstrap makes it; the CI roles trust it)."""
        return self.ctx.arn("iam", f"oidc-provider/{GITHUB_OIDC}", region=False)


def trust_policy(setup: CiSetup, subject: str) -> str:
    """Only GitHub's OIDC tokens for this repository and subject, with the STS audience."""
    return web_identity_trust_policy(setup.github_provider_arn, GITHUB_OIDC, f"repo:{setup.repository}:{subject}")


#: The Pulumi projects whose stacks share one state bucket (Pulumi.yaml, stacks/ecs, stacks/eks): all named `diabetes*`.
PULUMI_PROJECTS = ("diabetes", "diabetes-ecs", "diabetes-eks")
#: Where Pulumi's S3 backend keeps one stack (pulumi/pkg/backend/diy: store.go projectReferenceStore, lock.go): the
#: checkpoint (with its `.bak`, `.gz`), history, backups, the update journal, and the lock of
#: `organization/<project>/<stack>`.
STATE_KEYS = (
    ".pulumi/stacks/{project}/{stack}.json*",
    ".pulumi/history/{project}/{stack}/*",
    ".pulumi/backups/{project}/{stack}/*",
    ".pulumi/journal/{project}/{stack}/*",
)
LOCK_KEYS = ".pulumi/locks/organization/{project}/{stack}/*"


def state_objects(setup: CiSetup, keys: tuple[str, ...]) -> list[str]:
    """The ARNs of this environment's objects of the three projects (`diabetes*`) in its state bucket."""
    bucket = setup.bucket_arn(setup.state_bucket)
    return [f"{bucket}/{key.format(project='diabetes*', stack=setup.environment)}" for key in keys]


def _state(setup: CiSetup, *, write: bool) -> list[dict[str, Any]]:
    """The Pulumi S3 backend of this environment (a bucket and a KMS key of its own, `stacks.ops bootstrap`): read
    this environment's stacks (StackReference too) and the backend's version file; with `write`, take the lock and
    save checkpoints, history and backups of this environment's stacks only; the key that encrypts their secrets.

    A preview writes nothing: in Pulumi's DIY backend (pkg/backend/diy/backend.go, pulumi/pulumi at 1056e14e) `Preview`
    goes straight to `apply` with a dry run, while Update, Refresh, Destroy and Import take the lock first, and only a
    non-dry run saves a snapshot, history or backup; so the preview role can neither break an update's lock nor write
    state. It must decrypt: opening an `awskms://` secrets manager decrypts the stack's data key with KMS
    (sdk/pkg/secrets/cloud/manager.go `newCloudSecretsManager` -> `keeper.Decrypt`), which the preview needs for the
    config's and the state's secrets (docs/deploy.md, "What stays possible")."""
    bucket = setup.bucket_arn(setup.state_bucket)
    key = setup.ctx.arn("kms", f"key/{setup.kms_key_id}")
    locks = state_objects(setup, (LOCK_KEYS,))
    stacks = state_objects(setup, STATE_KEYS)
    return [
        statement(["s3:ListBucket", "s3:GetBucketLocation"], bucket, sid="StateBucket"),
        statement(["s3:GetObject"], [f"{bucket}/.pulumi/meta.yaml", *stacks, *locks], sid="ReadState"),
        *([statement(["s3:DeleteObject", "s3:PutObject"], [*stacks, *locks], sid="WriteState")] if write else []),
        statement(
            ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"] if write else ["kms:Decrypt"],
            key,
            sid="StateSecrets",
        ),
    ]


def _repositories(setup: CiSetup) -> list[str]:
    return [setup.ctx.arn("ecr", f"repository/{setup.name}/{target}") for target in TARGETS]


#: What the programs look up at every preview, none with resource-level permissions: the availability zones (root),
#: and inside pulumi-eks's cluster component the Fargate subnets' route tables and CoreDNS's add-on version.
PREVIEW_LOOKUPS = ("ec2:DescribeAvailabilityZones", "ec2:DescribeRouteTables", "eks:DescribeAddonVersions")


def preview_policy(setup: CiSetup) -> str:
    """Read the state and what the programs look up (zones, route tables, add-on versions, its own role for the EKS
    access check)."""
    ctx = setup.ctx
    return policy_json(
        [
            *_state(setup, write=False),
            statement(PREVIEW_LOOKUPS, "*", setup.in_region, sid="LookUps"),
            statement(["iam:GetRole"], ctx.arn("iam", f"role/{setup.role_name('preview')}", region=False), sid="Self"),
            statement(["eks:DescribeCluster"], ctx.arn("eks", f"cluster/{setup.name}-eks"), sid="Cluster"),
        ]
    )


#: What reading enhanced-scanning findings through ECR needs of Amazon Inspector (publish_policy).
INSPECTOR_READS = ("inspector2:ListCoverage", "inspector2:ListFindings")


def publish_policy(setup: CiSetup) -> str:
    """Push both images, read their scan findings, copy the released model (`models/` of the state bucket, where
    `stacks.ops bootstrap` puts it: it exists before any stack)."""
    bucket = setup.bucket_arn(setup.state_bucket)
    return policy_json(
        [
            statement(["ecr:GetAuthorizationToken"], "*", sid="EcrLogin"),
            statement(
                [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:CompleteLayerUpload",
                    "ecr:DescribeImageScanFindings",
                    "ecr:DescribeImages",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:InitiateLayerUpload",
                    "ecr:PutImage",
                    "ecr:UploadLayerPart",
                ],
                _repositories(setup),
                sid="PushImages",
            ),
            # Under enhanced scanning ECR answers DescribeImageScanFindings from Amazon Inspector with the caller's
            # rights: the principal that uses enhanced scanning must be allowed the Inspector calls that retrieve the
            # findings, inspector2:ListFindings and ListCoverage (Amazon ECR user guide, "IAM permissions required for
            # enhanced scanning"). Reads only, no resource-level permissions; turning scanning on or off
            # (inspector2:Enable/Disable) is not the publish job's.
            statement(INSPECTOR_READS, "*", setup.in_region, sid="ScanFindings"),
            statement(["s3:ListBucket"], bucket, {"StringLike": {"s3:prefix": ["models/*"]}}, sid="ListModels"),
            statement(["s3:GetObject"], f"{bucket}/models/*", sid="ReadModels"),
        ]
    )


_EC2 = (
    "ec2:AllocateAddress",
    "ec2:AssociateRouteTable",
    "ec2:AttachInternetGateway",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateInternetGateway",
    "ec2:CreateNatGateway",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet",
    "ec2:CreateTags",
    "ec2:CreateVpc",
    "ec2:CreateVpcEndpoint",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteNatGateway",
    "ec2:DeleteRoute",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteTags",
    "ec2:DeleteVpc",
    "ec2:DeleteVpcEndpoints",
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAddressesAttribute",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribePrefixLists",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateAddress",
    "ec2:DisassociateRouteTable",
    "ec2:ModifySecurityGroupRules",
    "ec2:ModifySubnetAttribute",
    "ec2:ModifyVpcAttribute",
    "ec2:ModifyVpcEndpoint",
    "ec2:ReleaseAddress",
    "ec2:ReplaceRoute",
    "ec2:ReplaceRouteTableAssociation",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
    "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
)
_ELB = (
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DescribeCapacityReservation",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",  # stacks.ops verify-ecs
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:RemoveTags",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
)
_ECS = (
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:ListTagsForResource",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:TagResource",
    "application-autoscaling:UntagResource",
    "ecs:CreateCluster",
    "ecs:CreateService",
    "ecs:DeleteCluster",
    "ecs:DeleteService",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeClusters",
    "ecs:DescribeServiceDeployments",  # wait_for_steady_state (provider's ecs/service.go)
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:ListServiceDeployments",  # wait_for_steady_state (provider's ecs/service.go)
    "ecs:ListTagsForResource",
    "ecs:RegisterTaskDefinition",
    "ecs:TagResource",
    "ecs:UntagResource",
    "ecs:UpdateCluster",
    "ecs:UpdateService",
    # The namespace only: ECS creates and deletes the Service Connect services in it (servicediscovery:CreateService,
    # DeleteService, TagResource on services tagged AmazonECSManaged) with its service-linked role, whose policy
    # AmazonECSServiceRolePolicy (v24, 2026-04-22; AWS managed policy reference) grants them; ecs:CreateService has no
    # dependent actions in the service authorization reference. The caller needs no Cloud Map service calls.
    "servicediscovery:CreateHttpNamespace",
    "servicediscovery:DeleteNamespace",
    "servicediscovery:GetNamespace",
    "servicediscovery:GetOperation",
    "servicediscovery:ListTagsForResource",
    "servicediscovery:TagResource",
    "servicediscovery:UntagResource",
)
_EKS = (
    "eks:AssociateAccessPolicy",
    "eks:CreateAccessEntry",
    "eks:CreateAddon",
    "eks:CreateFargateProfile",
    "eks:DeleteAccessEntry",
    "eks:DeleteAddon",
    "eks:DeleteCluster",
    "eks:DeleteFargateProfile",
    "eks:DescribeAccessEntry",
    "eks:DescribeAddon",
    "eks:DescribeCluster",
    "eks:DescribeFargateProfile",
    "eks:DescribeUpdate",
    "eks:DisassociateAccessPolicy",
    "eks:ListAssociatedAccessPolicies",
    "eks:TagResource",
    "eks:UntagResource",
    "eks:UpdateAccessEntry",
    "eks:UpdateAddon",
    "eks:UpdateClusterConfig",
    "eks:UpdateClusterVersion",
)
_WAFV2 = (
    "wafv2:AssociateWebACL",
    "wafv2:CreateWebACL",
    "wafv2:DeleteWebACL",
    "wafv2:DisassociateWebACL",
    "wafv2:GetWebACL",
    "wafv2:GetWebACLForResource",
    "wafv2:ListTagsForResource",
    "wafv2:TagResource",
    "wafv2:UntagResource",
    "wafv2:UpdateWebACL",
)
#: Role writes IAM lets a policy hold to a permissions boundary (the `iam:PermissionsBoundary` condition key).
_IAM_BOUNDED_ROLE_WRITES = (
    "iam:CreateRole",
    "iam:DeleteRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
)
#: Managed-policy attachments, held to the boundary and to `MANAGED_POLICIES` (the `iam:PolicyARN` condition key).
_IAM_ATTACHMENTS = ("iam:AttachRolePolicy", "iam:DetachRolePolicy")
#: The rest of a role's life cycle; only ever on the stack's own roles, which all carry the boundary. No
#: iam:UpdateAssumeRolePolicy: IAM cannot hold a trust policy's content to anything, and a stack role whose trust
#: changes is replaced instead (`stacks.aws_context.stack_role`).
_IAM_ROLES = (
    "iam:DeleteRole",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:ListRolePolicies",
    "iam:TagRole",
    "iam:UntagRole",
)
#: What the deploy role does with the cluster's OIDC provider (created with the stack's tags, changed only so tagged).
_OIDC_PROVIDER = (
    "iam:DeleteOpenIDConnectProvider",
    "iam:GetOpenIDConnectProvider",
    "iam:TagOpenIDConnectProvider",
    "iam:UntagOpenIDConnectProvider",
)
_S3_BUCKETS = (
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLogging",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
)


#: The services that create a service-linked role on first use (with the caller's iam:CreateServiceLinkedRole) and
#: look it up first (with the caller's iam:GetRole).
SERVICE_LINKED_ROLES = (
    "ecs.amazonaws.com",
    "ecs.application-autoscaling.amazonaws.com",
    "eks.amazonaws.com",
    "eks-fargate.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
)


def stack_role_arns(ctx: AwsContext, *kinds: str) -> list[str]:
    """The ARNs of the stack's roles of the given kinds (`stacks.aws_context.STACK_ROLES`; all when none is named):
    `role/<project>-<env>/<project>-<env>-<kind>-<autoname suffix>`."""
    return [ctx.arn("iam", f"role{ctx.role_path}{ctx.stack}-{kind}-*", region=False) for kind in kinds or STACK_ROLES]


def _role_statements(ctx: AwsContext) -> list[dict[str, Any]]:
    """Create, change and pass the stack's own roles: by name, each with the workload boundary, the only managed
    policy they carry, each passed only to the services that assume it."""
    bounded = {"ArnEquals": {"iam:PermissionsBoundary": ctx.boundary_arn}}
    managed = [ctx.managed_policy_arn(policy) for policy in MANAGED_POLICIES]
    passed: dict[tuple[str, ...], list[str]] = {}
    for kind, services in STACK_ROLES.items():
        if services:
            passed.setdefault(services, []).append(kind)
    return [
        statement(_IAM_BOUNDED_ROLE_WRITES, stack_role_arns(ctx), bounded, sid="BoundedRoles"),
        statement(
            _IAM_ATTACHMENTS,
            stack_role_arns(ctx, "eks-cluster"),
            {"ArnEquals": {**bounded["ArnEquals"], "iam:PolicyARN": managed}},
            sid="ManagedPolicies",
        ),
        statement(_IAM_ROLES, stack_role_arns(ctx), sid="Roles"),
        *(
            statement(
                ["iam:PassRole"],
                stack_role_arns(ctx, *kinds),
                {"StringEquals": {"iam:PassedToService": list(services)}},
                sid=f"PassRoles{index}",
            )
            for index, (services, kinds) in enumerate(sorted(passed.items()))
        ),
    ]


#: Each create of the network and the one resource type it makes (tagged with the stack in the request); whatever
#: else a create names (the VPC of a subnet, the group of a rule) must already be the stack's.
EC2_CREATES: dict[str, tuple[str, ...]] = {
    "vpc": ("ec2:CreateVpc",),
    "internet-gateway": ("ec2:CreateInternetGateway",),
    "route-table": ("ec2:CreateRouteTable",),
    "subnet": ("ec2:CreateSubnet",),
    "security-group": ("ec2:CreateSecurityGroup",),
    "elastic-ip": ("ec2:AllocateAddress",),
    "natgateway": ("ec2:CreateNatGateway",),
    "vpc-endpoint": ("ec2:CreateVpcEndpoint",),
    "security-group-rule": ("ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress"),
}
#: The rules of the VPC's default security group, which AWS creates untagged and the root program empties
#: (stacks/network.py): revoking is all the deploy role may do to a group that carries no Project tag.
_DEFAULT_GROUP = ("ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress")


def _network_statements(setup: CiSetup) -> list[dict[str, Any]]:
    """EC2 by the stack's tags: reads anywhere in the region; creates only with the stack's Project and Environment tags
    in the request, and only of the resource type each create makes; every other write (and a create's references to
    existing resources) only on resources so tagged. Another workload's VPC, subnets, routes and security groups are out
    of reach; tagging one is refused (tags are only added while creating, or to the stack's own resources)."""
    ctx = setup.ctx
    requested = tag_keys("aws:RequestTag", setup.owner)
    owned = {"StringEquals": tag_keys("aws:ResourceTag", setup.owner)}
    creates = sorted(a for actions in EC2_CREATES.values() for a in actions)
    reads = [a for a in _EC2 if a.startswith("ec2:Describe")]
    return [
        statement(reads, "*", setup.in_region, sid="NetworkReads"),
        *(
            statement(actions, ctx.arn("ec2", f"{kind}/*"), {"StringEquals": requested}, sid=f"New{index}")
            for index, (kind, actions) in enumerate(EC2_CREATES.items())
        ),
        statement(
            ["ec2:CreateTags"],
            ctx.arn("ec2", "*"),
            {"StringEquals": {**requested, "ec2:CreateAction": [a.split(":")[1] for a in creates]}},
            sid="TagOnCreate",
        ),
        statement([a for a in _EC2 if a not in reads], ctx.arn("ec2", "*"), owned, sid="OwnNetwork"),
        statement(
            _DEFAULT_GROUP,
            ctx.arn("ec2", "security-group/*"),
            {"Null": {"aws:ResourceTag/Project": "true"}},
            sid="DefaultSecurityGroup",
        ),
        # The address of a NAT gateway is let go from the gateway's interface, which AWS makes untagged; the address
        # itself must be the stack's (OwnNetwork).
        statement(["ec2:DisassociateAddress"], ctx.arn("ec2", "network-interface/*"), sid="NatInterface"),
    ]


def _load_balancer_statements(setup: CiSetup) -> list[dict[str, Any]]:
    """ELB by the stack's names (`<project>-<env>-*`, Pulumi's autonames): load balancers and target groups created only
    with the stack's tags, listeners and rules created on them, everything else on them only; reads (no resource-level
    permissions) anywhere in the region."""
    ctx, name = setup.ctx, setup.name
    requested = {"StringEquals": tag_keys("aws:RequestTag", setup.owner)}

    def elb(resource: str) -> str:
        return ctx.arn("elasticloadbalancing", resource)

    # `app` and `net` alike (IAM names both kinds for these actions; the stacks make application load balancers).
    own = [
        elb(f"targetgroup/{name}-*/*"),
        *(
            elb(f"{kind}/{balancer}/{name}-*/{ids}")
            for kind, ids in (("loadbalancer", "*"), ("listener", "*/*"), ("listener-rule", "*/*/*"))
            for balancer in ("app", "net")
        ),
    ]
    reads = [a for a in _ELB if ":Describe" in a]
    creates = ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]
    return [
        statement(reads, "*", setup.in_region, sid="LoadBalancerReads"),
        statement(
            creates,
            [elb("loadbalancer/app/*/*"), elb("loadbalancer/net/*/*"), elb("targetgroup/*/*")],
            requested,
            sid="NewLoadBalancers",
        ),
        statement([a for a in _ELB if a not in reads and a not in creates], own, sid="LoadBalancers"),
    ]


#: Application Auto Scaling's writes, which IAM lets a policy hold to a service namespace and a scalable dimension
#: (`application-autoscaling:service-namespace`, `...:scalable-dimension`; service authorization reference). Nothing
#: narrower: a scalable target's ARN is random (`scalable-target/<id>`), no condition key names its resource id, and AWS
#: supports tags in policies only partially (user guide, "How Application Auto Scaling works with IAM").
_SCALING_WRITES = (
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:RegisterScalableTarget",
)
#: The only targets the stacks scale: an ECS service's desired count (stacks/ecs/service.py).
ECS_SCALING = {
    "application-autoscaling:service-namespace": "ecs",
    "application-autoscaling:scalable-dimension": "ecs:service:DesiredCount",
}


def _ecs_statements(setup: CiSetup) -> list[dict[str, Any]]:
    """ECS on the stack's cluster (`<project>-<env>-ecs`), its services and task definition families; the task
    definition calls without resource-level permissions anywhere in the region; Application Auto Scaling's writes on
    ECS services' desired counts only (any ECS service of the region: docs/deploy.md, "What stays possible"), its
    reads and tags anywhere in the region; the Service Connect namespace by its calls (Cloud Map has no tag
    conditions)."""
    ctx, cluster = setup.ctx, f"{setup.name}-ecs"
    anywhere = ("ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition")
    own = [
        ctx.arn("ecs", f"cluster/{cluster}"),
        ctx.arn("ecs", f"service/{cluster}/*"),
        ctx.arn("ecs", f"service-deployment/{cluster}/*"),
        ctx.arn("ecs", f"task-definition/{setup.name}-*:*"),
    ]
    ecs = [a for a in _ECS if a.startswith("ecs:")]
    scaling = [a for a in _ECS if a in _SCALING_WRITES]
    return [
        statement([a for a in ecs if a not in anywhere], own, sid="Ecs"),
        statement(
            [*anywhere, *(a for a in _ECS if not a.startswith("ecs:") and a not in scaling)],
            "*",
            setup.in_region,
            sid="EcsAnywhere",
        ),
        statement(
            scaling,
            "*",
            {"StringEquals": {**setup.in_region["StringEquals"], **ECS_SCALING}},
            sid="EcsScaling",
        ),
    ]


def deploy_policy(setup: CiSetup) -> str:
    """`pulumi up` of the root, ECS and EKS stacks: the resource kinds the programs declare, and no others."""
    ctx = setup.ctx
    return policy_json(
        [
            *_state(setup, write=True),
            # The EKS program resolves its caller's session to the role (aws.iam.get_session_context: iam:GetRole).
            statement(["iam:GetRole"], ctx.arn("iam", f"role/{setup.role_name('deploy')}", region=False), sid="Self"),
            *_network_statements(setup),
            *_load_balancer_statements(setup),
            *_ecs_statements(setup),
            *_storage_statements(setup),
            *_identity_statements(setup),
            *_edge_and_cluster_statements(setup),
        ]
    )


def _storage_statements(setup: CiSetup) -> list[dict[str, Any]]:
    """The stack's ECR repositories, its two buckets and its log groups."""
    ctx, name = setup.ctx, setup.name
    log_groups = [ctx.arn("logs", f"log-group:{prefix}{name}-*") for prefix in ("/ecs/", "/eks/", "/aws/eks/")]
    return [
        statement(
            [
                "ecr:CreateRepository",
                "ecr:DeleteLifecyclePolicy",
                "ecr:DeleteRepository",
                "ecr:DescribeRepositories",
                "ecr:GetLifecyclePolicy",
                "ecr:ListTagsForResource",
                "ecr:PutImageScanningConfiguration",
                "ecr:PutImageTagMutability",
                "ecr:PutLifecyclePolicy",
                "ecr:TagResource",
                "ecr:UntagResource",
            ],
            _repositories(setup),
            sid="Repositories",
        ),
        statement(
            _S3_BUCKETS, [setup.bucket_arn(f"{name}-{kind}-*") for kind in ("models", "access-logs")], sid="Buckets"
        ),
        statement(["logs:DescribeLogGroups"], "*", sid="ListLogGroups"),
        statement(
            [
                "logs:CreateLogGroup",
                "logs:DeleteLogGroup",
                "logs:DeleteRetentionPolicy",
                "logs:ListTagsForResource",
                "logs:PutRetentionPolicy",
                "logs:TagResource",
                "logs:UntagResource",
            ],
            log_groups,
            sid="LogGroups",
        ),
    ]


def _identity_statements(setup: CiSetup) -> list[dict[str, Any]]:
    """The stack's roles, the service-linked roles, the scaling alarms and the cluster's OIDC provider."""
    ctx, name = setup.ctx, setup.name
    oidc_providers = ctx.arn("iam", f"oidc-provider/oidc.eks.{setup.region}.amazonaws.com/id/*", region=False)
    linked_roles = [
        ctx.arn("iam", f"role/aws-service-role/{service}/*", region=False) for service in SERVICE_LINKED_ROLES
    ]
    return [
        # The stack's roles only (path /<project>-<env>/, the names the programs give them; the CI roles live at /
        # and are out of reach), each created or changed with the workload boundary: no role the deploy role makes
        # can do more than a workload of this stack.
        *_role_statements(ctx),
        statement(
            ["iam:CreateServiceLinkedRole"],
            linked_roles,
            {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED_ROLES)}},
            sid="ServiceLinkedRoles",
        ),
        statement(["iam:GetRole"], linked_roles, sid="LookUpServiceLinkedRoles"),
        # Application Auto Scaling creates and removes a target-tracking policy's alarms with the caller's rights.
        statement(
            ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm"],
            ctx.arn("cloudwatch", f"alarm:TargetTracking-service/{name}-ecs/*"),
            sid="ScalingAlarms",
        ),
        # The EKS cluster's OIDC provider: created with this stack's tags, changed and deleted only so tagged (the
        # issuer's id is random: a name cannot narrow it further).
        statement(
            ["iam:CreateOpenIDConnectProvider", "iam:TagOpenIDConnectProvider"],
            oidc_providers,
            {
                "StringEquals": tag_keys("aws:RequestTag", setup.owner),
                "StringEqualsIfExists": tag_keys("aws:ResourceTag", setup.owner),
            },
            sid="CreateClusterOidc",
        ),
        statement(
            _OIDC_PROVIDER,
            oidc_providers,
            {"StringEquals": tag_keys("aws:ResourceTag", setup.owner)},
            sid="ClusterOidc",
        ),
    ]


def _edge_and_cluster_statements(setup: CiSetup) -> list[dict[str, Any]]:
    """The ECS load balancer's optional WAF web ACL, and the EKS cluster."""
    ctx, name = setup.ctx, setup.name
    cluster = f"{name}-eks"
    return [
        # The optional WAF web ACL of the ECS load balancer (autonamed `<project>-<env>-ecs-waf-*`).
        statement(
            _WAFV2,
            [
                ctx.arn("wafv2", f"regional/webacl/{name}-*/*"),
                ctx.arn("elasticloadbalancing", f"loadbalancer/app/{name}-*/*"),
            ],
            sid="WebAcl",
        ),
        # No resource-level permissions (AWS's service authorization reference): any load balancer, this region.
        statement(["elasticloadbalancing:SetWebAcl"], "*", setup.in_region, sid="LoadBalancerWebAcl"),
        statement(["eks:CreateCluster", "eks:DescribeAddonVersions"], "*", setup.in_region, sid="CreateCluster"),
        statement(
            _EKS,
            [
                ctx.arn("eks", f"cluster/{cluster}"),
                ctx.arn("eks", f"fargateprofile/{cluster}/*"),
                ctx.arn("eks", f"addon/{cluster}/*"),
                ctx.arn("eks", f"access-entry/{cluster}/*"),
            ],
            sid="Cluster",
        ),
    ]


#: IAM's size limit of one managed policy (characters, whitespace not counted); a role may carry 10 of them.
MAX_POLICY_CHARS = 6144


def managed_documents(document: str) -> list[dict[str, Any]]:
    """A permission policy split, statement by statement, into managed-policy documents that each fit IAM's limit (an
    inline role policy may hold only 10,240 characters in all: the deploy role's needs more)."""
    parts: list[list[dict[str, Any]]] = [[]]
    for item in json.loads(document)["Statement"]:
        candidate = [*parts[-1], item]
        if parts[-1] and _chars({"Version": "2012-10-17", "Statement": candidate}) > MAX_POLICY_CHARS:
            parts.append([item])
        else:
            parts[-1] = candidate
    return [{"Version": "2012-10-17", "Statement": part} for part in parts]


def _chars(document: dict[str, Any]) -> int:
    return len("".join(json.dumps(document).split()))


def ci_roles(setup: CiSetup) -> dict[str, dict[str, Any]]:
    """Role name -> its subject's trust policy, permission policy and session limit."""
    subjects = {"preview": "pull_request", "publish": f"environment:{setup.environment}"}
    subjects["deploy"] = subjects["publish"]
    permissions = {"preview": preview_policy, "publish": publish_policy, "deploy": deploy_policy}
    return {
        setup.role_name(job): {
            "maxSessionDuration": MAX_SESSION_SECONDS,
            "trustPolicy": json.loads(trust_policy(setup, subject)),
            "permissionPolicies": managed_documents(permissions[job](setup)),
        }
        for job, subject in subjects.items()
    }
