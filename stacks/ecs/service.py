"""One Fargate service: its security group, task definition, ECS service and autoscaling.

Tasks run in the private subnets without public IPs (or, with `taskSubnets: public`, in the public subnets with a
public address each, for a stack without a NAT gateway), as uid 10001 on a read-only root filesystem with a per-task
/tmp, and accept traffic only from the ALB's security group (and, for the API, from the UI's). A failed
rollout trips the deployment circuit breaker and rolls back to the last healthy task definition. The service is
autonamed, so a replacement starts the new service before it deletes the old one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.security import allow_between
from stacks.workloads import RUN_AS_USER, STOP_SECONDS, TMP_PATH, Workload, health_command

#: The port mapping name Service Connect refers to.
PORT_NAME = "http"


def container_definitions(workload: Workload, image: str, log_group: str, region: str, env: Mapping[str, str]) -> str:
    """The task's single container, hardened; JSON as ECS expects it (`env`: the workload's, resolved)."""
    return json.dumps(
        [
            {
                "name": workload.name,
                "image": image,
                "essential": True,
                # SIGTERM comes after the target group's deregistration delay; then the service drains and exits
                # within its stop timeout, which ECS must not cut short (SIGKILL at `stopTimeout`).
                "stopTimeout": STOP_SECONDS,
                "user": f"{RUN_AS_USER}:{RUN_AS_USER}",
                "readonlyRootFilesystem": True,
                "privileged": False,
                "portMappings": [
                    {
                        "name": PORT_NAME,
                        "containerPort": workload.port,
                        "protocol": "tcp",
                        "appProtocol": "http",
                    }
                ],
                "environment": [{"name": key, "value": value} for key, value in sorted(env.items())],
                "mountPoints": [{"sourceVolume": "tmp", "containerPath": TMP_PATH, "readOnly": False}],
                "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}},
                "healthCheck": {
                    "command": health_command(workload.port, workload.liveness_path),
                    "interval": 15,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 60,
                },
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": log_group,
                        "awslogs-region": region,
                        "awslogs-stream-prefix": workload.name,
                    },
                },
            }
        ]
    )


def _definitions(workload: Workload, values: list[Any], region: str) -> str:
    """`container_definitions` of the resolved image, log group and environment."""
    image, log_group, env = values
    return container_definitions(workload, image, log_group, region, env)


@dataclass(frozen=True)
class ServiceInputs:
    """Everything a Fargate service needs from the rest of the stack."""

    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    #: Tasks in the public subnets need a public address to reach ECR, S3 and CloudWatch without a NAT gateway.
    assign_public_ip: bool
    alb_security_group_id: pulumi.Input[str]
    alb_arn_suffix: pulumi.Input[str]
    target_group: aws.lb.TargetGroup
    #: What must exist before the first task starts: the ALB's listeners and rules, the roles' policies.
    depends_on: Sequence[pulumi.Resource]
    image: pulumi.Input[str]
    log_group_name: pulumi.Input[str]
    region: str
    execution_role_arn: pulumi.Input[str]
    task_role_arn: pulumi.Input[str] | None
    service_connect: aws.ecs.ServiceServiceConnectConfigurationArgs
    tags: dict[str, str]


class FargateService(pulumi.ComponentResource):
    """A load-balanced, autoscaled Fargate service for one workload."""

    security_group: aws.ec2.SecurityGroup
    service: aws.ecs.Service
    task_definition: aws.ecs.TaskDefinition

    def __init__(
        self, name: str, workload: Workload, inputs: ServiceInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("diabetes:ecs:FargateService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**inputs.tags, "Workload": workload.name}

        self.security_group = self._security_group(name, workload, inputs, tags, child)
        self.task_definition = self._task_definition(name, workload, inputs, tags, child)
        self.service = self._service(name, workload, inputs, tags)
        _autoscale(name, workload, inputs, self.service, tags, child)
        self.register_outputs({"serviceName": self.service.name})

    def _security_group(
        self, name: str, workload: Workload, inputs: ServiceInputs, tags: dict[str, str], child: pulumi.ResourceOptions
    ) -> aws.ec2.SecurityGroup:
        """Only the ALB reaches the tasks; the tasks reach AWS APIs over HTTPS."""
        group = aws.ec2.SecurityGroup(
            name,
            vpc_id=inputs.vpc_id,
            description=f"{workload.name} tasks: only from the load balancer",
            tags={**tags, "Name": name},
            opts=child,
        )
        allow_between(
            f"{name}-alb-to-tasks",
            source_group_id=inputs.alb_security_group_id,
            target_group_id=group.id,
            port=workload.port,
            description=f"ALB to {workload.name} tasks",
            tags=tags,
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-https-out",
            security_group_id=group.id,
            cidr_ipv4="0.0.0.0/0",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS to AWS APIs (ECR, S3, CloudWatch)",
            tags=tags,
            opts=child,
        )
        return group

    def _task_definition(
        self, name: str, workload: Workload, inputs: ServiceInputs, tags: dict[str, str], child: pulumi.ResourceOptions
    ) -> aws.ecs.TaskDefinition:
        """One hardened container (`container_definitions`), a per-task /tmp volume."""
        return aws.ecs.TaskDefinition(
            name,
            family=name,
            cpu=str(workload.size.cpu),
            memory=str(workload.size.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=inputs.execution_role_arn,
            task_role_arn=inputs.task_role_arn,
            volumes=[{"name": "tmp"}],
            container_definitions=pulumi.Output.all(
                inputs.image, inputs.log_group_name, pulumi.Output.from_input(dict(workload.env))
            ).apply(lambda values: _definitions(workload, values, inputs.region)),
            tags=tags,
            opts=child,
        )

    def _service(self, name: str, workload: Workload, inputs: ServiceInputs, tags: dict[str, str]) -> aws.ecs.Service:
        """Behind the target group, rolled back by the circuit breaker, started once the routing exists."""
        return aws.ecs.Service(
            name,
            cluster=inputs.cluster_arn,
            task_definition=self.task_definition.arn,
            desired_count=workload.size.desired_count,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration={
                "subnets": inputs.subnet_ids,
                "security_groups": [self.security_group.id],
                "assign_public_ip": inputs.assign_public_ip,
            },
            load_balancers=[
                {
                    "target_group_arn": inputs.target_group.arn,
                    "container_name": workload.name,
                    "container_port": workload.port,
                }
            ],
            # Room for the API to fetch and verify its model before the ALB verdict counts (/ready is 503 until then).
            health_check_grace_period_seconds=120,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            service_connect_configuration=inputs.service_connect,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            wait_for_steady_state=True,
            tags=tags,
            # The autoscaler owns the running count after the first deployment.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=list(inputs.depends_on), ignore_changes=["desiredCount"]
            ),
        )


def _autoscale(
    name: str,
    workload: Workload,
    inputs: ServiceInputs,
    service: aws.ecs.Service,
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> None:
    """Between the workload's minimum and maximum count, tracking CPU and the ALB's requests per target."""
    resource_id = pulumi.Output.concat("service/", inputs.cluster_name, "/", service.name)
    target = aws.appautoscaling.Target(
        name,
        service_namespace="ecs",
        scalable_dimension="ecs:service:DesiredCount",
        resource_id=resource_id,
        min_capacity=workload.size.min_count,
        max_capacity=workload.size.max_count,
        tags=tags,
        opts=child,
    )
    metric_spec = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs
    scaling = {
        "cpu": (
            metric_spec(predefined_metric_type="ECSServiceAverageCPUUtilization"),
            workload.size.cpu_target_percent,
        ),
        "requests": (
            metric_spec(
                predefined_metric_type="ALBRequestCountPerTarget",
                resource_label=pulumi.Output.concat(inputs.alb_arn_suffix, "/", inputs.target_group.arn_suffix),
            ),
            workload.size.request_count_target,
        ),
    }
    for kind, (metric, value) in scaling.items():
        aws.appautoscaling.Policy(
            f"{name}-{kind}",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration=(
                aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    predefined_metric_specification=metric,
                    target_value=value,
                    scale_in_cooldown=120,
                    scale_out_cooldown=60,
                )
            ),
            opts=child,
        )
