"""Account, partition and region of the deployment, and small IAM document builders.

IAM policies in this program name exact ARNs; building them needs the account and partition, which are looked
up once here instead of being hard-coded or scattered across modules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.config import ConfigError, S3Location

#: What pulling an image needs on the repository itself (ecr:GetAuthorizationToken is account-wide).
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
#: Every role the stacks create, by its logical name after `<project>-<env>-`, with the services the deploy role passes
#: it to (the IRSA roles are assumed by pods with a web identity, never passed). The CI deploy role may create, change
#: and pass these names only (`stacks.ops.ci_roles`): a new role kind means a new entry here.
STACK_ROLES: dict[str, tuple[str, ...]] = {
    "ecs-execution": ("ecs-tasks.amazonaws.com",),
    "ecs-api-task": ("ecs-tasks.amazonaws.com",),
    "eks-cluster": ("eks.amazonaws.com",),
    # AWS does not document which of the two EKS names CreateFargateProfile passes the pod role to.
    "eks-pod-execution": ("eks.amazonaws.com", "eks-fargate-pods.amazonaws.com"),
    "eks-addons-lb-controller": (),
    "eks-app-api-model": (),
}
#: The AWS managed policy the EKS cluster role carries (EKS requires it).
EKS_CLUSTER_POLICY = "AmazonEKSClusterPolicy"
#: The only AWS managed policies a stack role carries.
MANAGED_POLICIES = (EKS_CLUSTER_POLICY,)


@dataclass(frozen=True)
class RoleWithPolicies:
    """A role and its inline policies: whatever assumes the role depends on the policies too, so a first task or
    pod does not start before IAM (eventually consistent) has them."""

    role: aws.iam.Role
    policies: list[aws.iam.RolePolicy]


@dataclass(frozen=True)
class AwsContext:
    """Where the stack deploys; used to build ARNs."""

    account_id: str
    partition: str
    region: str
    #: Who runs this update (an assumed-role session ARN; `deployer_arn` resolves it to the role).
    caller_arn: str
    #: `<project>-<env>`: every role the stack creates lives under the path `/<stack>/`, bounded by the stack's
    #: workload boundary (created by `stacks.ops bootstrap`), so the deploy role can manage those roles and no other.
    stack: str

    @property
    def role_path(self) -> str:
        """The IAM path of the stack's own roles (the CI roles, at `/`, are outside it)."""
        return f"/{self.stack}/"

    @property
    def boundary_name(self) -> str:
        """The permissions boundary every role of the stack carries (`stacks.ops.boundary`)."""
        return f"{self.stack}-workload-boundary"

    @property
    def boundary_arn(self) -> str:
        return self.arn("iam", f"policy/{self.boundary_name}", region=False)

    @property
    def eks_addon_images(self) -> str:
        """The EKS add-on images (CoreDNS) of this region: AWS keeps them under `eks/` in accounts of its own."""
        return f"arn:{self.partition}:ecr:{self.region}:*:repository/eks/*"

    def managed_policy_arn(self, name: str) -> str:
        """An AWS managed policy, e.g. `AmazonEKSClusterPolicy`."""
        return f"arn:{self.partition}:iam::aws:policy/{name}"

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        """An ARN in this account and region, e.g. arn(`logs`, `log-group:/ecs/x:*`)."""
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account_id if account else ''}:{resource}"
        )


#: The CI roles `stacks.ops bootstrap` makes: `<project>-<env>-github-<job>`.
_CI_ROLE = re.compile(r":assumed-role/(?P<role>[^/]+-github-(deploy|preview|publish))/")


def check_ci_role(caller_arn: str, stack: str) -> None:
    """Fail early when a CI role of another project or environment runs this stack: its roles, boundary and state are
    named after the bootstrap's `<project>-<env>`, and it may manage no other (a changed `diabetes:project`)."""
    match = _CI_ROLE.search(caller_arn)
    if match and not match["role"].startswith(f"{stack}-github-"):
        raise ConfigError(
            f"this stack is {stack} (diabetes:project and the stack name), but it runs as {match['role']}, the CI role "
            f"of another bootstrap: that role may create only its own stack's roles, with its own boundary. Use the "
            f"project the bootstrap was run with (--project), or bootstrap {stack} and use its roles."
        )


