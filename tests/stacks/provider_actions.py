"""What the CI deploy role must be allowed for each resource type the programs make: the AWS API operations the Pulumi
AWS provider calls to create, read, update, tag, wait for and delete it, and what the service checks on the caller
when it is created (the role it is passed, its service-linked role, the alarms Application Auto Scaling creates for a
target-tracking policy).

Derived from the source of the Terraform AWS provider that the pinned pulumi-aws bundles (`SOURCE_FILES` names the
file of hashicorp/terraform-provider-aws each type's calls were read from; `PROVIDER_VERSION` says which version).
Derived call by call, with the functions named: the ECS service, the ECS task definition, the ECR repository, the
WAFv2 web ACL and its association. Listed by hand from the same files (not yet re-read function by function): the
EC2 network types, ELBv2, IAM, S3, CloudWatch Logs, Service Discovery, Application Auto Scaling and the EKS types.
Where a resource's create/update waits on more than its own describe call, the waiter's calls are listed by the
function that makes them (the ECS service's `wait_for_steady_state` is the case that was missed once: it polls the
service's deployments, not only the service). An operation becomes an IAM action by `iam_action` (the service's
prefix and the operation's name, apart from the S3 operations IAM names differently).

The EKS cluster is pulumi-eks's component (`eks:index:Cluster`), whose children the mocks never see:
`tests/stacks/eks_component.py` derives them from pulumi-eks's source (nodejs/eks/cluster/cluster.ts at the commit it
names, matching the locked 4.4.0's schema) for the inputs the program gives it, and the checks below treat each child
like a resource of the program's own: the cluster, the Fargate profile, CoreDNS as an add-on, the OIDC provider, the
access entries and their policy associations; its look-ups (`eks_component.INVOKES`: route tables, add-on versions)
are checked against the deploy and the preview role, since they run at every preview.

Each action names the resource it is authorized on, as a template filled from the replayed resource: `{arn}` (its
real ARN), `{inputs[...]}` (its real inputs), `{account}`, `{region}`, `{name}` (`<project>-<env>`), `{cluster}`.
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


#: The provider the pinned pulumi-aws bundles. pulumi-aws 7.51.1 (uv.lock) ships a bridged build of
#: terraform-provider-aws v6.66 or later: its SDK has `aws.msk.Channel` and the ECS lifecycle hook's
#: `timeout_configuration`, both new in v6.66.0 (2026-09-21); pulumi-aws 7.43.0 bundled v6.61.0 (its release notes).
#: The ECS calls below were read from `internal/service/ecs/service.go` as stored in the search index (the
#: `wait_for_steady_state` code that polls deployments has been in the provider since v6.4.0, July 2025).
PROVIDER_VERSION = "terraform-provider-aws >= 6.66.0 (bundled by pulumi-aws 7.51.1)"

#: S3 operations whose IAM action has another name (AWS's service authorization reference for S3).
_S3_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "DeleteObjects": "s3:DeleteObject",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
}


def iam_action(prefix: str, operation: str) -> str:
    """The IAM action of one API operation (`ecs`, `ListServiceDeployments` -> `ecs:ListServiceDeployments`)."""
    return _S3_ACTIONS.get(operation, f"{prefix}:{operation}") if prefix == "s3" else f"{prefix}:{operation}"


def calls(resource: str, prefix: str, *operations: str) -> tuple[Need, ...]:
    """The needs of API operations the provider source calls, all on one resource."""
    return on(resource, *(iam_action(prefix, operation) for operation in operations))


#: internal/service/ecs/service.go, by the function that makes each call:
#: resourceServiceCreate -> retryServiceCreate (CreateService); resourceServiceRead ->
#: findServiceByTwoPartKeyWaitForActive (DescribeServices, with tags); resourceServiceUpdate (UpdateService) and the
#: tags_gen.go updateTags (TagResource, UntagResource); resourceServiceDelete (UpdateService to drain, DeleteService,
#: waitServiceInactive: DescribeServices); with wait_for_steady_state, waitServiceStable ->
#: statusServiceWaitForStable -> findPrimaryDeploymentARN -> findServiceDeploymentBriefs (ListServiceDeployments,
#: paged) and findDeploymentStatus -> findServiceDeployments (DescribeServiceDeployments).
ECS_SERVICE_OPERATIONS = (
    "CreateService",
    "DescribeServices",
    "UpdateService",
    "TagResource",
    "UntagResource",
    "DeleteService",
    "ListServiceDeployments",
    "DescribeServiceDeployments",
)

#: internal/service/ecs/task_definition.go, by function: resourceTaskDefinitionCreate (RegisterTaskDefinition, tags in
#: the request), resourceTaskDefinitionRead (DescribeTaskDefinition with Include TAGS), resourceTaskDefinitionUpdate
#: (only tags: UpdateTags -> TagResource, UntagResource), resourceTaskDefinitionDelete (DeregisterTaskDefinition,
#: unless skip_destroy). Read from the newest copy the search index holds (commit f1750b86, an aws-sdk-go v1 era
#: version: older than the bundled provider; the operations' names are the API's and have not changed since).
ECS_TASK_DEFINITION_OPERATIONS = (
    "RegisterTaskDefinition",
    "DescribeTaskDefinition",
    "TagResource",
    "UntagResource",
    "DeregisterTaskDefinition",
)

#: internal/service/ecr/repository.go (the index's copy, commit 0072eea2, same era): resourceRepositoryCreate
#: (CreateRepository, tags in the request), resourceRepositoryRead (DescribeRepositories, retried while new; ListTags:
#: ListTagsForResource), resourceRepositoryUpdate (PutImageTagMutability, PutImageScanningConfiguration, UpdateTags:
#: TagResource, UntagResource), resourceRepositoryDelete (DeleteRepository, then DescribeRepositories until gone).
ECR_REPOSITORY_OPERATIONS = (
    "CreateRepository",
    "DescribeRepositories",
    "ListTagsForResource",
    "PutImageTagMutability",
    "PutImageScanningConfiguration",
    "TagResource",
    "UntagResource",
    "DeleteRepository",
)

ROLE = "arn:aws:iam::{account}:role/{name}/{inputs[role]}"
#: The stack's roles carry its workload boundary; IAM puts it in `iam:PermissionsBoundary` on these calls.
BOUNDED = {"iam:PermissionsBoundary": "{boundary}"}


def bounded(resource: str, *actions: str) -> tuple[Need, ...]:
    """Role writes IAM authorizes against the role's permissions boundary."""
    return tuple(Need(action, resource, BOUNDED) for action in actions)


