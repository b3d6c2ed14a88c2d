"""The ECS platform: cluster with Container Insights, logs, roles, ALB and the Fargate services.

The UI reaches the API inside the VPC through ECS Service Connect (`http://api:8000`), never through the
public load balancer, so the API's security group admits only the ALB and the UI.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from stacks.aws_context import AwsContext
from stacks.config import EcsStackSettings
from stacks.ecs.iam import api_task_role, execution_role
from stacks.ecs.loadbalancer import LoadBalancer
from stacks.ecs.service import PORT_NAME, FargateService, ServiceInputs
from stacks.security import allow_between
from stacks.shared import SharedOutputs
from stacks.workloads import Workload, by_name, stack_workloads


class EcsPlatform(pulumi.ComponentResource):
    """Everything ECS needs on top of the shared network and registry."""

    url: pulumi.Output[str]
    cluster: aws.ecs.Cluster
    services: dict[str, FargateService]
    load_balancer: LoadBalancer

    def __init__(
        self,
        name: str,
        settings: EcsStackSettings,
        ctx: AwsContext,
        shared: SharedOutputs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:ecs:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("ecs")

        # The API's Service Connect client alias (below) is its name and port: the UI's API_URL.
        workloads = stack_workloads(settings, lambda api: f"http://{api.name}:{api.port}", shared.public_subnet_cidrs)

        namespace, self.cluster = _cluster(name, settings, tags, child)
        log_group = aws.cloudwatch.LogGroup(
            name, name=f"/ecs/{name}", retention_in_days=settings.log_retention_days, tags=tags, opts=child
        )
        repository_arns = [shared.repository_arns[workload.name] for workload in workloads]
        execution = execution_role(
            name, ctx=ctx, repository_arns=repository_arns, log_group=log_group, tags=tags, opts=child
        )
        api_task = api_task_role(name, ctx, settings.model_s3, tags, child)

        self.load_balancer = LoadBalancer(
            f"{name}-lb",
            settings,
            vpc_id=shared.vpc_id,
            public_subnet_ids=shared.public_subnet_ids,
            access_log_bucket=shared.access_log_bucket,
            workloads=workloads,
            opts=child,
        )

        if settings.task_subnets == "public":
            task_subnets = shared.public_subnet_ids
        else:
            task_subnets = shared.private_subnets_with_nat("ECS tasks")
        self.services = {}
        for workload in workloads:
            is_api = workload.name == "api"
            # First tasks wait for the routing and their roles' policies; the UI starts after the API so its
            # Service Connect alias resolves.
            waits_for: list[pulumi.Resource] = [
                *self.load_balancer.routing,
                *execution.policies,
                *(api_task.policies if is_api else [self.services["api"]]),
            ]
            inputs = ServiceInputs(
                cluster_name=self.cluster.name,
                cluster_arn=self.cluster.arn,
                vpc_id=shared.vpc_id,
                subnet_ids=task_subnets,
                assign_public_ip=settings.task_subnets == "public",
                alb_security_group_id=self.load_balancer.security_group.id,
                alb_arn_suffix=self.load_balancer.arn_suffix,
                target_group=self.load_balancer.target_groups[workload.name],
                depends_on=waits_for,
                image=shared.image(workload.name, settings.image_tag),
                log_group_name=log_group.name,
                region=settings.region,
                execution_role_arn=execution.role.arn,
                task_role_arn=api_task.role.arn if is_api else None,
                service_connect=_service_connect(namespace, workload),
                tags=tags,
            )
            self.services[workload.name] = FargateService(f"{name}-{workload.name}", workload, inputs, opts=child)

        if "ui" in self.services:
            _admit_the_ui(name, self.services, by_name(workloads)["api"].port, tags, child)

        self.url = self.load_balancer.url
        self.register_outputs({"url": self.url})


def _service_connect(
    namespace: aws.servicediscovery.HttpNamespace, workload: Workload
) -> aws.ecs.ServiceServiceConnectConfigurationArgs:
    """The API publishes itself as `api` (its name and port: the UI's API_URL); the UI only consumes names."""
    published = [
        aws.ecs.ServiceServiceConnectConfigurationServiceArgs(
            port_name=PORT_NAME,
            discovery_name=workload.name,
            client_alias=[
                aws.ecs.ServiceServiceConnectConfigurationServiceClientAliasArgs(
                    port=workload.port, dns_name=workload.name
                )
            ],
        )
    ]
    return aws.ecs.ServiceServiceConnectConfigurationArgs(
        enabled=True, namespace=namespace.arn, services=published if workload.name == "api" else None
    )


def _cluster(
    name: str, settings: EcsStackSettings, tags: dict[str, str], child: pulumi.ResourceOptions
) -> tuple[aws.servicediscovery.HttpNamespace, aws.ecs.Cluster]:
    """The cluster (Container Insights as configured) and the Service Connect namespace its services share."""
    namespace = aws.servicediscovery.HttpNamespace(
        name, name=f"{settings.name}.internal", description="Service Connect names", tags=tags, opts=child
    )
    cluster = aws.ecs.Cluster(
        name,
        name=name,
        settings=[{"name": "containerInsights", "value": "enabled" if settings.container_insights else "disabled"}],
        service_connect_defaults={"namespace": namespace.arn},
        tags=tags,
        opts=child,
    )
    return namespace, cluster


def _admit_the_ui(
    name: str, services: dict[str, FargateService], api_port: int, tags: dict[str, str], child: pulumi.ResourceOptions
) -> None:
    """The API's security group admits the UI's tasks (besides the ALB): the UI calls it through Service Connect."""
    allow_between(
        f"{name}-ui-to-api",
        source_group_id=services["ui"].security_group.id,
        target_group_id=services["api"].security_group.id,
        port=api_port,
        description="UI to API through Service Connect",
        tags=tags,
        opts=child,
    )
