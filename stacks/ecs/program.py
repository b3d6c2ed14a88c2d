"""The `stacks/ecs` project's program: the ECS platform on the root's network and registry, and its outputs."""

from __future__ import annotations

import pulumi

from stacks.aws_context import lookup_context
from stacks.config import EcsStackSettings
from stacks.ecs.platform import EcsPlatform
from stacks.shared import SharedOutputs


def build(settings: EcsStackSettings) -> EcsPlatform:
    """Create the ECS platform and export what `stacks.ops verify-ecs` and operators read."""
    platform = EcsPlatform(
        f"{settings.name}-ecs",
        settings,
        lookup_context(settings.region, settings.name, settings.certificate_arn),
        SharedOutputs.read(settings),
    )
    pulumi.export("imageTag", settings.image_tag)
    pulumi.export("ecsUrl", platform.url)
    pulumi.export("ecsClusterName", platform.cluster.name)
    pulumi.export("ecsServiceNames", {name: svc.service.name for name, svc in platform.services.items()})
    pulumi.export("ecsTargetGroupArns", {name: tg.arn for name, tg in platform.load_balancer.target_groups.items()})
    return platform
