"""The EKS cluster and who may use it, built with `pulumi_eks.Cluster`: control plane, one Fargate profile, CoreDNS on
Fargate, the OIDC provider and the access entries; plus the Kubernetes provider the rest of the program uses.

The cluster authenticates with EKS access entries only (`authenticationMode: API`). pulumi-eks always lets EKS make
the creating identity an admin (`bootstrapClusterCreatorAdminPermissions`), so the creator (`eks.access.creator`,
the CI deploy role by default) gets no entry of ours; every other identity with Kubernetes access is an entry from
the stack's config (admins: operators; viewers: the CI preview role). The API endpoint is private unless
`eks.publicAccessCidrs` names who may reach it.

What pulumi-eks cannot express stays here, by hand (docs/deploy.md lists it with the reasons): the roles it would
create carry no IAM path and no permissions boundary, which the deploy role requires of every role it creates, so the
cluster role and the pod execution role are ours and passed in; the OIDC provider, which pulumi-eks would create
untagged (the deploy role may only create and delete providers tagged with its stack; IAM no longer needs a
thumbprint for EKS issuers); the control-plane log group with a retention (EKS would create it without one); and the
Kubernetes provider, which waits for the whole component (access entries included) before any object of ours is
sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from stacks.aws_context import EKS_CLUSTER_POLICY, AwsContext, RoleWithPolicies, service_trust_policy, stack_role
from stacks.config import ConfigError, EksStackSettings
from stacks.eks.iam import cluster_trust_policy, pod_execution_policy
from stacks.eks.preview_access import PREVIEW_GROUP

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator")
#: EKS access policies by access level (cluster-wide scope).
ACCESS_POLICIES = {"admin": "AmazonEKSClusterAdminPolicy", "view": "AmazonEKSViewPolicy"}
#: The namespaces Fargate runs: the system pods (CoreDNS, the Load Balancer Controller, metrics-server) and the app's.
SYSTEM_NAMESPACE = "kube-system"


def principal_arn(value: str, ctx: AwsContext) -> str:
    """A config principal as an ARN: `role/<name>` or `user/<name>` means this account's."""
    return value if value.startswith("arn:") else ctx.arn("iam", value, region=False)


def access_entries(settings: EksStackSettings, ctx: AwsContext) -> dict[str, str]:
    """principal ARN -> access level (`admin` or `view`) of the identities that get an access entry."""
    access = settings.eks.access
    return {
        **{principal_arn(value, ctx): "admin" for value in access.admins},
        **{principal_arn(value, ctx): "view" for value in access.viewers},
    }


def check_deployer(deployer_arn: str, creator_arn: str, entries: dict[str, str], *, preview: bool) -> None:
    """Fail early when the identity running Pulumi will not be able to reach the cluster it deploys to."""
    allowed = {"admin", "view"} if preview else {"admin"}
    if deployer_arn != creator_arn and entries.get(deployer_arn) not in allowed:
        raise ConfigError(
            f"{deployer_arn} runs this {'preview' if preview else 'update'} but is neither the cluster's creator "
            f"({creator_arn}) nor {'an admin or viewer' if preview else 'an admin'}: add it to diabetes-eks:eks.access "
            "(`pulumi config set --path 'diabetes-eks:eks.access.admins[N]' <arn>`), or every Kubernetes call fails"
        )


def open_endpoint_warning(cidrs: tuple[str, ...], cluster: str) -> str | None:
    """The warning for a Kubernetes API endpoint reachable from the whole internet, or None."""
    if "0.0.0.0/0" not in cidrs:
        return None
    return (
        f"the Kubernetes API endpoint of {cluster} is open to 0.0.0.0/0: EKS access entries are the only gate. Narrow "
        "diabetes-eks:eks.publicAccessCidrs to your runners' and operators' egress addresses, or leave it empty "
        "(private endpoint) and deploy from inside the VPC"
    )


def _groups(level: str) -> list[str]:
    """Viewers may also send server-side dry runs (stacks/eks/preview_access.py): what a preview needs."""
    return [PREVIEW_GROUP] if level == "view" else []


