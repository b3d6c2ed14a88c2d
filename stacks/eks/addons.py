"""What the cluster runs for the app: Fargate profiles, CoreDNS, pod logging, metrics-server, the Load Balancer
Controller.

Two Fargate profiles run everything: one for kube-system (CoreDNS as a managed add-on with `computeType: Fargate`,
the controller, metrics-server) and one for the app namespace. EKS changes one Fargate profile of a cluster at a
time, so the app profile waits for the system profile. Profiles and the Helm releases depend on the IAM policies
their pods use (pod execution, IRSA), so first starts do not race IAM's eventual consistency. Fargate has no
instance metadata, so the controller is told its cluster, region and VPC explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from stacks.aws_context import AwsContext, service_trust_policy, stack_role
from stacks.config import EksStackSettings
from stacks.eks import manifests
from stacks.eks.cluster import EksCluster
from stacks.eks.iam import irsa_role, pod_execution_policy
from stacks.eks.kubernetes import create_object
from stacks.eks.lb_controller_policy import CHART_VERSION, SERVICE_ACCOUNT, lb_controller_policy
from stacks.shared import SharedOutputs

LB_CONTROLLER_CHART_REPO = "https://aws.github.io/eks-charts"
METRICS_SERVER_CHART_REPO = "https://kubernetes-sigs.github.io/metrics-server/"


def helm_release(
    name: str, *, chart: str, version: str, repo: str, values: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    """A pinned chart in kube-system (release name = chart name); rolled back if the install fails."""
    return k8s.helm.v3.Release(
        name,
        name=chart,
        chart=chart,
        version=version,
        repository_opts={"repo": repo},
        namespace="kube-system",
        atomic=True,
        cleanup_on_fail=True,
        values=values,
        opts=opts,
    )


class EksAddons(pulumi.ComponentResource):
    """Fargate profiles, CoreDNS, Fargate log routing, metrics-server and the AWS Load Balancer Controller."""

    fargate_profile_names: list[pulumi.Output[str]]
    #: What the app's objects wait for: the controller's webhook, metrics-server, the app namespace's profile.
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        settings: EksStackSettings,
        ctx: AwsContext,
        cluster: EksCluster,
        shared: SharedOutputs,
        repository_arns: Sequence[pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:eks:Addons", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("eks")
        cluster_name = cluster.cluster_name

        pod_logs = aws.cloudwatch.LogGroup(
            f"{name}-pods",
            name=f"/eks/{cluster_name}/pods",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        pod_role = stack_role(f"{name}-pod-execution", ctx, _fargate_trust(ctx, cluster_name), tags, child)
        pod_policy = aws.iam.RolePolicy(
            f"{name}-pod-execution",
            role=pod_role.id,
            policy=pulumi.Output.all(pod_logs.arn, *repository_arns).apply(
                lambda arns: pod_execution_policy(ctx, list(arns[1:]), arns[0])
            ),
            opts=child,
        )
        # Autonamed: a profile is immutable, so any change replaces it, and a new one is made before the old goes.
        system = aws.eks.FargateProfile(
            f"{name}-system",
            cluster_name=cluster.cluster.name,
            pod_execution_role_arn=pod_role.arn,
            subnet_ids=shared.private_subnet_ids,
            selectors=[{"namespace": "kube-system"}],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pod_policy]),
        )
        app = aws.eks.FargateProfile(
            f"{name}-app",
            cluster_name=cluster.cluster.name,
            pod_execution_role_arn=pod_role.arn,
            subnet_ids=shared.private_subnet_ids,
            selectors=[{"namespace": settings.eks.namespace}],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pod_policy, system]),
        )
        self.fargate_profile_names = [system.fargate_profile_name, app.fargate_profile_name]

        coredns = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=cluster.cluster.name,
            addon_name="coredns",
            configuration_values=json.dumps({"computeType": "Fargate"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[system]),
        )

        on_cluster = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        # Fargate reads its log routing when a pod starts: set it up before any pod of ours is scheduled.
        observability = create_object(f"{name}-observability-ns", manifests.observability_namespace(), on_cluster)
        logging = create_object(
            f"{name}-logging",
            manifests.logging_config(settings.region, pod_logs.name),
            pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[observability])),
        )

        controller_role = irsa_role(
            f"{name}-lb-controller",
            ctx,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            namespace="kube-system",
            service_account=SERVICE_ACCOUNT,
            policy=shared.vpc_id.apply(lambda vpc: lb_controller_policy(ctx, vpc, cluster_name)),
            tags=tags,
            opts=child,
        )
        system_ready = pulumi.ResourceOptions.merge(
            on_cluster, pulumi.ResourceOptions(depends_on=[system, coredns, logging])
        )
        metrics_server = helm_release(
            f"{name}-metrics-server",
            chart="metrics-server",
            version=settings.eks.metrics_server_chart_version,
            repo=METRICS_SERVER_CHART_REPO,
            # On Fargate the pod shares its IP with the kubelet, which already listens on 10250.
            values={"containerPort": 4443},
            opts=system_ready,
        )
        controller = helm_release(
            f"{name}-lb-controller",
            chart="aws-load-balancer-controller",
            version=CHART_VERSION,
            repo=LB_CONTROLLER_CHART_REPO,
            values={
                "clusterName": cluster_name,
                "region": settings.region,
                "vpcId": shared.vpc_id,
                "serviceAccount": {
                    "create": True,
                    "name": SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": controller_role.role.arn},
                },
                # No WAF/Shield integration: the role has no permissions for it.
                "enableShield": False,
                "enableWaf": False,
                "enableWafv2": False,
                "enableServiceMutatorWebhook": False,
                "replicaCount": 2,
            },
            opts=pulumi.ResourceOptions.merge(
                system_ready, pulumi.ResourceOptions(depends_on=controller_role.policies)
            ),
        )
        self.ready = [controller, metrics_server, app, logging]
        self.register_outputs({})


def _fargate_trust(ctx: AwsContext, cluster_name: str) -> str:
    """Only EKS Fargate, for this cluster's profiles."""
    return service_trust_policy(
        "eks-fargate-pods.amazonaws.com", ctx, source_arn=ctx.arn("eks", f"fargateprofile/{cluster_name}/*")
    )
