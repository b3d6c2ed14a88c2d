"""EKS, made by pulumi-eks's cluster component: the cluster (moto returns its OIDC issuer, which the OIDC provider
and the IRSA roles then use), the Fargate profile (moto checks the cluster and the selectors) and the OIDC provider."""

from __future__ import annotations

from typing import Any

from tests.stacks import eks_component
from tests.stacks.replay.calls import Clients, Declared, Replayer, renamed

VPC_CONFIG = {
    "subnetIds": "subnetIds",
    "endpointPrivateAccess": "endpointPrivateAccess",
    "endpointPublicAccess": "endpointPublicAccess",
    "publicAccessCidrs": "publicAccessCidrs",
}
ACCESS_CONFIG = {
    "authenticationMode": "authenticationMode",
    "bootstrapClusterCreatorAdminPermissions": "bootstrapClusterCreatorAdminPermissions",
}


def cluster(clients: Clients, d: Declared) -> dict[str, Any]:
    created = clients("eks").create_cluster(
        name=d["name"],
        version=d["version"],
        roleArn=d["roleArn"],
        resourcesVpcConfig=renamed(d["vpcConfig"], VPC_CONFIG),
        accessConfig=renamed(d["accessConfig"], ACCESS_CONFIG),
        logging={"clusterLogging": [{"types": d["enabledClusterLogTypes"], "enabled": True}]},
        tags=d.tags,
    )["cluster"]
    return {
        "id": created["name"],
        "name": created["name"],
        "arn": created["arn"],
        "identities": [{"oidcs": [{"issuer": created["identity"]["oidc"]["issuer"]}]}],
        "endpoint": created["endpoint"],
        "certificateAuthority": {"data": created["certificateAuthority"]["data"]},
    }


def fargate_profile(clients: Clients, d: Declared) -> dict[str, Any]:
    name = d.name("fargateProfileName")
    created = clients("eks").create_fargate_profile(
        fargateProfileName=name,
        clusterName=d["clusterName"],
        podExecutionRoleArn=d["podExecutionRoleArn"],
        subnets=d["subnetIds"],
        selectors=[renamed(selector, {"namespace": "namespace", "labels": "labels"}) for selector in d["selectors"]],
        tags=d.tags,  # pulumi-eks gives the profile none
    )["fargateProfile"]
    return {
        "id": f"{d['clusterName']}:{name}",
        "arn": created["fargateProfileArn"],
        "fargateProfileName": created["fargateProfileName"],
    }


REPLAYERS: dict[str, Replayer] = {
    "aws:eks/cluster:Cluster": cluster,
    "aws:eks/fargateProfile:FargateProfile": fargate_profile,
}


#: Children of pulumi-eks's cluster moto cannot create: EKS access entries, access policy associations and add-ons
#: (CreateAccessEntry, AssociateAccessPolicy and CreateAddon are not implemented). They are checked against the deploy
#: role from the model (tests/stacks/eks_component.py), with their declared inputs.
NOT_CREATED_CHILDREN = (
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "aws:eks/addon:Addon",
)


def cluster_component(clients: Clients, d: Declared) -> dict[str, Any]:
    """pulumi_eks.Cluster: its children as tests/stacks/eks_component.py models them, each made with the calls the
    provider makes for it (the cluster, the Fargate profile, and the OIDC provider on the cluster's real issuer when
    the component makes it)."""
    made = {child.typ: child for child in eks_component.children(d.logical, d)}  # type: ignore[arg-type]
    unknown = set(made) - {*REPLAYERS, *NOT_CREATED_CHILDREN, "aws:iam/openIdConnectProvider:OpenIdConnectProvider"}
    assert not unknown, f"pulumi-eks children the replay does not know: {sorted(unknown)}"
    created: list[tuple[eks_component.Child, dict[str, Any]]] = []

    def create(child: eks_component.Child, replayer: Any, **inputs: Any) -> dict[str, Any]:
        declared = Declared(child.typ, child.name, {**child.inputs, **inputs})
        outputs: dict[str, Any] = replayer(clients, declared)
        created.append((eks_component.Child(child.typ, child.name, declared.inputs), outputs))
        return outputs

    cluster_child = made["aws:eks/cluster:Cluster"]
    cluster_inputs = {**cluster_child.inputs, "vpcConfig": cluster_child.inputs["vpcConfig"]}
    cluster_inputs.pop("bootstrapSelfManagedAddons")  # moto's CreateCluster has no such field: EKS's default is true
    cluster_out = create(eks_component.Child(cluster_child.typ, cluster_child.name, cluster_inputs), cluster)
    issuer = cluster_out["identities"][0]["oidcs"][0]["issuer"]
    profile_out = create(made["aws:eks/fargateProfile:FargateProfile"], fargate_profile)
    oidc = made.get("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    provider: dict[str, str] = {}
    if oidc is not None:
        arn = clients("iam").create_open_id_connect_provider(Url=issuer, ClientIDList=oidc.inputs["clientIdLists"])
        provider["oidcProviderArn"] = arn["OpenIDConnectProviderArn"]
        created.append(
            (
                eks_component.Child(oidc.typ, oidc.name, {**oidc.inputs, "url": issuer}),
                {"arn": arn["OpenIDConnectProviderArn"]},
            )
        )
    for child in eks_component.children(d.logical, d.inputs):
        if child.typ in NOT_CREATED_CHILDREN:
            created.append((child, {}))
    return {
        "id": cluster_out["name"],
        **provider,
        "oidcProviderUrl": issuer,
        "oidcIssuer": issuer.removeprefix("https://"),
        "fargateProfileId": profile_out["id"],
        "children": created,
    }


COMPONENT_REPLAYERS: dict[str, Replayer] = {eks_component.TYPE: cluster_component}
