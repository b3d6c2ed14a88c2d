"""The contract between the root project and the platforms: the outputs the root exports and the platforms read.

The platforms (`stacks/ecs`, `stacks/eks`) never create shared resources; they read these outputs through a
`pulumi.StackReference` to the root stack, so each platform deploys alone and an update of one never touches the
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from stacks.config import ConfigError, PlatformSettings

#: The image targets, one ECR repository each.
TARGETS = ("api", "ui")
VPC_ID = "vpcId"
PUBLIC_SUBNET_IDS = "publicSubnetIds"
PRIVATE_SUBNET_IDS = "privateSubnetIds"
#: The public subnets' CIDR blocks: where the load balancers' nodes are, the only proxies the API trusts (R10-5).
PUBLIC_SUBNET_CIDRS = "publicSubnetCidrs"
MODEL_BUCKET = "modelBucket"
ACCESS_LOG_BUCKET = "accessLogBucket"
#: `none`, `single` or `perAz`: whether the private subnets reach the internet (a platform refuses what cannot run).
NAT_GATEWAYS = "natGateways"
#: Key prefix of each platform's load balancer logs in the access-log bucket.
ECS_ACCESS_LOG_PREFIX = "ecs"
EKS_ACCESS_LOG_PREFIX = "eks"


def repository_url_output(target: str) -> str:
    """Name of the output holding one target's repository URL (`apiRepositoryUrl`, `uiRepositoryUrl`)."""
    return f"{target}RepositoryUrl"


def repository_arn_output(target: str) -> str:
    """Name of the output holding one target's repository ARN."""
    return f"{target}RepositoryArn"


def shared_stack_name(settings: PlatformSettings) -> str:
    """The root stack a platform reads: configured, or `<organization>/<project>/<this stack's name>`."""
    return settings.shared_stack or f"{pulumi.get_organization()}/{settings.project}/{settings.environment}"


@dataclass(frozen=True)
class SharedOutputs:
    """The root stack's outputs, as the platforms use them."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_cidrs: pulumi.Output[list[str]]
    repository_urls: dict[str, pulumi.Output[str]]
    repository_arns: dict[str, pulumi.Output[str]]
    access_log_bucket: pulumi.Output[str]
    nat_gateways: pulumi.Output[str]

    @classmethod
    def read(cls, settings: PlatformSettings) -> SharedOutputs:
        """Reference the root stack once and pick its outputs (a missing output fails the preview)."""
        ref = pulumi.StackReference("shared", shared_stack_name(settings))

        def out(name: str) -> pulumi.Output[str]:
            return ref.require_output(name)  # type: ignore[no-any-return]

        def out_list(name: str) -> pulumi.Output[list[str]]:
            return ref.require_output(name)  # type: ignore[no-any-return]

        return cls(
            vpc_id=out(VPC_ID),
            public_subnet_ids=out_list(PUBLIC_SUBNET_IDS),
            private_subnet_ids=out_list(PRIVATE_SUBNET_IDS),
            public_subnet_cidrs=ref.get_output(PUBLIC_SUBNET_CIDRS).apply(_public_subnet_cidrs),
            repository_urls={target: out(repository_url_output(target)) for target in TARGETS},
            repository_arns={target: out(repository_arn_output(target)) for target in TARGETS},
            access_log_bucket=out(ACCESS_LOG_BUCKET),
            # A root deployed before this output existed always had a NAT gateway.
            nat_gateways=ref.get_output(NAT_GATEWAYS).apply(lambda value: value or "single"),
        )

    def private_subnets_with_nat(self, who: str) -> pulumi.Output[list[str]]:
        """The private subnet ids, or a clear error at preview when the root has no NAT gateway to get out through
        (whatever uses these ids waits for the check, so the error cannot be lost)."""

        def check(values: list[Any]) -> list[str]:
            if values[0] == "none":
                raise ConfigError(
                    f"the root stack runs without a NAT gateway (diabetes:natGateways: none), and {who} need one in "
                    "the private subnets to pull images and reach AWS APIs. Run `pulumi config set "
                    "diabetes:natGateways single` and `pulumi up` the root first."
                )
            return list(values[1])

        return pulumi.Output.all(self.nat_gateways, self.private_subnet_ids).apply(check)

    def image(self, target: str, tag: str) -> pulumi.Output[str]:
        """The full image reference of one target at one tag."""
        return pulumi.Output.concat(self.repository_urls[target], ":", tag)


def _public_subnet_cidrs(value: Any) -> list[str]:
    """The root's public subnet CIDRs, or a clear error when the root predates that output (whatever uses them, the
    API's environment, waits for the check, so the error cannot be lost)."""
    if not value:
        raise ConfigError(
            f"the root stack exports no {PUBLIC_SUBNET_CIDRS} (it was deployed before the API trusted only the load "
            "balancer's subnets to name the client). Run `pulumi up` on the root stack first; it changes nothing "
            "but its outputs."
        )
    return [str(cidr) for cidr in value]
