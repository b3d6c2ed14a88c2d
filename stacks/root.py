"""The root project's program: what both platforms share (ECR repositories, VPC, model and access-log buckets).

Deployed first (`pulumi up -s dev` at the repository root); its outputs (names in `stacks.shared`) are all the
platforms know of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stacks import shared
from stacks.aws_context import lookup_context
from stacks.buckets import Buckets
from stacks.config import SharedSettings
from stacks.network import Network
from stacks.registry import Registry


@dataclass(frozen=True)
class Root:
    """The root's components (for tests)."""

    registry: Registry
    network: Network
    buckets: Buckets


def build(settings: SharedSettings) -> Root:
    """Create the shared resources and export what the platforms and CI read."""
    ctx = lookup_context(settings.region, settings.name)
    registry = Registry(f"{settings.name}-registry", settings)
    network = Network(f"{settings.name}-net", settings)
    buckets = Buckets(f"{settings.name}-buckets", settings, ctx)
    for target, repository in registry.repositories.items():
        pulumi.export(shared.repository_url_output(target), repository.repository_url)
        pulumi.export(shared.repository_arn_output(target), repository.arn)
    pulumi.export(shared.VPC_ID, network.vpc_id)
    pulumi.export(shared.PUBLIC_SUBNET_IDS, network.public_subnet_ids)
    pulumi.export(shared.PRIVATE_SUBNET_IDS, network.private_subnet_ids)
    pulumi.export(shared.PUBLIC_SUBNET_CIDRS, network.public_subnet_cidrs)
    pulumi.export(shared.MODEL_BUCKET, buckets.model_bucket.bucket)
    pulumi.export(shared.ACCESS_LOG_BUCKET, buckets.access_log_bucket.bucket)
    pulumi.export(shared.NAT_GATEWAYS, settings.nat_gateways)
    return Root(registry, network, buckets)
