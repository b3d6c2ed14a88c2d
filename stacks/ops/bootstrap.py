"""The one-time setup before the first push on main: everything the stacks and CI need that no stack can create.

`python -m stacks.ops bootstrap` makes, in order and idempotently (a re-run changes only what differs):

1. the state bucket (versioned, encrypted, private, TLS only): Pulumi's state under `.pulumi/`, released models under
   `models/<digest>/` (CI bakes the model from there, so the first push does not wait for a bucket a stack creates);
2. the KMS key and its alias that encrypt the stacks' secrets;
3. GitHub's OIDC provider, the workload boundary (`stacks.ops.boundary`) and the three CI roles (`stacks.ops.ci_roles`);
4. with `--model DIR`, the released model (refused when trained on synthetic data, unless allowed).

It prints what is left for a person: the Pulumi commands that create the three stacks with that key (commit the stack
files they write) and the GitHub variables to set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stacks.ops import OpsError, error_code
from stacks.ops.boundary import boundary_name, workload_boundary_policy
from stacks.ops.ci_roles import GITHUB_OIDC, CiSetup, ci_roles
from stacks.ops.model_digest import directory_digest

if TYPE_CHECKING:
    from boto3.session import Session

#: Where released models live in the state bucket (the publish role reads only this prefix).
MODELS_PREFIX = "models"
PROJECTS = {"root": ".", "ecs": "stacks/ecs", "eks": "stacks/eks"}


@dataclass(frozen=True)
class Bootstrap:
    """What was made, for the next steps."""

    setup: CiSetup
    kms_alias: str
    role_arns: dict[str, str]
    model_uri: str | None = None
    model_sha256: str | None = None

    @property
    def secrets_provider(self) -> str:
        return f"awskms://{self.kms_alias}?region={self.setup.region}"

    @property
    def backend(self) -> str:
        return f"s3://{self.setup.state_bucket}"


def _state_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration=dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        ),
    )


def _tls_only(s3: Any, bucket: str) -> None:
    """Deny every request without TLS (set last, once the bucket holds what this run uploads)."""
    arn = f"arn:aws:s3:::{bucket}"
    tls_only = {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [tls_only]}))


def _kms_key(kms: Any, alias: str, description: str) -> str:
    """The key id behind the alias, made with the alias when it does not exist yet."""
    for page in kms.get_paginator("list_aliases").paginate():
        for entry in page["Aliases"]:
            if entry["AliasName"] == alias and entry.get("TargetKeyId"):
                return str(entry["TargetKeyId"])
    key_id = str(kms.create_key(Description=description)["KeyMetadata"]["KeyId"])
    kms.enable_key_rotation(KeyId=key_id)
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def _github_oidc_provider(iam: Any, account_id: str) -> None:
    arn = f"arn:aws:iam::{account_id}:oidc-provider/{GITHUB_OIDC}"
    existing = {p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]}
    if arn not in existing:
        iam.create_open_id_connect_provider(Url=f"https://{GITHUB_OIDC}", ClientIDList=["sts.amazonaws.com"])


def _boundary(iam: Any, setup: CiSetup) -> None:
    document = workload_boundary_policy(setup.ctx)
    arn = setup.ctx.boundary_arn
    try:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    except iam.exceptions.NoSuchEntityException:
        iam.create_policy(PolicyName=boundary_name(setup.name), PolicyDocument=document)
        return
    for old in [v for v in versions if not v["IsDefaultVersion"]]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=old["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)


def _roles(iam: Any, setup: CiSetup) -> dict[str, str]:
    arns = {}
    for name, spec in ci_roles(setup).items():
        trust = json.dumps(spec["trustPolicy"])
        try:
            arns[name] = iam.get_role(RoleName=name)["Role"]["Arn"]
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
            iam.update_role(RoleName=name, MaxSessionDuration=spec["maxSessionDuration"])
        except iam.exceptions.NoSuchEntityException:
            arns[name] = iam.create_role(
                RoleName=name, AssumeRolePolicyDocument=trust, MaxSessionDuration=spec["maxSessionDuration"]
            )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=name, PolicyName="permissions", PolicyDocument=json.dumps(spec["permissionPolicy"])
        )
    return arns


def check_model(directory: Path, *, allow_synthetic: bool) -> str:
    """The model's pinning digest, once it is known not to be a synthetic-data model (unless allowed)."""
    digest = directory_digest(directory)
    manifest = directory / "manifest.json"
    try:
        synthetic = bool(json.loads(manifest.read_text())["data"]["synthetic"])
    except (OSError, KeyError, TypeError, ValueError):
        raise OpsError(f"{manifest} is missing or not a model manifest: point at a trained model folder") from None
    if synthetic and not allow_synthetic:
        raise OpsError(
            f"{directory} was trained on SYNTHETIC data (what `make demo` trains without the real file): it must not "
            "reach a deployment. Train on the real file first: `uv run python -m ml.download` then `uv run python -m "
            "ml.train --data data/diabetes_012_health_indicators_BRFSS2015.csv.gz --output artifacts/model`. For a "
            "throw-away test of the pipeline only, pass --allow-synthetic."
        )
    return digest


