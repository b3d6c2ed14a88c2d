"""What both platforms receive from the shared layer: account context, image registry and network ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from stacks.aws_context import AwsContext
from stacks.registry import Registry


@dataclass(frozen=True)
class Shared:
    """Shared resources a platform builds on."""

    ctx: AwsContext
    registry: Registry
    vpc_id: pulumi.Output[str]
    public_subnet_ids: Sequence[pulumi.Output[str]]
    private_subnet_ids: Sequence[pulumi.Output[str]]
