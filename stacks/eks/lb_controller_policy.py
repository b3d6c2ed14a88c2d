"""The AWS Load Balancer Controller's IAM policy, derived from upstream's and narrowed to this stack.

Source: `docs/install/iam_policy.json` of kubernetes-sigs/aws-load-balancer-controller at tag `v3.5.0`, the app
version of Helm chart `3.5.0` (`helm/aws-load-balancer-controller/Chart.yaml` at that tag; published in eks-charts)
that the EKS stack installs; the document is identical to v2.13.4's (80 actions). `CHART_VERSION` is the one place
the chart version is set: changing it means re-deriving this file from that version's policy.

Every upstream action is either granted here or listed in `DROPPED` with the reason. Each granted action names
the resource type AWS authorizes it on (tests check every action against its resource type with parliament's
copy of the service authorization reference); where upstream says `*`, the grant is narrowed to this account and
region, to names the controller gives what it creates (`k8s-*`), to this cluster's value of the
`elbv2.k8s.aws/cluster` tag (upstream only asks for the tag to exist, which any cluster's controller sets: another
cluster's load balancers, target groups and security groups would be in reach), and for security groups to this VPC.
The tag is set only while creating; re-tagging is allowed only on what already carries this cluster's value and
never changes that tag. The ECS load balancer, its listeners and target groups in the same VPC are out of reach.
Only Describe/Get calls without resource-level permissions keep `*`.
"""

from __future__ import annotations

from typing import Any

from stacks.aws_context import AwsContext, policy_json, statement

#: The Helm chart the policy was derived for (it installs the controller v3.5.0).
CHART_VERSION = "3.5.0"
SERVICE_ACCOUNT = "aws-load-balancer-controller"

CLUSTER_TAG = "elbv2.k8s.aws/cluster"
#: Names the controller gives the load balancers and target groups it creates (`k8s-<namespace>-<name>-<hash>`).
NAME_PATTERN = "k8s-*"
KINDS = ("app", "net")

#: Upstream actions this stack does not grant, and why.
DROPPED: dict[str, str] = {
    **dict.fromkeys(
        (
            "elasticloadbalancing:SetWebAcl",
            "waf-regional:AssociateWebACL",
            "waf-regional:DisassociateWebACL",
            "waf-regional:GetWebACL",
            "waf-regional:GetWebACLForResource",
            "wafv2:AssociateWebACL",
            "wafv2:DisassociateWebACL",
            "wafv2:GetWebACL",
            "wafv2:GetWebACLForResource",
        ),
        "WAF integration is off (chart values enableWaf/enableWafv2: false)",
    ),
    **dict.fromkeys(
        (
            "shield:CreateProtection",
            "shield:DeleteProtection",
            "shield:DescribeProtection",
            "shield:GetSubscriptionState",
        ),
        "Shield integration is off (chart value enableShield: false)",
    ),
    "cognito-idp:DescribeUserPoolClient": "no Ingress authenticates with Cognito",
    "ec2:GetCoipPoolUsage": "no customer-owned IP pools (Outposts)",
    "iam:GetServerCertificate": "certificates come from ACM, never from IAM server certificates",
    "iam:ListServerCertificates": "certificates come from ACM, never from IAM server certificates",
}

_DESCRIBE = (
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
#: Writes on a load balancer the controller tagged (resource type loadbalancer/app|net).
_MODIFY_LOAD_BALANCER = (
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:ModifyCapacityReservation",
    "elasticloadbalancing:ModifyIpPools",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
)
#: Writes on a target group the controller tagged (resource type targetgroup).
_MODIFY_TARGET_GROUP = (
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
)
#: Listener actions (resource type listener/app|net) on the controller's load balancers.
_LISTENERS = (
    "elasticloadbalancing:AddListenerCertificates",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:RemoveListenerCertificates",
)
#: Rule actions (resource type listener-rule/app|net).
_RULES = (
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:SetRulePriorities",
)


def own_elb_resources(ctx: AwsContext) -> dict[str, list[str]]:
    """The ARNs of what the controller creates (`k8s-*` names), by kind: load balancers, target groups, listeners,
    rules (the workload boundary grants the same)."""

    def elb(resource: str) -> str:
        return ctx.arn("elasticloadbalancing", resource)

    own = NAME_PATTERN
    return {
        "loadbalancer": [elb(f"loadbalancer/{kind}/{own}/*") for kind in KINDS],
        "targetgroup": [elb(f"targetgroup/{own}/*")],
        "listener": [elb(f"listener/{kind}/{own}/*/*") for kind in KINDS],
        "listener-rule": [elb(f"listener-rule/{kind}/{own}/*/*/*") for kind in KINDS],
    }


def lb_controller_policy(ctx: AwsContext, vpc_id: str, cluster_name: str) -> str:
    """The controller's permissions, scoped to its own resources in this account, region and VPC."""
    vpc = ctx.arn("ec2", f"vpc/{vpc_id}")
    service_linked_role = ctx.arn(
        "iam",
        "role/aws-service-role/elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing",
        region=False,
    )
    return policy_json(
        [
            statement(
                ["iam:CreateServiceLinkedRole"],
                service_linked_role,
                {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
                sid="ServiceLinkedRole",
            ),
            statement(_DESCRIBE, "*", sid="ReadOnlyDescribe"),
            statement(["ec2:GetSecurityGroupsForVpc"], vpc, sid="SecurityGroupsOfVpc"),
            statement(["acm:DescribeCertificate"], ctx.arn("acm", "certificate/*"), sid="Certificates"),
            *_security_group_statements(ctx, vpc, cluster_name),
            *_load_balancer_statements(ctx, cluster_name),
        ]
    )


def _tag_conditions(cluster_name: str) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, Any]]:
    """The resource carries this cluster's tag; the request sets it; a retag keeps it (removes or changes it not)."""
    tagged: dict[str, dict[str, Any]] = {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster_name}}
    request_tagged = {f"aws:RequestTag/{CLUSTER_TAG}": cluster_name}
    tagging_own = {**tagged, "Null": {f"aws:RequestTag/{CLUSTER_TAG}": "true"}}
    return tagged, request_tagged, tagging_own