#: The stack's tags (Project, Environment) as a create request carries them, and as an existing resource has them.
REQUEST_TAGS = {"aws:RequestTag/Project": "{project}", "aws:RequestTag/Environment": "{environment}"}
RESOURCE_TAGS = {"aws:ResourceTag/Project": "{project}", "aws:ResourceTag/Environment": "{environment}"}


def ec2_arn(kind: str, resource_id: str) -> str:
    return f"arn:aws:ec2:{{region}}:{{account}}:{kind}/{resource_id}"


def created(resource: str, action: str) -> tuple[Need, ...]:
    """An EC2 create: the new resource, its tags in the request, and the tagging IAM authorizes with the create
    (`ec2:CreateAction`)."""
    return (
        *requested(resource, action),
        Need("ec2:CreateTags", resource, {**REQUEST_TAGS, "ec2:CreateAction": action.split(":")[1]}),
    )


def scaled(*operations: str) -> tuple[Need, ...]:
    """Application Auto Scaling writes: every request names its service namespace and scalable dimension (the
    `application-autoscaling:service-namespace` and `:scalable-dimension` condition keys)."""
    context = {
        "application-autoscaling:service-namespace": "{inputs[serviceNamespace]}",
        "application-autoscaling:scalable-dimension": "{inputs[scalableDimension]}",
    }
    return tuple(Need(f"application-autoscaling:{operation}", "*", context) for operation in operations)


def requested(resource: str, *actions: str) -> tuple[Need, ...]:
    """Creates authorized by the stack's tags in the request."""
    return tuple(Need(action, resource, REQUEST_TAGS) for action in actions)


