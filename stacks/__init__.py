"""Pulumi infrastructure for the diabetes-status service: shared ECR + network, ECS Fargate, EKS Fargate.

The program entry is `stacks/__main__.py` (see Pulumi.yaml); `stacks.ops` is the boto3 CLI that CI and
operators run after a deployment (promote an image, verify a rollout).
"""