def cluster_access_entries(
    entries: dict[str, str], ctx: AwsContext, tags: dict[str, str]
) -> dict[str, eks.AccessEntryArgs]:
    """pulumi-eks access entries, one per identity, each with one cluster-wide access policy."""
    return {
        f"{level}-{arn.rsplit('/', 1)[-1]}": eks.AccessEntryArgs(
            principal_arn=arn,
            type=eks.AccessEntryType.STANDARD,
            kubernetes_groups=_groups(level),
            access_policies={
                level: eks.AccessPolicyAssociationArgs(
                    policy_arn=f"arn:{ctx.partition}:eks::aws:cluster-access-policy/{ACCESS_POLICIES[level]}",
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                )
            },
            tags=tags,
        )
        for arn, level in entries.items()
    }


def arn_once_ready(role: RoleWithPolicies) -> pulumi.Output[str]:
    """The role's ARN, resolved only once its policies exist: whatever is given it waits for them (IAM is eventually
    consistent, and EKS checks the role when it creates the cluster or starts a pod)."""
    return pulumi.Output.all(role.role.arn, *(policy.id for policy in role.policies)).apply(lambda values: values[0])


class EksCluster(pulumi.ComponentResource):
    """The pulumi-eks cluster with our roles, log group and access entries, and the Kubernetes provider."""

    cluster_name: str
    cluster: eks.Cluster
    #: Where Fargate's log router sends the pods' logs (the pod execution role may write there and nowhere else).
    pod_logs: aws.cloudwatch.LogGroup
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    fargate_profile_name: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self,
        name: str,
        settings: EksStackSettings,
        ctx: AwsContext,
        deployer_arn: str,
        private_subnet_ids: pulumi.Input[list[str]],
        vpc_id: pulumi.Input[str],
        repository_arns: list[pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:eks:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("eks")
        self.cluster_name = settings.eks_cluster_name
        entries = access_entries(settings, ctx)
        creator = principal_arn(settings.eks_creator, ctx)
        check_deployer(deployer_arn, creator, entries, preview=pulumi.runtime.is_dry_run())

        logs = self._log_groups(name, settings, tags, child)
        cluster_role, attachment = _cluster_role(name, ctx, tags, child)
        pod_execution = self._pod_execution_role(name, ctx, repository_arns, tags, child)

        self.cluster = _fargate_cluster(
            name,
            settings,
            cluster_access_entries(entries, ctx, tags),
            ClusterNetwork(vpc_id, private_subnet_ids),
            cluster_role,
            pod_execution,
            tags,
            pulumi.ResourceOptions(parent=self, depends_on=[logs, attachment, *pod_execution.policies]),
        )
        oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.cluster.oidc_provider_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )
        self.oidc_provider_arn = oidc_provider.arn
        self.oidc_issuer = self.cluster.oidc_issuer
        self.kubeconfig = self.cluster.kubeconfig_json
        # pulumi-eks exports the profile's id, `<cluster>:<profile>`.
        self.fargate_profile_name = self.cluster.fargate_profile_id.apply(lambda value: value.split(":", 1)[-1])
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
        )
        self.register_outputs({"clusterName": self.cluster_name})

    def _log_groups(
        self, name: str, settings: EksStackSettings, tags: dict[str, str], child: pulumi.ResourceOptions
    ) -> aws.cloudwatch.LogGroup:
        """The control plane's log group (returned: the cluster waits for it) and the pods' (`pod_logs`)."""
        logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{self.cluster_name}/cluster",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        self.pod_logs = aws.cloudwatch.LogGroup(
            f"{name}-pods",
            name=f"/eks/{self.cluster_name}/pods",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        return logs

    def _pod_execution_role(
        self,
        name: str,
        ctx: AwsContext,
        repository_arns: list[pulumi.Input[str]],
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> RoleWithPolicies:
        """Fargate's role for this cluster's pods: pull the stack's images, write to `pod_logs`."""
        role = stack_role(f"{name}-pod-execution", ctx, _fargate_trust(ctx, self.cluster_name), tags, child)
        policy = aws.iam.RolePolicy(
            f"{name}-pod-execution",
            role=role.id,
            policy=pulumi.Output.all(self.pod_logs.arn, *repository_arns).apply(
                lambda arns: pod_execution_policy(ctx, list(arns[1:]), arns[0])
            ),
            opts=child,
        )
        return RoleWithPolicies(role, [policy])


def _cluster_role(
    name: str, ctx: AwsContext, tags: dict[str, str], child: pulumi.ResourceOptions
) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
    """The control plane's role, with AWS's managed cluster policy attached (the cluster waits for the attachment)."""
    role = stack_role(f"{name}-cluster", ctx, cluster_trust_policy(ctx), tags, child)
    attachment = aws.iam.RolePolicyAttachment(
        f"{name}-cluster",
        role=role.name,
        policy_arn=ctx.managed_policy_arn(EKS_CLUSTER_POLICY),
        opts=child,
    )
    return role, attachment


@dataclass(frozen=True)
class ClusterNetwork:
    """Where the cluster and its Fargate pods run: the VPC and its private subnets (with a NAT gateway)."""

    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[list[str]]


def _fargate_cluster(
    name: str,
    settings: EksStackSettings,
    access: dict[str, eks.AccessEntryArgs],
    network: ClusterNetwork,
    cluster_role: aws.iam.Role,
    pod_execution: RoleWithPolicies,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> eks.Cluster:
    """The pulumi-eks cluster: Fargate only, API authentication with `access` entries, CoreDNS on Fargate."""
    cidrs = list(settings.eks.public_access_cidrs)
    warning = open_endpoint_warning(settings.eks.public_access_cidrs, settings.eks_cluster_name)
    if warning:
        pulumi.log.warn(warning)
    return eks.Cluster(
        name,
        name=settings.eks_cluster_name,
        version=settings.eks.version,
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        endpoint_private_access=True,
        endpoint_public_access=bool(cidrs),
        public_access_cidrs=cidrs or None,
        enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
        authentication_mode=eks.AuthenticationMode.API,
        access_entries=access,
        service_role=cluster_role,
        # The OIDC provider is ours (below): pulumi-eks's carries no tags, and the deploy role may create and delete
        # only providers tagged with this stack.
        create_oidc_provider=False,
        # Fargate only: no node group, no node role, no security groups of pulumi-eks's own (EKS makes the
        # cluster security group), no managed kube-proxy or VPC CNI add-ons of pulumi-eks's (EKS still installs
        # its self-managed DaemonSets at creation, bootstrapSelfManagedAddons; they schedule no pod on Fargate).
        skip_default_node_group=True,
        skip_default_security_groups=True,
        kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=False),
        use_default_vpc_cni=True,
        # One autonamed profile for the system pods and the app; pulumi-eks then runs CoreDNS as a managed add-on
        # with `computeType: Fargate`, after the profile.
        fargate=eks.FargateProfileArgs(
            pod_execution_role_arn=arn_once_ready(pod_execution),
            selectors=[
                aws.eks.FargateProfileSelectorArgs(namespace=SYSTEM_NAMESPACE),
                aws.eks.FargateProfileSelectorArgs(namespace=settings.eks.namespace),
            ],
            subnet_ids=network.private_subnet_ids,
        ),
        coredns_addon_options=eks.CoreDnsAddonOptionsArgs(
            enabled=True,
            resolve_conflicts_on_create=eks.ResolveConflictsOnCreate.OVERWRITE,
            resolve_conflicts_on_update=eks.ResolveConflictsOnUpdate.OVERWRITE,
        ),
        tags=tags,
        opts=opts,
    )


def _fargate_trust(ctx: AwsContext, cluster_name: str) -> str:
    """Only EKS Fargate, for this cluster's profiles."""
    return service_trust_policy(
        "eks-fargate-pods.amazonaws.com", ctx, source_arn=ctx.arn("eks", f"fargateprofile/{cluster_name}/*")
    )