def owned(resource: str, *actions: str) -> tuple[Need, ...]:
    """EC2 calls on a resource of the stack that exists already (it carries the stack's tags)."""
    return tuple(Need(action, resource, RESOURCE_TAGS) for action in actions)


VPC = ec2_arn("vpc", "{inputs[vpcId]}")
SUBNET = ec2_arn("subnet", "{inputs[subnetId]}")
GROUP = ec2_arn("security-group", "{inputs[securityGroupId]}")
EC2_TAGS = ("ec2:CreateTags", "ec2:DeleteTags")

BUCKET = "arn:aws:s3:::{inputs[bucket]}"
REPOSITORY = "arn:aws:ecr:{region}:{account}:repository/{inputs[repository]}"
CLUSTER = "arn:aws:eks:{region}:{account}:cluster/{cluster}"
ADDON = "arn:aws:eks:{region}:{account}:addon/{cluster}/{inputs[addonName]}/0ac7c0a2-1b2c-3d4e-5f60-718293a4b5c6"
ACCESS_ENTRY = "arn:aws:eks:{region}:{account}:access-entry/{cluster}/role/{account}/{name}-github-deploy/4ec7c0a2"
#: The alarms a target-tracking policy creates are named after the scalable target.
ALARM = "arn:aws:cloudwatch:{region}:{account}:alarm:TargetTracking-{inputs[resourceId]}-AlarmHigh-0a1b2c3d"
#: Tags are added and removed on the resource itself; DescribeTags has no resource-level permissions.
ELB_TAGS = ("elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags")
#: A deployment of an ECS service (`{resource_path}`: `<cluster>/<service>` of the service's ARN).
SERVICE_DEPLOYMENT = "arn:aws:ecs:{region}:{account}:service-deployment/{resource_path}/0a1b2c3d4e5f"