def _security_group_statements(ctx: AwsContext, vpc: str, cluster_name: str) -> list[dict[str, Any]]:
    """Security groups the controller creates in the VPC, and ingress rules on them and on the cluster's group."""
    security_groups = ctx.arn("ec2", "security-group/*")
    in_vpc = {"ArnEquals": {"ec2:Vpc": vpc}}
    tagged, request_tagged, tagging_own = _tag_conditions(cluster_name)
    # EKS tags the cluster security group (the one Fargate pods use) with kubernetes.io/cluster/<name> = owned.
    cluster_security_group = {"StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}}
    return [
        statement(["ec2:CreateSecurityGroup"], [vpc, security_groups], sid="CreateSecurityGroupInVpc"),
        statement(
            ["ec2:CreateTags"],
            security_groups,
            {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup", **request_tagged}},
            sid="TagNewSecurityGroup",
        ),
        statement(["ec2:CreateTags", "ec2:DeleteTags"], security_groups, tagging_own, sid="RetagOwnSecurityGroup"),
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
    ]


def _load_balancer_statements(ctx: AwsContext, cluster_name: str) -> list[dict[str, Any]]:
    """Load balancers, target groups, listeners and rules the controller creates (tagged) and then only its own."""

    def elb(resource: str) -> str:
        return ctx.arn("elasticloadbalancing", resource)

    owned = own_elb_resources(ctx)
    load_balancers, listeners, rules = owned["loadbalancer"], owned["listener"], owned["listener-rule"]
    (target_groups,) = owned["targetgroup"]
    # Creating (and tagging while creating) is scoped by the request tag alone, as upstream does: whether IAM matches
    # the new resource's name at creation is not documented, and a create cannot touch existing resources.
    any_new = [*(elb(f"loadbalancer/{kind}/*/*") for kind in KINDS), elb("targetgroup/*/*")]
    tagged, request_tagged, tagging_own = _tag_conditions(cluster_name)
    return [
        statement(
            ["elasticloadbalancing:CreateLoadBalancer"],
            any_new[:2],
            {"StringEquals": request_tagged},
            sid="CreateTaggedLoadBalancer",
        ),
        statement(
            ["elasticloadbalancing:CreateTargetGroup"],
            any_new[2:],
            {"StringEquals": request_tagged},
            sid="CreateTaggedTargetGroup",
        ),
        statement(
            ["elasticloadbalancing:AddTags"],
            any_new,
            {
                "StringEquals": {
                    "elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"],
                    **request_tagged,
                }
            },
            sid="TagOnCreate",
        ),
        statement(
            ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            [*load_balancers, target_groups],
            tagging_own,
            sid="RetagOwnLoadBalancers",
        ),
        statement(
            ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            [*listeners, *rules],
            sid="TagListenersAndRules",
        ),
        statement(["elasticloadbalancing:CreateListener"], load_balancers, sid="CreateListener"),
        statement(_LISTENERS, listeners, sid="Listeners"),
        statement(_RULES, rules, sid="Rules"),
        statement(_MODIFY_LOAD_BALANCER, load_balancers, tagged, sid="ModifyOwnLoadBalancers"),
        statement(_MODIFY_TARGET_GROUP, [target_groups], tagged, sid="ModifyOwnTargetGroups"),
        statement(
            ["elasticloadbalancing:ModifyListenerAttributes"], listeners, tagged, sid="ModifyOwnListenerAttributes"
        ),
        statement(
            ["elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"],
            target_groups,
            tagged,
            sid="Targets",
        ),
    ]
