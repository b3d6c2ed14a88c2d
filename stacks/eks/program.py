"""The `stacks/eks` project's program: cluster and access, add-ons and controller, then the app's objects."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stacks.aws_context import deployer_arn, lookup_context
from stacks.config import EksStackSettings
from stacks.eks import versions
from stacks.eks.addons import EksAddons
from stacks.eks.app import EksApp
from stacks.eks.cluster import EksCluster
from stacks.shared import SharedOutputs
from stacks.workloads import stack_workloads


@dataclass(frozen=True)
class EksPlatform:
    """The three components (for tests)."""

    cluster: EksCluster
    addons: EksAddons
    app: EksApp


def build(settings: EksStackSettings) -> EksPlatform:
    """Create the EKS platform and export what `stacks.ops verify-eks`, kubectl and operators read."""
    name = f"{settings.name}-eks"
    warning = versions.support_warning(settings.eks.version, versions.today())
    if warning:
        pulumi.log.warn(warning)
    ctx = lookup_context(settings.region, settings.name, settings.certificate_arn)
    shared = SharedOutputs.read(settings)
    namespace = settings.eks.namespace
    workloads = stack_workloads(
        settings,
        lambda api: f"http://{api.name}.{namespace}.svc.cluster.local:{api.port}",
        shared.public_subnet_cidrs,
    )
    cluster = EksCluster(
        name,
        settings,
        ctx,
        deployer_arn(ctx),
        shared.private_subnets_with_nat("EKS Fargate pods (which run only in private subnets)"),
        shared.vpc_id,
        [shared.repository_arns[workload.name] for workload in workloads],
    )
    addons = EksAddons(f"{name}-addons", settings, ctx, cluster, shared)
    app = EksApp(f"{name}-app", settings, ctx, cluster, shared, workloads, addons.ready)
    pulumi.export("imageTag", settings.image_tag)
    pulumi.export("eksClusterName", cluster.cluster_name)
    pulumi.export("eksFargateProfiles", [cluster.fargate_profile_name])
    pulumi.export("eksIngressHostname", app.ingress_hostname)
    pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
    return EksPlatform(cluster, addons, app)
