"""Pulumi infrastructure for the diabetes-status service, three projects: the shared root (ECR, VPC, buckets;
`stacks/__main__.py`), `stacks/ecs` and `stacks/eks`, each with its own `Pulumi.yaml`.

`stacks.ops` is the CLI that CI and operators run around a deployment (CI role policies, model digest, image
promotion and scan findings, rollout verification, the app's Kubernetes objects as YAML).
"""
