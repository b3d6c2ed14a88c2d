"""What the cluster runs for the app besides CoreDNS (pulumi-eks's): pod logging, metrics-server, the AWS Load
Balancer Controller, and the admission policy that keeps the CI preview's grant to dry runs
(stacks/eks/preview_access.py).

The Helm releases depend on the IRSA policies their pods use, so first starts do not race IAM's eventual
consistency. Fargate has no instance metadata, so the controller is told its cluster, region and VPC explicitly.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.aws_context import AwsContext
from stacks.config import EksStackSettings
from stacks.eks import manifests
from stacks.eks.cluster import EksCluster
from stacks.eks.iam import irsa_role
from stacks.eks.kubernetes import create_object
from stacks.eks.lb_controller_policy import CHART_VERSION, SERVICE_ACCOUNT, lb_controller_policy
from stacks.eks.preview_access import guard_manifests
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
    """Fargate log routing, metrics-server and the AWS Load Balancer Controller."""

    #: What the app's objects wait for: the controller's webhook, metrics-server, the log routing, the preview guard.
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        settings: EksStackSettings,
        ctx: AwsContext,
        cluster: EksCluster,
        shared: SharedOutputs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:eks:Addons", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("eks")
        cluster_name = cluster.cluster_name

        on_cluster = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        previous = _preview_guard(name, on_cluster)
        # Fargate reads its log routing when a pod starts: set it up before any pod of ours is scheduled.
        observability = create_object(f"{name}-observability-ns", manifests.observability_namespace(), on_cluster)
        logging = create_object(
            f"{name}-logging",
            manifests.logging_config(settings.region, cluster.pod_logs.name),
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
        system_ready = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[logging]))
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
                # On every AWS resource the controller makes: the workload boundary lets the controller write only the
                # security groups that carry the stack's Project and Environment tags (stacks/ops/boundary.py).
                "defaultTags": tags,
            },
            opts=pulumi.ResourceOptions.merge(
                system_ready, pulumi.ResourceOptions(depends_on=controller_role.policies)
            ),
        )
        self.ready = [controller, metrics_server, logging, *previous]
        self.register_outputs({})


def _preview_guard(name: str, on_cluster: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """The preview guard (admission policy, then its binding); the app's component grants the dry runs after it."""
    previous: list[pulumi.Resource] = []
    for manifest in guard_manifests():
        label = f"{name}-preview-{manifest['kind'].lower()}"
        opts = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=previous))
        previous = [create_object(label, manifest, opts)]
    return previous
