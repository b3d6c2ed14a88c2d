"""EKS: the cluster (moto returns its OIDC issuer, endpoint and certificate, which the IRSA roles and the OIDC
provider then use) and the Fargate profiles (moto checks the cluster and the selectors)."""

from __future__ import annotations

from typing import Any

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
        tags=d.tags,
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
