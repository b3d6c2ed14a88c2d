"""ECS roles with exactly the permissions the tasks use.

The execution role (used by the ECS agent) may pull from this stack's repositories and write to this stack's
log group. The API task role may read the model prefix in S3, and only when the model lives in S3. No AWS-
managed policy is attached: they grant `Resource: *`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from stacks.aws_context import (
    AwsContext,
    RoleWithPolicies,
    ecr_pull_statements,
    model_read_policy,
    policy_json,
    service_trust_policy,
    stack_role,
    statement,
)
from stacks.config import S3Location


def execution_policy(repository_arns: Sequence[str], log_group_arn: str) -> str:
    """Pull images from the given repositories and write logs to one group."""
    return policy_json(
        [
            *ecr_pull_statements(repository_arns),
            statement(["logs:CreateLogStream", "logs:PutLogEvents"], f"{log_group_arn}:log-stream:*", sid="Logs"),
        ]
    )


def ecs_task_role(name: str, ctx: AwsContext, tags: dict[str, str], opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """A role only ECS tasks of this account can assume."""
    trust = service_trust_policy("ecs-tasks.amazonaws.com", ctx, source_arn=ctx.arn("ecs", "*"))
    return stack_role(name, ctx, trust, tags, opts)


def execution_role(
    name: str,
    *,
    ctx: AwsContext,
    repository_arns: Sequence[pulumi.Input[str]],
    log_group: aws.cloudwatch.LogGroup,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> RoleWithPolicies:
    """The ECS agent's role: image pulls and log writes, scoped to this stack's ARNs.

    Returns the role and its policy: the services depend on the policy, so the first tasks do not start before
    IAM has it (IAM is eventually consistent)."""
    role = ecs_task_role(f"{name}-execution", ctx, tags, opts)
    policy = aws.iam.RolePolicy(
        f"{name}-execution",
        role=role.id,
        policy=pulumi.Output.all(log_group.arn, *repository_arns).apply(
            lambda arns: execution_policy(arns[1:], arns[0])
        ),
        opts=opts,
    )
    return RoleWithPolicies(role, [policy])


def api_task_role(
    name: str, ctx: AwsContext, model: S3Location | None, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> RoleWithPolicies:
    """The API's own role: nothing, or read access to the model prefix when MODEL_URI is s3://."""
    role = ecs_task_role(f"{name}-api-task", ctx, tags, opts)
    if model is None:
        return RoleWithPolicies(role, [])
    policy = aws.iam.RolePolicy(f"{name}-api-task-model", role=role.id, policy=model_read_policy(model, ctx), opts=opts)
    return RoleWithPolicies(role, [policy])
