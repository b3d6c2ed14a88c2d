"""What `pulumi_eks.Cluster` creates and looks up for the inputs the EKS program gives it.

The component runs inside the pulumi-eks provider, so under Pulumi's mocks it is one resource (`eks:index:Cluster`)
and its children are invisible. This module says which AWS resources it makes, with which inputs, so the deploy-role
check (provider_actions.py) and the moto replay can cover them like the program's own resources.

Source: pulumi/pulumi-eks at commit 7bf0c1b1 (2026-08-12, the newest snapshot that could be fetched; the locked
pulumi-eks 4.4.0 was published on 2026-09-25 and its Python SDK's Cluster inputs are exactly that commit's
`provider/cmd/pulumi-resource-eks/schema.json`'s). Read from `nodejs/eks/cluster/cluster.ts` (`createCore`, lines
414-1294: the service role, security groups, the cluster, kube-proxy, the kubeconfig and Kubernetes provider, the
node role, the access entries, the VPC CNI, the Fargate profile, CoreDNS, the OIDC provider; `createCluster`, lines
2087-2215: the node security group, the default node group, the outputs), `nodejs/eks/cluster/authenticationMode.ts`
(`createAccessEntries`: one entry, then one association per access policy), `nodejs/eks/servicerole.ts` (a role with
no path and no permissions boundary, and its managed-policy attachments) and `nodejs/eks/nodes/nodegroup.ts`
(`computeWorkerSubnets`: one route-table lookup per subnet).

Only the branches the program takes are modelled, and each input that would take another one fails here with what
pulumi-eks would then create, so a change of arguments cannot leave resources unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TYPE = "eks:index:Cluster"


class UnmodelledBranchError(AssertionError):
    """The program gives pulumi-eks an input that makes it create something this model does not list."""


@dataclass(frozen=True)
class Child:
    """One resource pulumi-eks creates: its type, logical name and inputs (as cluster.ts passes them)."""

    typ: str
    name: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Invoke:
    """A data source the component reads, at preview as well as at update, and the IAM action it takes."""

    token: str
    action: str


#: The component's look-ups: `aws.getPartitionOutput` and `aws.getRegion` (no API call: the provider answers from its
#: configuration), `computeWorkerSubnets` (`aws.ec2.getRouteTable` per subnet of the Fargate profile),
#: `aws.eks.getAddonVersionOutput` (CoreDNS's version, once the cluster's version is known).
INVOKES = (
    Invoke("aws:ec2/getRouteTable:getRouteTable", "ec2:DescribeRouteTables"),
    Invoke("aws:eks/getAddonVersion:getAddonVersion", "eks:DescribeAddonVersions"),
)


def _require(inputs: Mapping[str, Any], key: str, expected: Any, otherwise: str) -> None:
    if inputs.get(key) != expected:
        raise UnmodelledBranchError(f"{key}={inputs.get(key)!r}: pulumi-eks would {otherwise}; model it here first")


def service_role(name: str, service: str, policies: tuple[str, ...], tags: Mapping[str, str]) -> list[Child]:
    """servicerole.ts: a role trusted by one service, without path or boundary, and its managed policies."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": [service]}}],
    }
    role = Child("aws:iam/role:Role", f"{name}-role", {"assumeRolePolicy": json.dumps(trust), "tags": dict(tags)})
    return [
        role,
        *(
            Child(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                f"{name}-{policy}",
                {"role": role.name, "policyArn": f"arn:aws:iam::aws:policy/{policy}"},
            )
            for policy in policies
        ),
    ]


