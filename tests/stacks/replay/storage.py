"""Where things are kept: ECR repositories and lifecycle policies (moto validates the rules), S3 buckets and their
settings, CloudWatch log groups."""

from __future__ import annotations

from typing import Any

from tests.stacks.harness import REGION
from tests.stacks.replay.calls import Clients, Declared, Replayer, renamed, tag_list


def repository(clients: Clients, d: Declared) -> dict[str, Any]:
    (encryption,) = d["encryptionConfigurations"]  # the API takes one
    created = clients("ecr").create_repository(
        repositoryName=d["name"],
        imageTagMutability=d["imageTagMutability"],
        imageScanningConfiguration=renamed(d["imageScanningConfiguration"], {"scanOnPush": "scanOnPush"}),
        encryptionConfiguration=renamed(encryption, {"encryptionType": "encryptionType", "kmsKey": "kmsKey"}),
        tags=tag_list(d.tags),
    )["repository"]
    return {
        "id": created["repositoryName"],
        "name": created["repositoryName"],
        "arn": created["repositoryArn"],
        "repositoryUrl": created["repositoryUri"],
        "registryId": created["registryId"],
    }


def lifecycle_policy(clients: Clients, d: Declared) -> dict[str, Any]:
    clients("ecr").put_lifecycle_policy(repositoryName=d["repository"], lifecyclePolicyText=d["policy"])
    return {"id": d["repository"]}


def bucket(clients: Clients, d: Declared) -> dict[str, Any]:
    s3 = clients("s3")
    name = d.name("bucket").lower()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    d.provider_only("forceDestroy")  # the provider empties the bucket on delete
    if d.tags:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(d.tags)})
    return {"id": name, "bucket": name, "arn": f"arn:aws:s3:::{name}"}


PUBLIC_ACCESS_BLOCK = {
    "blockPublicAcls": "BlockPublicAcls",
    "blockPublicPolicy": "BlockPublicPolicy",
    "ignorePublicAcls": "IgnorePublicAcls",
    "restrictPublicBuckets": "RestrictPublicBuckets",
}


def public_access_block(clients: Clients, d: Declared) -> dict[str, Any]:
    settings = {key: d[key] for key in PUBLIC_ACCESS_BLOCK if key in d.inputs}
    clients("s3").put_public_access_block(
        Bucket=d["bucket"], PublicAccessBlockConfiguration=renamed(settings, PUBLIC_ACCESS_BLOCK)
    )
    return {"id": d["bucket"]}


def ownership_controls(clients: Clients, d: Declared) -> dict[str, Any]:
    rule = renamed(d["rule"], {"objectOwnership": "ObjectOwnership"})
    clients("s3").put_bucket_ownership_controls(Bucket=d["bucket"], OwnershipControls={"Rules": [rule]})
    return {"id": d["bucket"]}


def encryption(clients: Clients, d: Declared) -> dict[str, Any]:
    rules = []
    for rule in d["rules"]:
        default = renamed(
            rule["applyServerSideEncryptionByDefault"],
            {"sseAlgorithm": "SSEAlgorithm", "kmsMasterKeyId": "KMSMasterKeyID"},
        )
        rules.append({"ApplyServerSideEncryptionByDefault": default})
    clients("s3").put_bucket_encryption(Bucket=d["bucket"], ServerSideEncryptionConfiguration={"Rules": rules})
    return {"id": d["bucket"]}


def versioning(clients: Clients, d: Declared) -> dict[str, Any]:
    configuration = renamed(d["versioningConfiguration"], {"status": "Status"})
    clients("s3").put_bucket_versioning(Bucket=d["bucket"], VersioningConfiguration=configuration)
    return {"id": d["bucket"]}


LIFECYCLE_RULE = {"id": "ID", "status": "Status", "filter": "Filter", "expiration": "Expiration"}


def lifecycle_configuration(clients: Clients, d: Declared) -> dict[str, Any]:
    rules = []
    for rule in d["rules"]:
        api = renamed(rule, LIFECYCLE_RULE)
        api["Filter"] = renamed(api["Filter"], {"prefix": "Prefix"})
        api["Expiration"] = renamed(api["Expiration"], {"days": "Days"})
        rules.append(api)
    clients("s3").put_bucket_lifecycle_configuration(Bucket=d["bucket"], LifecycleConfiguration={"Rules": rules})
    return {"id": d["bucket"]}


def bucket_policy(clients: Clients, d: Declared) -> dict[str, Any]:
    clients("s3").put_bucket_policy(Bucket=d["bucket"], Policy=d["policy"])
    return {"id": d["bucket"]}


def log_group(clients: Clients, d: Declared) -> dict[str, Any]:
    logs = clients("logs")
    name = d.name()
    logs.create_log_group(logGroupName=name, tags=d.tags)
    if "retentionInDays" in d.inputs:
        logs.put_retention_policy(logGroupName=name, retentionInDays=d["retentionInDays"])
    (group,) = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    # The provider reports the ARN without the trailing `:*` the API adds.
    return {"id": name, "name": name, "arn": group["arn"].removesuffix(":*")}


REPLAYERS: dict[str, Replayer] = {
    "aws:ecr/repository:Repository": repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": lifecycle_policy,
    "aws:s3/bucket:Bucket": bucket,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": public_access_block,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ownership_controls,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": encryption,
    "aws:s3/bucketVersioning:BucketVersioning": versioning,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": lifecycle_configuration,
    "aws:s3/bucketPolicy:BucketPolicy": bucket_policy,
    "aws:cloudwatch/logGroup:LogGroup": log_group,
}
