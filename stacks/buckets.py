"""The root's two S3 buckets: the model store the platforms may read, and the load balancers' access logs.

Both are private (public access blocked, bucket-owner-enforced ownership), encrypted and TLS-only. Their names are
autonamed (`<project>-<env>-models-<random>`), so they are unique across accounts and a replacement never clashes.
The model bucket is versioned and never force-deleted; the log bucket expires its objects after the stack's log
retention and may be emptied by a destroy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.aws_context import AwsContext, policy_json, statement
from stacks.config import SharedSettings
from stacks.shared import ECS_ACCESS_LOG_PREFIX, EKS_ACCESS_LOG_PREFIX

#: The service principal that delivers ALB logs in regions launched from August 2022.
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"


def tls_only(bucket_arn: str) -> dict[str, Any]:
    """Deny every request that does not use TLS."""
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def access_log_policy(bucket_arn: str, elb_account_arn: str, account_id: str, prefixes: Sequence[str]) -> str:
    """Let Elastic Load Balancing write access logs under each prefix (older regions use the regional ELB account,
    newer ones the log-delivery service principal), for this account's load balancers only."""
    resources = [f"{bucket_arn}/{prefix}/AWSLogs/{account_id}/*" for prefix in prefixes]
    writers = [
        {**statement(["s3:PutObject"], resources, sid="ElbAccount"), "Principal": {"AWS": elb_account_arn}},
        {
            **statement(
                ["s3:PutObject"], resources, {"StringEquals": {"aws:SourceAccount": account_id}}, sid="ElbDelivery"
            ),
            "Principal": {"Service": ELB_LOG_DELIVERY},
        },
    ]
    return policy_json([*writers, tls_only(bucket_arn)])


def model_bucket_policy(bucket_arn: str) -> str:
    """Nothing but TLS: readers get access through their own IAM role (the ECS task role, the pod's IRSA role)."""
    return policy_json([tls_only(bucket_arn)])


def _private_bucket(
    name: str, tags: dict[str, str], opts: pulumi.ResourceOptions, *, force_destroy: bool
) -> aws.s3.Bucket:
    """An encrypted (SSE-S3: ALB logs accept no other), ACL-less bucket with every kind of public access blocked."""
    bucket = aws.s3.Bucket(name, force_destroy=force_destroy, tags=tags, opts=opts)
    aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=opts)
    aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
        opts=opts,
    )
    return bucket


class Buckets(pulumi.ComponentResource):
    """The model bucket and the access-log bucket."""

    model_bucket: aws.s3.Bucket
    access_log_bucket: aws.s3.Bucket

    def __init__(
        self, name: str, settings: SharedSettings, ctx: AwsContext, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("diabetes:shared:Buckets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("storage")

        self.model_bucket = _private_bucket(f"{settings.name}-models", tags, child, force_destroy=False)
        aws.s3.BucketVersioning(
            f"{settings.name}-models",
            bucket=self.model_bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{settings.name}-models",
            bucket=self.model_bucket.id,
            policy=self.model_bucket.arn.apply(model_bucket_policy),
            opts=child,
        )

        self.access_log_bucket = _private_bucket(f"{settings.name}-access-logs", tags, child, force_destroy=True)
        aws.s3.BucketLifecycleConfiguration(
            f"{settings.name}-access-logs",
            bucket=self.access_log_bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": settings.log_retention_days},
                }
            ],
            opts=child,
        )
        elb_account = aws.elb.get_service_account().arn
        aws.s3.BucketPolicy(
            f"{settings.name}-access-logs",
            bucket=self.access_log_bucket.id,
            policy=self.access_log_bucket.arn.apply(
                lambda arn: access_log_policy(
                    arn, elb_account, ctx.account_id, (ECS_ACCESS_LOG_PREFIX, EKS_ACCESS_LOG_PREFIX)
                )
            ),
            opts=child,
        )
        self.register_outputs({})