PROVIDER_ACTIONS: dict[str, tuple[Need, ...]] = {
    "aws:ec2/vpc:Vpc": created("{arn}", "ec2:CreateVpc")
    + owned("{arn}", "ec2:ModifyVpcAttribute", "ec2:DescribeVpcAttribute", "ec2:DeleteVpc", *EC2_TAGS)
    + on(
        "*",
        "ec2:DescribeVpcs",
        "ec2:DescribeNetworkAcls",  # the VPC's default network ACL, read with the VPC
        "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroups",
    ),
    # AWS makes the default group untagged; the provider revokes its rules (no tags given, none added).
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": on("*", "ec2:DescribeSecurityGroups")
    + on("{arn}", "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"),
    "aws:ec2/internetGateway:InternetGateway": created("{arn}", "ec2:CreateInternetGateway")
    + owned("{arn}", "ec2:AttachInternetGateway", "ec2:DetachInternetGateway", "ec2:DeleteInternetGateway", *EC2_TAGS)
    + owned(VPC, "ec2:AttachInternetGateway", "ec2:DetachInternetGateway")
    + on("*", "ec2:DescribeInternetGateways"),
    "aws:ec2/routeTable:RouteTable": created("{arn}", "ec2:CreateRouteTable")
    + owned(VPC, "ec2:CreateRouteTable")
    + owned("{arn}", "ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute", "ec2:DeleteRouteTable", *EC2_TAGS)
    + on("*", "ec2:DescribeRouteTables"),
    "aws:ec2/subnet:Subnet": created("{arn}", "ec2:CreateSubnet")
    + owned(VPC, "ec2:CreateSubnet")
    + owned("{arn}", "ec2:ModifySubnetAttribute", "ec2:DeleteSubnet", *EC2_TAGS)
    + on("*", "ec2:DescribeSubnets", "ec2:DescribeNetworkInterfaces"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": owned(
        ec2_arn("route-table", "{inputs[routeTableId]}"),
        "ec2:AssociateRouteTable",
        "ec2:ReplaceRouteTableAssociation",  # a changed route table is swapped in place
        "ec2:DisassociateRouteTable",
    )
    + owned(SUBNET, "ec2:AssociateRouteTable", "ec2:ReplaceRouteTableAssociation", "ec2:DisassociateRouteTable")
    + on("*", "ec2:DescribeRouteTables"),
    "aws:ec2/eip:Eip": created(ec2_arn("elastic-ip", "{id}"), "ec2:AllocateAddress")
    + owned(ec2_arn("elastic-ip", "{id}"), "ec2:DisassociateAddress", "ec2:ReleaseAddress", *EC2_TAGS)
    # The NAT gateway's interface (AWS's, untagged) the address is let go from.
    + on(ec2_arn("network-interface", "eni-0a1b2c3d4e5f60718"), "ec2:DisassociateAddress")
    + on("*", "ec2:DescribeAddresses", "ec2:DescribeAddressesAttribute"),
    "aws:ec2/natGateway:NatGateway": created(ec2_arn("natgateway", "{id}"), "ec2:CreateNatGateway")
    + owned(SUBNET, "ec2:CreateNatGateway")
    + owned(ec2_arn("elastic-ip", "{inputs[allocationId]}"), "ec2:CreateNatGateway")
    + owned(ec2_arn("natgateway", "{id}"), "ec2:DeleteNatGateway", *EC2_TAGS)
    + on("*", "ec2:DescribeNatGateways"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": created("{arn}", "ec2:CreateVpcEndpoint")
    + owned(VPC, "ec2:CreateVpcEndpoint")
    + owned(ec2_arn("route-table", "{inputs[routeTableIds][0]}"), "ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint")
    + owned("{arn}", "ec2:ModifyVpcEndpoint", "ec2:DeleteVpcEndpoints", *EC2_TAGS)
    + on("*", "ec2:DescribeVpcEndpoints", "ec2:DescribePrefixLists"),
    "aws:ec2/securityGroup:SecurityGroup": created("{arn}", "ec2:CreateSecurityGroup")
    + owned(VPC, "ec2:CreateSecurityGroup")
    # the allow-all egress rule AWS adds is revoked once the group exists (tagged)
    + owned("{arn}", "ec2:RevokeSecurityGroupEgress", "ec2:DeleteSecurityGroup", *EC2_TAGS)
    + on("*", "ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": created("{arn}", "ec2:AuthorizeSecurityGroupIngress")
    + owned(
        GROUP, "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:ModifySecurityGroupRules"
    )
    + owned("{arn}", "ec2:ModifySecurityGroupRules", *EC2_TAGS)
    + on("*", "ec2:DescribeSecurityGroupRules"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": created("{arn}", "ec2:AuthorizeSecurityGroupEgress")
    + owned(GROUP, "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:ModifySecurityGroupRules")
    + owned("{arn}", "ec2:ModifySecurityGroupRules", *EC2_TAGS)
    + on("*", "ec2:DescribeSecurityGroupRules"),
    "aws:ecr/repository:Repository": calls("{arn}", "ecr", *ECR_REPOSITORY_OPERATIONS),
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
        "logs:UntagResource",
        "logs:DeleteLogGroup",
    )
    + on("*", "logs:DescribeLogGroups"),
    "aws:iam/role:Role": bounded("{arn}", "iam:CreateRole", "iam:PutRolePermissionsBoundary")
    + on(
        "{arn}",
        "iam:GetRole",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
        "iam:DeleteRole",  # no UpdateAssumeRolePolicy: a new trust policy replaces the role (replaceOnChanges)
    ),
    "aws:iam/rolePolicy:RolePolicy": bounded(ROLE, "iam:PutRolePolicy", "iam:DeleteRolePolicy")
    + on(ROLE, "iam:GetRolePolicy"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": tuple(
        Need(action, ROLE, {**BOUNDED, "iam:PolicyARN": "{inputs[policyArn]}"})
        for action in ("iam:AttachRolePolicy", "iam:DetachRolePolicy")
    )
    + on(ROLE, "iam:ListAttachedRolePolicies"),
    # Created with its tags in the request (and iam:TagOpenIDConnectProvider for them), then read, retagged and
    # deleted as a tagged resource.
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": tuple(
        Need(action, "{arn}", REQUEST_TAGS)
        for action in ("iam:CreateOpenIDConnectProvider", "iam:TagOpenIDConnectProvider")
    )
    + tuple(
        Need(action, "{arn}", RESOURCE_TAGS)
        for action in (
            "iam:GetOpenIDConnectProvider",
            "iam:TagOpenIDConnectProvider",
            "iam:UntagOpenIDConnectProvider",
            "iam:DeleteOpenIDConnectProvider",
        )
    ),
    "aws:servicediscovery/httpNamespace:HttpNamespace": on(
        "*",
        "servicediscovery:CreateHttpNamespace",
        "servicediscovery:GetOperation",
        "servicediscovery:GetNamespace",
        "servicediscovery:ListTagsForResource",
        "servicediscovery:TagResource",
        "servicediscovery:UntagResource",
        "servicediscovery:DeleteNamespace",
    ),
    "aws:ecs/cluster:Cluster": on(
        "{arn}",
        "ecs:CreateCluster",
        "ecs:DescribeClusters",
        "ecs:UpdateCluster",
        "ecs:ListTagsForResource",
        "ecs:TagResource",
        "ecs:UntagResource",
        "ecs:DeleteCluster",
    )
    + service_linked_role("ecs.amazonaws.com", "AWSServiceRoleForECS"),
    "aws:ecs/taskDefinition:TaskDefinition": calls(
        "{arn}", "ecs", "RegisterTaskDefinition", "TagResource", "UntagResource"
    )
    + calls("*", "ecs", "DescribeTaskDefinition", "DeregisterTaskDefinition")
    + passes("{inputs[executionRoleArn]}", "ecs-tasks.amazonaws.com")
    + passes("{inputs[taskRoleArn]}", "ecs-tasks.amazonaws.com"),
    "aws:ecs/service:Service": calls("{arn}", "ecs", *ECS_SERVICE_OPERATIONS)
    + calls(SERVICE_DEPLOYMENT, "ecs", "DescribeServiceDeployments"),
    "aws:appautoscaling/target:Target": scaled("RegisterScalableTarget", "DeregisterScalableTarget")
    + on(
        "*",
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:ListTagsForResource",
        "application-autoscaling:TagResource",
        "application-autoscaling:UntagResource",  # a tag key removed from the stack (tags_gen.go updateTags)
    )
    + on("arn:aws:ecs:{region}:{account}:{inputs[resourceId]}", "ecs:DescribeServices", "ecs:UpdateService")
    + service_linked_role(
        "ecs.application-autoscaling.amazonaws.com", "AWSServiceRoleForApplicationAutoScaling_ECSService"
    ),
    "aws:appautoscaling/policy:Policy": scaled("PutScalingPolicy", "DeleteScalingPolicy")
    + on("*", "application-autoscaling:DescribeScalingPolicies")
    + on(ALARM, "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"),
    "aws:lb/loadBalancer:LoadBalancer": requested("{arn}", "elasticloadbalancing:CreateLoadBalancer")
    + on(
        "*",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeCapacityReservation",  # read with every ALB
        "elasticloadbalancing:DescribeTags",
    )
    + on(
        "{arn}",
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:SetSecurityGroups",
        "elasticloadbalancing:SetSubnets",
        "elasticloadbalancing:DeleteLoadBalancer",
        *ELB_TAGS,
    )
    + service_linked_role("elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing"),
    "aws:lb/targetGroup:TargetGroup": requested("{arn}", "elasticloadbalancing:CreateTargetGroup")
    + on(
        "*",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTags",
    )
    + on(
        "{arn}",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:ModifyTargetGroup",
        "elasticloadbalancing:DeleteTargetGroup",
        *ELB_TAGS,
    ),
    "aws:lb/listener:Listener": on("{inputs[loadBalancerArn]}", "elasticloadbalancing:CreateListener")
    + on(
        "*",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:DescribeTags",
    )
    + on("{arn}", "elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener", *ELB_TAGS),
    "aws:lb/listenerRule:ListenerRule": on("{inputs[listenerArn]}", "elasticloadbalancing:CreateRule")
    + on("*", "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTags")
    + on("{arn}", "elasticloadbalancing:ModifyRule", "elasticloadbalancing:DeleteRule", *ELB_TAGS),
    "aws:eks/cluster:Cluster": on(
        "{arn}",
        "eks:CreateCluster",
        "eks:DescribeCluster",
        "eks:TagResource",
        "eks:UntagResource",
        "eks:UpdateClusterConfig",
        "eks:UpdateClusterVersion",
        "eks:DescribeUpdate",
        "eks:DeleteCluster",
    )
    + passes("{inputs[roleArn]}", "eks.amazonaws.com")
    + service_linked_role("eks.amazonaws.com", "AWSServiceRoleForAmazonEKS"),
    "aws:eks/fargateProfile:FargateProfile": on(CLUSTER, "eks:CreateFargateProfile")
    + on("{arn}", "eks:DescribeFargateProfile", "eks:TagResource", "eks:UntagResource", "eks:DeleteFargateProfile")
    # Which of the two EKS names as the service the pod role is passed to is not documented: both are allowed.
    + passes("{inputs[podExecutionRoleArn]}", "eks.amazonaws.com", "eks-fargate-pods.amazonaws.com")
    + service_linked_role("eks-fargate.amazonaws.com", "AWSServiceRoleForAmazonEKSForFargate"),
    "aws:eks/addon:Addon": on(CLUSTER, "eks:CreateAddon")
    + on(ADDON, "eks:DescribeAddon", "eks:UpdateAddon", "eks:TagResource", "eks:UntagResource", "eks:DeleteAddon")
    + on("*", "eks:DescribeAddonVersions"),
    # web_acl.go: resourceWebACLCreate (CreateWebACL, tags in the request), resourceWebACLRead -> findWebACL
    # (GetWebACL; tags_gen.go listTags: ListTagsForResource), resourceWebACLUpdate (UpdateWebACL, updateTags:
    # TagResource, UntagResource), resourceWebACLDelete (DeleteWebACL).
    "aws:wafv2/webAcl:WebAcl": calls(
        "{arn}",
        "wafv2",
        "CreateWebACL",
        "GetWebACL",
        "UpdateWebACL",
        "DeleteWebACL",
        "ListTagsForResource",
        "TagResource",
        "UntagResource",
    ),
    # web_acl_association.go: AssociateWebACL (retried while WAF settles), findWebACLByResourceARN
    # (GetWebACLForResource), DisassociateWebACL; associating a load balancer also needs the caller's
    # elasticloadbalancing:SetWebAcl on it (AWS's WAF developer guide, "Associating a web ACL").
    "aws:wafv2/webAclAssociation:WebAclAssociation": on("{inputs[webAclArn]}", "wafv2:AssociateWebACL")
    + calls("{inputs[resourceArn]}", "wafv2", "AssociateWebACL", "GetWebACLForResource", "DisassociateWebACL")
    + on("{inputs[resourceArn]}", "elasticloadbalancing:SetWebAcl"),
    "aws:eks/accessEntry:AccessEntry": on(CLUSTER, "eks:CreateAccessEntry")
    + on(
        ACCESS_ENTRY,
        "eks:DescribeAccessEntry",
        "eks:UpdateAccessEntry",
        "eks:TagResource",
        "eks:UntagResource",
        "eks:DeleteAccessEntry",
    ),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": on(
        ACCESS_ENTRY, "eks:AssociateAccessPolicy", "eks:ListAssociatedAccessPolicies", "eks:DisassociateAccessPolicy"
    ),
}

