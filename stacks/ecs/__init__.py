"""ECS Fargate platform: cluster, ALB, the API service and the optional UI service."""

from stacks.ecs.platform import EcsPlatform

__all__ = ["EcsPlatform"]
