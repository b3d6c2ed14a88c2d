"""The Pulumi program: shared registry and network, then each enabled platform, then the stack outputs.

Kept separate from `__main__.py` so tests can run it under mocks with any settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stacks.aws_context import lookup_context
from stacks.config import StackSettings
from stacks.ecs import EcsPlatform
from stacks.eks import EksPlatform
from stacks.network import Network
from stacks.registry import Registry
from stacks.shared import Shared


@dataclass
class Deployment:
    """The platforms the program created (for tests)."""

    ecs: EcsPlatform | None
    eks: EksPlatform | None


def build(settings: StackSettings) -> Deployment:
    """Create every resource for these settings and export the outputs operators and CI use."""
    ctx = lookup_context(settings.region)
    registry = Registry(f"{settings.name}-registry", settings)
    network = Network(f"{settings.name}-net", settings, settings.eks_cluster_name if settings.eks_enabled else None)
    for target, repository in registry.repositories.items():
        pulumi.export(f"{target}RepositoryUrl", repository.repository_url)
    pulumi.export("imageTag", settings.image_tag)
    pulumi.export("vpcId", network.vpc_id)

    shared = Shared(ctx, registry, network.vpc_id, network.public_subnet_ids, network.private_subnet_ids)
    ecs = None
    if settings.ecs_enabled:
        ecs = EcsPlatform(f"{settings.name}-ecs", settings, shared)
        pulumi.export("ecsUrl", ecs.url)
        pulumi.export("ecsClusterName", ecs.cluster.name)
        pulumi.export("ecsServiceNames", {name: svc.service.name for name, svc in ecs.services.items()})
        pulumi.export("ecsTargetGroupArns", {name: tg.arn for name, tg in ecs.load_balancer.target_groups.items()})

    eks = None
    if settings.eks_enabled:
        eks = EksPlatform(f"{settings.name}-eks", settings, shared)
        pulumi.export("eksClusterName", eks.cluster_name)
        pulumi.export("eksFargateProfiles", eks.fargate_profiles)
        pulumi.export("eksIngressHostname", eks.ingress_hostname)
        pulumi.export("kubeconfig", pulumi.Output.secret(eks.kubeconfig))
    return Deployment(ecs=ecs, eks=eks)