#: The file of hashicorp/terraform-provider-aws (`internal/service/...`) each type's calls were read from; the service
#: package's `tags_gen.go` adds the tag calls, its `find.go`/`status.go`/`wait.go` the finders and waiters.
SOURCE_FILES: dict[str, str] = {
    "aws:ec2/vpc:Vpc": "ec2/vpc_.go",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "ec2/vpc_default_security_group.go",
    "aws:ec2/internetGateway:InternetGateway": "ec2/vpc_internet_gateway.go",
    "aws:ec2/routeTable:RouteTable": "ec2/vpc_route_table.go",
    "aws:ec2/subnet:Subnet": "ec2/vpc_subnet.go",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "ec2/vpc_route_table_association.go",
    "aws:ec2/eip:Eip": "ec2/ec2_eip.go",
    "aws:ec2/natGateway:NatGateway": "ec2/vpc_nat_gateway.go",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "ec2/vpc_endpoint.go",
    "aws:ec2/securityGroup:SecurityGroup": "ec2/vpc_security_group.go",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "ec2/vpc_security_group_ingress_rule.go",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "ec2/vpc_security_group_egress_rule.go",
    "aws:ecr/repository:Repository": "ecr/repository.go",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": "ecr/lifecycle_policy.go",
    "aws:s3/bucket:Bucket": "s3/bucket.go",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "s3/bucket_public_access_block.go",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "s3/bucket_ownership_controls.go",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "s3/bucket_server_side_encryption_configuration.go"
    ),
    "aws:s3/bucketVersioning:BucketVersioning": "s3/bucket_versioning.go",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "s3/bucket_lifecycle_configuration.go",
    "aws:s3/bucketPolicy:BucketPolicy": "s3/bucket_policy.go",
    "aws:cloudwatch/logGroup:LogGroup": "logs/group.go",
    "aws:iam/role:Role": "iam/role.go",
    "aws:iam/rolePolicy:RolePolicy": "iam/role_policy.go",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "iam/role_policy_attachment.go",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "iam/openid_connect_provider.go",
    "aws:servicediscovery/httpNamespace:HttpNamespace": "servicediscovery/http_namespace.go",
    "aws:ecs/cluster:Cluster": "ecs/cluster.go",
    "aws:ecs/taskDefinition:TaskDefinition": "ecs/task_definition.go",
    "aws:ecs/service:Service": "ecs/service.go",
    "aws:appautoscaling/target:Target": "appautoscaling/target.go",
    "aws:appautoscaling/policy:Policy": "appautoscaling/policy.go",
    "aws:lb/loadBalancer:LoadBalancer": "elbv2/load_balancer.go",
    "aws:lb/targetGroup:TargetGroup": "elbv2/target_group.go",
    "aws:lb/listener:Listener": "elbv2/listener.go",
    "aws:lb/listenerRule:ListenerRule": "elbv2/listener_rule.go",
    "aws:eks/cluster:Cluster": "eks/cluster.go",
    "aws:eks/fargateProfile:FargateProfile": "eks/fargate_profile.go",
    "aws:eks/addon:Addon": "eks/addon.go",
    "aws:wafv2/webAcl:WebAcl": "wafv2/web_acl.go",
    "aws:wafv2/webAclAssociation:WebAclAssociation": "wafv2/web_acl_association.go",
    "aws:eks/accessEntry:AccessEntry": "eks/access_entry.go",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "eks/access_policy_association.go",
}

#: The data sources the programs read themselves (pulumi-eks's own are `eks_component.INVOKES`), at preview as at
#: update, and what each one calls, read from the same provider's source (`internal/service/...`):
#: `sts/caller_identity_data_source.go` (sts:GetCallerIdentity, which IAM never denies), `meta/partition_data_source.go`
#: and `elb/service_account_data_source.go` (answered from the provider's own tables, no call),
#: `ec2/ec2_availability_zones_data_source.go` (DescribeAvailabilityZones) and `iam/session_context_data_source.go`
#: (dataSourceSessionContextRead -> findRoleByName: iam:GetRole on the role behind the caller's session, `{caller}`).
INVOKE_ACTIONS: dict[str, tuple[Need, ...]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": (),
    "aws:index/getPartition:getPartition": (),
    "aws:elb/getServiceAccount:getServiceAccount": (),
    "aws:index/getAvailabilityZones:getAvailabilityZones": on("*", "ec2:DescribeAvailabilityZones"),
    "aws:iam/getSessionContext:getSessionContext": on("{caller}", "iam:GetRole"),
}