def check_certificate_account(certificate_arn: str | None, account_id: str) -> None:
    """Fail early on an ACM certificate of another account: a load balancer takes one of its own account only, and the
    listener would fail only after the load balancer was made (the region is checked with the config)."""
    if certificate_arn and certificate_arn.split(":")[4] != account_id:
        raise ConfigError(
            f"certificateArn {certificate_arn} is in account {certificate_arn.split(':')[4]}, the stack runs in "
            f"{account_id}: a load balancer takes an ACM certificate of its own account only. Request or import the "
            "certificate in this account and region (docs/deploy.md, HTTPS)"
        )


def lookup_context(region: str, stack: str, certificate_arn: str | None = None) -> AwsContext:
    """Ask AWS who we are (one invoke each; mocked in tests); refuse another bootstrap's CI role and a certificate of
    another account before anything is made."""
    identity = aws.get_caller_identity()
    partition = aws.get_partition()
    check_ci_role(identity.arn, stack)
    check_certificate_account(certificate_arn, identity.account_id)
    return AwsContext(
        account_id=identity.account_id,
        partition=partition.partition,
        region=region,
        caller_arn=identity.arn,
        stack=stack,
    )


def stack_role(
    name: str,
    ctx: AwsContext,
    assume_role_policy: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """A role of this stack: one of `STACK_ROLES`, under the stack's path and bounded by its workload boundary (the
    deploy role may create no other kind). A new trust policy replaces the role instead of rewriting it in place, so
    the deploy role needs no iam:UpdateAssumeRolePolicy (which IAM cannot limit to a trust policy's content)."""
    if name.removeprefix(f"{ctx.stack}-") not in STACK_ROLES:
        raise ValueError(f"role {name!r} is not one of the stack's roles {sorted(STACK_ROLES)} (stacks/aws_context.py)")
    return aws.iam.Role(
        name,
        path=ctx.role_path,
        permissions_boundary=ctx.boundary_arn,
        assume_role_policy=assume_role_policy,
        tags=tags,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(replace_on_changes=["assumeRolePolicy"])),
    )


def deployer_arn(ctx: AwsContext) -> str:
    """The IAM role (or user) behind the identity running Pulumi, as EKS access entries name it."""
    return str(aws.iam.get_session_context(arn=ctx.caller_arn).issuer_arn)


def statement(
    actions: Sequence[str],
    resources: Sequence[str] | str,
    condition: Mapping[str, Mapping[str, Any]] | None = None,
    sid: str | None = None,
) -> dict[str, Any]:
    """One Allow statement; actions are always explicit (no wildcards, enforced by the policy pack)."""
    body: dict[str, Any] = {"Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        body["Condition"] = condition
    if sid:
        body["Sid"] = sid
    return body


def tag_keys(condition_key: str, tags: Mapping[str, str]) -> dict[str, str]:
    """`tags` as the keys of an IAM condition, e.g. `aws:RequestTag/Project` for `aws:RequestTag`."""
    return {f"{condition_key}/{key}": value for key, value in tags.items()}


def policy_json(statements: Sequence[Mapping[str, Any]]) -> str:
    """An IAM policy document as JSON."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def ecr_pull_statements(repository_arns: Sequence[str]) -> list[dict[str, Any]]:
    """Log in to ECR and pull images from the given repositories only."""
    return [
        # GetAuthorizationToken has no resource-level permissions: AWS only accepts "*" here.
        statement(["ecr:GetAuthorizationToken"], "*", sid="EcrLogin"),
        statement(ECR_PULL_ACTIONS, list(repository_arns), sid="EcrPull"),
    ]


def model_read_policy(location: S3Location, ctx: AwsContext) -> str:
    """Read exactly one model prefix: GetObject below it, ListBucket restricted to it."""
    prefix = location.prefix.rstrip("/")
    bucket = ctx.arn("s3", location.bucket, region=False, account=False)
    return policy_json(
        [
            statement(["s3:GetObject"], f"{bucket}/{prefix}/*", sid="ReadModel"),
            statement(
                ["s3:ListBucket"],
                bucket,
                condition={"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
                sid="ListModel",
            ),
        ]
    )


def web_identity_trust_policy(provider_arn: str, issuer: str, subject: str) -> str:
    """Trust the tokens of one OIDC provider for one subject, with the STS audience (GitHub Actions, EKS IRSA)."""
    return policy_json(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com", f"{issuer}:sub": subject}},
            }
        ]
    )


def service_trust_policy(service: str, ctx: AwsContext, source_arn: str | None = None) -> str:
    """Trust policy letting one AWS service assume a role, only for this account (confused deputy)."""
    condition: dict[str, dict[str, Any]] = {"StringEquals": {"aws:SourceAccount": ctx.account_id}}
    if source_arn:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    return policy_json(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ]
    )