def children(name: str, inputs: Mapping[str, Any]) -> list[Child]:
    """The AWS resources `eks.Cluster(name, **inputs)` creates (the Kubernetes provider it makes is no AWS resource)."""
    _require(inputs, "skipDefaultNodeGroup", True, "create a node group, its launch template and an instance role")
    _require(inputs, "skipDefaultSecurityGroups", True, "create cluster and node security groups with open egress")
    _require(inputs, "authenticationMode", "API", "create the aws-auth ConfigMap")
    for key in ("storageClasses", "encryptionConfigKeyArn", "autoMode", "nodeGroupOptions", "instanceRoles"):
        if inputs.get(key):
            raise UnmodelledBranchError(f"{key} is set: pulumi-eks would create or use more; model it here first")
    inputs["vpcId"]  # only the security groups skipped above would use it
    tags = dict(inputs.get("tags") or {})
    cluster_name = inputs["name"]
    made: list[Child] = []

    role_arn = (inputs.get("serviceRole") or {}).get("arn")
    if role_arn is None:  # cluster.ts: `new ServiceRole(`${name}-eksRole`, ...)` with AmazonEKSClusterPolicy
        made += service_role(f"{name}-eksRole", "eks.amazonaws.com", ("AmazonEKSClusterPolicy",), tags)
        role_arn = made[0].name
    public_cidrs = inputs.get("publicAccessCidrs")
    vpc_config = {
        "subnetIds": inputs["subnetIds"],
        "endpointPrivateAccess": inputs.get("endpointPrivateAccess"),
        "endpointPublicAccess": inputs.get("endpointPublicAccess"),
        **({"publicAccessCidrs": public_cidrs} if public_cidrs else {}),
    }
    made.append(
        Child(
            "aws:eks/cluster:Cluster",
            f"{name}-eksCluster",
            {
                "name": cluster_name,
                "roleArn": role_arn,
                "version": inputs["version"],
                "vpcConfig": {key: value for key, value in vpc_config.items() if value is not None},
                "enabledClusterLogTypes": inputs.get("enabledClusterLogTypes"),
                "bootstrapSelfManagedAddons": True,
                # Always true with an authentication mode: "required for this component because it deploys charts".
                "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True},
                "tags": {"Name": f"{name}-eksCluster", **tags},
            },
        )
    )
    if (inputs.get("kubeProxyAddonOptions") or {}).get("enabled", True):
        made.append(_addon(name, cluster_name, "kube-proxy", tags, None))
    for key, entry in (inputs.get("accessEntries") or {}).items():
        made.append(
            Child(
                "aws:eks/accessEntry:AccessEntry",
                f"{name}-{key}",
                {**{k: v for k, v in entry.items() if k != "accessPolicies"}, "clusterName": cluster_name},
            )
        )
        for association, policy in (entry.get("accessPolicies") or {}).items():
            made.append(
                Child(
                    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
                    f"{name}-{key}-{association}",
                    {**policy, "principalArn": entry["principalArn"], "clusterName": cluster_name},
                )
            )
    if not inputs.get("useDefaultVpcCni"):  # VpcCniAddon: the managed vpc-cni add-on
        made.append(_addon(name, cluster_name, "vpc-cni", tags, None))
    fargate = inputs.get("fargate")
    if fargate:
        fargate = {} if fargate is True else fargate
        pod_role = fargate.get("podExecutionRoleArn")
        if pod_role is None:  # `${name}-podExecutionRole` with AmazonEKSFargatePodExecutionRolePolicy
            made += service_role(
                f"{name}-podExecutionRole",
                "eks-fargate-pods.amazonaws.com",
                ("AmazonEKSFargatePodExecutionRolePolicy",),
                tags,
            )
            pod_role = made[-2].name
        profile = (
            f"{name.replace('-', '_', 1)}fargateProfile"
            if name.lower().startswith("eks-")
            else f"{name}-fargateProfile"
        )
        made.append(
            Child(
                "aws:eks/fargateProfile:FargateProfile",
                profile,
                {
                    "clusterName": cluster_name,
                    "podExecutionRoleArn": pod_role,
                    "selectors": fargate.get("selectors") or [{"namespace": "default"}, {"namespace": "kube-system"}],
                    "subnetIds": fargate.get("subnetIds") or inputs["subnetIds"],
                },
            )
        )
    coredns = inputs.get("corednsAddonOptions") or {}
    if coredns.get("enabled", True) and (fargate or coredns.get("enabled") is True):
        configuration = {"computeType": "Fargate", **(coredns.get("configurationValues") or {})} if fargate else None
        made.append(_addon(name, cluster_name, "coredns", tags, configuration, coredns))
    if inputs.get("createOidcProvider"):  # untagged, with the issuer CA's thumbprint
        made.append(
            Child(
                "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
                f"{name}-oidcProvider",
                {
                    "clientIdLists": ["sts.amazonaws.com"],
                    "url": "(the cluster's issuer)",
                    "thumbprintLists": ["(computed)"],
                },
            )
        )
    return made


def _addon(
    name: str,
    cluster_name: str,
    addon: str,
    tags: Mapping[str, str],
    configuration: Mapping[str, Any] | None,
    options: Mapping[str, Any] | None = None,
) -> Child:
    options = options or {}
    inputs: dict[str, Any] = {
        "clusterName": cluster_name,
        "addonName": addon,
        "preserve": True,
        "resolveConflictsOnCreate": options.get("resolveConflictsOnCreate", "OVERWRITE"),
        "resolveConflictsOnUpdate": options.get("resolveConflictsOnUpdate", "OVERWRITE"),
        "tags": dict(tags),
    }
    if configuration is not None:
        inputs["configurationValues"] = json.dumps(configuration)
    return Child("aws:eks/addon:Addon", f"{name}-{addon}", inputs)
