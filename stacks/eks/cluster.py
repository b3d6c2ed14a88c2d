"""The EKS cluster and who may use it: control plane, OIDC provider, access entries, the Kubernetes provider.

The cluster authenticates with EKS access entries only (`authenticationMode: API`) and bootstraps nobody: every
identity with Kubernetes access is an explicit entry from the stack's config (admins: the CI deploy role and
operators; viewers: the CI preview role), so access does not depend on who happened to create the cluster. The
Kubernetes provider waits for those entries, so no object of ours is sent before its deployer may write it. The API
endpoint is private unless `eks.publicAccessCidrs` names who may reach it.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from stacks.aws_context import AwsContext, stack_role
from stacks.config import ConfigError, EksStackSettings
from stacks.eks.iam import CLUSTER_POLICY, cluster_trust_policy

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator")
#: EKS access policies by access level (cluster-wide scope).
ACCESS_POLICIES = {"admin": "AmazonEKSClusterAdminPolicy", "view": "AmazonEKSViewPolicy"}


def principal_arn(value: str, ctx: AwsContext) -> str:
    """A config principal as an ARN: `role/<name>` or `user/<name>` means this account's."""
    return value if value.startswith("arn:") else ctx.arn("iam", value, region=False)


def access_levels(settings: EksStackSettings, ctx: AwsContext) -> dict[str, str]:
    """principal ARN -> access level (`admin` or `view`)."""
    access = settings.eks.access
    return {
        **{principal_arn(value, ctx): "admin" for value in access.admins},
        **{principal_arn(value, ctx): "view" for value in access.viewers},
    }


def check_deployer(deployer_arn: str, levels: dict[str, str], *, preview: bool) -> None:
    """Fail early when the identity running Pulumi will not be able to reach the cluster it deploys to."""
    allowed = {"admin", "view"} if preview else {"admin"}
    if levels.get(deployer_arn) not in allowed:
        raise ConfigError(
            f"{deployer_arn} runs this {'preview' if preview else 'update'} but is not "
            f"{'an admin or viewer' if preview else 'an admin'} of the cluster: add it to diabetes-eks:eks.access "
            "(`pulumi config set --path 'diabetes-eks:eks.access.admins[N]' <arn>`), or every Kubernetes call fails"
        )


def kubeconfig(cluster_name: str, endpoint: str, certificate_authority: str, region: str) -> str:
    """A kubeconfig that gets short-lived tokens from the AWS CLI (`aws eks get-token`); it holds no credential."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
        }
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority},
                }
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [{"name": cluster_name, "user": user}],
        }
    )


class EksCluster(pulumi.ComponentResource):
    """Control plane, OIDC provider, access entries and the Kubernetes provider that uses them."""

    cluster_name: str
    cluster: aws.eks.Cluster
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self,
        name: str,
        settings: EksStackSettings,
        ctx: AwsContext,
        deployer_arn: str,
        private_subnet_ids: pulumi.Input[list[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:eks:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("eks")
        self.cluster_name = settings.eks_cluster_name
        levels = access_levels(settings, ctx)
        check_deployer(deployer_arn, levels, preview=pulumi.runtime.is_dry_run())

        logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{self.cluster_name}/cluster",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        role = stack_role(f"{name}-cluster", ctx, cluster_trust_policy(ctx), tags, child)
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-cluster",
            role=role.name,
            policy_arn=f"arn:{ctx.partition}:iam::aws:policy/{CLUSTER_POLICY}",
            opts=child,
        )
        cidrs = list(settings.eks.public_access_cidrs)
        self.cluster = aws.eks.Cluster(
            name,
            name=self.cluster_name,
            role_arn=role.arn,
            version=settings.eks.version,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=private_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(cidrs),
                public_access_cidrs=cidrs or None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, attachment]),
        )
        issuer_url = self.cluster.identities.apply(lambda ids: str(ids[0]["oidcs"][0]["issuer"]))  # type: ignore[index]
        provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer_url, client_id_lists=["sts.amazonaws.com"], tags=tags, opts=child
        )
        self.oidc_provider_arn = provider.arn
        self.oidc_issuer = issuer_url.apply(lambda url: url.removeprefix("https://"))

        associations = []
        for principal, level in levels.items():
            label = f"{name}-{level}-{principal.rsplit('/', 1)[-1]}"
            entry = aws.eks.AccessEntry(
                label, cluster_name=self.cluster.name, principal_arn=principal, type="STANDARD", tags=tags, opts=child
            )
            associations.append(
                aws.eks.AccessPolicyAssociation(
                    label,
                    cluster_name=self.cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=f"arn:{ctx.partition}:eks::aws:cluster-access-policy/{ACCESS_POLICIES[level]}",
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=child,
                )
            )

        self.kubeconfig = pulumi.Output.all(self.cluster.endpoint, self.cluster.certificate_authority).apply(
            lambda values: kubeconfig(self.cluster_name, values[0], values[1]["data"], settings.region)
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=associations),
        )
        self.register_outputs({"clusterName": self.cluster_name})
