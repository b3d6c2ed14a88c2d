"""EKS Fargate platform: cluster, Load Balancer Controller, and the app's Kubernetes objects."""

from stacks.eks.platform import EksPlatform

__all__ = ["EksPlatform"]