def release_model(s3: Any, bucket: str, directory: Path, *, allow_synthetic: bool) -> tuple[str, str]:
    """Upload a model folder under `models/<digest>/`; returns (MODEL_S3_URI, MODEL_SHA256)."""
    digest = check_model(directory, allow_synthetic=allow_synthetic)
    prefix = f"{MODELS_PREFIX}/{digest}"
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")):
        s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    return f"s3://{bucket}/{prefix}", digest


def bootstrap(
    session: Session,
    setup: CiSetup,
    *,
    kms_alias: str,
    model: Path | None = None,
    allow_synthetic: bool = False,
) -> Bootstrap:
    """Run the setup in order; safe to repeat."""
    if not kms_alias.startswith("alias/"):
        raise OpsError(f"--kms-alias must start with alias/, got {kms_alias!r}")
    if model is not None:
        check_model(model, allow_synthetic=allow_synthetic)  # before anything is made
    s3, iam = session.client("s3", region_name=setup.region), session.client("iam")
    _state_bucket(s3, setup.state_bucket, setup.region)
    key_id = _kms_key(session.client("kms", region_name=setup.region), kms_alias, f"Pulumi secrets of {setup.name}")
    setup = CiSetup(**{**setup.__dict__, "kms_key_id": key_id})
    _github_oidc_provider(iam, setup.account_id)
    _boundary(iam, setup)
    roles = _roles(iam, setup)
    uri = sha = None
    if model is not None:
        uri, sha = release_model(s3, setup.state_bucket, model, allow_synthetic=allow_synthetic)
    _tls_only(s3, setup.state_bucket)
    return Bootstrap(setup, kms_alias, roles, uri, sha)


def next_steps(done: Bootstrap) -> str:
    """The commands left for a person, in order, with this bootstrap's values."""
    setup = done.setup
    init = "\n".join(
        f"pulumi stack init {setup.environment} -C {folder} --secrets-provider '{done.secrets_provider}'\n"
        f"pulumi config set -C {folder} -s {setup.environment} aws:region {setup.region}"
        for folder in PROJECTS.values()
    )
    roles = {job: done.role_arns[setup.role_name(job)] for job in ("preview", "publish", "deploy")}
    model = (
        f"gh variable set MODEL_S3_URI --env {setup.environment} --body '{done.model_uri}'\n"
        f"gh variable set MODEL_SHA256 --env {setup.environment} --body '{done.model_sha256}'"
        if done.model_uri
        else "# no model released yet: rerun with --model artifacts/model (trained on the real file)"
    )
    stack_files = f"Pulumi.{setup.environment}.yaml stacks/*/Pulumi.{setup.environment}.yaml"
    return f"""Bootstrap of {setup.name} in {setup.region} done: state bucket {setup.state_bucket},
key {done.kms_alias}, boundary {setup.ctx.boundary_arn}, roles {", ".join(sorted(done.role_arns))}.

Next, once, in this order:
pulumi login {done.backend}
{init}
git add {stack_files} && git commit -m "Stacks of {setup.environment}"
gh variable set AWS_REGION --body '{setup.region}'
gh variable set PULUMI_BACKEND_URL --body '{done.backend}'
gh variable set AWS_PREVIEW_ROLE_ARN --body '{roles["preview"]}'
gh variable set EKS_ENABLED --body 'false'   # 'true' once the EKS stack is wanted
gh variable set AWS_PUBLISH_ROLE_ARN --env {setup.environment} --body '{roles["publish"]}'
gh variable set AWS_DEPLOY_ROLE_ARN --env {setup.environment} --body '{roles["deploy"]}'
{model}
Then push to main: root up, publish, ECS up and verify go green in that order."""
