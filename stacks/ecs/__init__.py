"""ECS Fargate platform, a Pulumi project of its own: cluster, ALB, the API service and the optional UI service."""
