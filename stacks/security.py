"""Security-group plumbing: open one port from one group to another, on both sides.

Every hop inside the VPC (ALB to tasks, UI to API) is a pair of rules that name each other's group, so no task
accepts or sends traffic on a port nobody asked for.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def allow_between(
    name: str,
    *,
    source_group_id: pulumi.Input[str],
    target_group_id: pulumi.Input[str],
    port: int,
    description: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> None:
    """Let `source` open TCP connections to `target` on one port (egress on source + ingress on target)."""
    sides = (
        (aws.vpc.SecurityGroupIngressRule, "in", target_group_id, source_group_id),
        (aws.vpc.SecurityGroupEgressRule, "out", source_group_id, target_group_id),
    )
    for rule, suffix, own, other in sides:
        rule(
            f"{name}-{suffix}",
            security_group_id=own,
            referenced_security_group_id=other,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=description,
            tags=tags,
            opts=opts,
        )
