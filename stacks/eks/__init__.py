"""EKS Fargate platform, a Pulumi project of its own: cluster and access, add-ons and the Load Balancer Controller,
and the app's Kubernetes objects."""
