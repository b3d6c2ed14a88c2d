"""The one-time setup before the first push on main: everything the stacks and CI need that no stack can create.

`python -m stacks.ops bootstrap` makes, in order and idempotently (a re-run changes only what differs), for ONE
environment (dev, trial, prod each get their own):

1. the environment's state bucket (versioned, encrypted, private, TLS only; refused when it already holds another
   environment's stacks): Pulumi's state under `.pulumi/`, released models under `models/<digest>/` (CI bakes the model
   from there, so the first push does not wait for a bucket a stack creates);
2. the environment's KMS key and alias (`alias/<project>-<env>-pulumi`) that encrypt its stacks' secrets;
3. GitHub's OIDC provider, the workload boundary (`stacks.ops.boundary`) and the three CI roles (`stacks.ops.ci_roles`),
   their permissions as managed policies (`<role>-<n>`, under `/<project>-<env>-ci/`; the deploy role's exceed an
   inline policy's size limit);
4. with `--model DIR`, the released model (refused when trained on synthetic data, unless allowed).

It prints what is left for a person: the protected GitHub environment (deployments from `main` only, optional
reviewers), the Pulumi commands that create the three stacks with that key (commit the stack files they write) and
the GitHub variables, each named for its environment so that a second environment never overwrites the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from stacks.buckets import tls_only
from stacks.ops import OpsError, error_code
from stacks.ops.boundary import workload_boundary_policy
from stacks.ops.ci_roles import GITHUB_OIDC, PULUMI_PROJECTS, CiSetup, ci_roles
from stacks.ops.model_digest import directory_digest

if TYPE_CHECKING:
    from boto3.session import Session

#: Where released models live in the state bucket (the publish role reads only this prefix).
MODELS_PREFIX = "models"
PROJECTS = {"root": ".", "ecs": "stacks/ecs", "eks": "stacks/eks"}
#: The S3 Block Public Access settings, every one on (the state bucket's, and the account-wide check).
BLOCK_PUBLIC_ACCESS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass(frozen=True)
class Bootstrap:
    """What was made, for the next steps."""

    setup: CiSetup
    kms_alias: str
    role_arns: dict[str, str]
    model_uri: str | None = None
    model_sha256: str | None = None
    #: GitHub users who must approve each deployment to the environment (none: deployments from `main` only).
    reviewers: tuple[str, ...] = ()
    #: Whether S3 Block Public Access is on for the whole account (then no bucket policy can make a bucket public);
    #: None when it could not be read.
    account_blocks_public: bool | None = True

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
        PublicAccessBlockConfiguration=dict.fromkeys(BLOCK_PUBLIC_ACCESS, True),
    )


def _bucket_tags(s3: Any, bucket: str) -> dict[str, str]:
    try:
        tag_set = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except Exception as exc:
        if error_code(exc) != "NoSuchTagSet":
            raise
        tag_set = []
    return {item["Key"]: item["Value"] for item in tag_set}


def check_state_bucket_owner(s3: Any, setup: CiSetup) -> dict[str, str]:
    """The bucket's tags, once sure they name no other project or environment than `setup`'s: the state bucket is
    tagged with its environment when the bootstrap first takes it, so a second environment is refused before any
    `pulumi stack init` has written state there (`other_environments` sees state only)."""
    tags = _bucket_tags(s3, setup.state_bucket)
    theirs = {key: tags[key] for key, value in setup.owner.items() if tags.get(key, value) != value}
    if theirs:
        raise OpsError(
            f"s3://{setup.state_bucket} is tagged as the state bucket of {theirs}, not of {setup.owner}: each "
            f"environment has a state bucket of its own, so that its CI roles cannot touch another's state; pass e.g. "
            f"--state-bucket {setup.state_bucket}-{setup.environment}"
        )
    return tags


def other_environments(s3: Any, bucket: str, environment: str) -> list[str]:
    """The environments (stack names) whose state the bucket already holds, other than `environment`: an environment
    has a bucket of its own, so that its CI roles can never read or write another's state."""
    found: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=".pulumi/stacks/"):
        for entry in page.get("Contents", []):
            parts = entry["Key"].removeprefix(".pulumi/stacks/").split("/")
            if len(parts) == 2 and parts[0] in PULUMI_PROJECTS:
                found.add(parts[1].split(".json", 1)[0])
    return sorted(found - {environment})


def _tls_only(s3: Any, setup: CiSetup) -> None:
    """Deny every request without TLS (set last, once the bucket holds what this run uploads), keeping every other
    statement of a policy the bucket already has."""
    bucket = setup.state_bucket
    deny = tls_only(setup.bucket_arn(bucket))
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except Exception as exc:
        if error_code(exc) != "NoSuchBucketPolicy":
            raise
        policy = {"Version": "2012-10-17", "Statement": []}
    kept = [item for item in policy.get("Statement", []) if item.get("Sid") != deny["Sid"]]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": [*kept, deny]}))


def _kms_key(kms: Any, alias: str, description: str) -> str:
    """The key id behind the alias, made with the alias when it does not exist yet; refused when the alias names
    another environment's key (each environment's secrets have a key of their own)."""
    for page in kms.get_paginator("list_aliases").paginate():
        for entry in page["Aliases"]:
            if entry["AliasName"] == alias and entry.get("TargetKeyId"):
                key_id = str(entry["TargetKeyId"])
                found = kms.describe_key(KeyId=key_id)["KeyMetadata"].get("Description", "")
                if found != description:
                    raise OpsError(
                        f"{alias} names a key described as {found!r}, not {description!r}: each environment has a key "
                        "of its own; pass --kms-alias alias/<project>-<env>-pulumi (the default) or another new alias"
                    )
                return key_id
    key_id = str(kms.create_key(Description=description)["KeyMetadata"]["KeyId"])
    kms.enable_key_rotation(KeyId=key_id)
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def _github_oidc_provider(iam: Any, setup: CiSetup) -> None:
    existing = {p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]}
    if setup.github_provider_arn not in existing:
        iam.create_open_id_connect_provider(Url=f"https://{GITHUB_OIDC}", ClientIDList=["sts.amazonaws.com"])


def _boundary(iam: Any, setup: CiSetup) -> None:
    ctx = setup.ctx
    _managed_policy(iam, ctx.boundary_arn, ctx.boundary_name, "/", workload_boundary_policy(ctx, setup.owner))


def _managed_policy(iam: Any, arn: str, name: str, path: str, document: str) -> None:
    """Create a managed policy, or make `document` its default version (the oldest other version goes: IAM keeps 5)."""
    try:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    except iam.exceptions.NoSuchEntityException:
        iam.create_policy(PolicyName=name, Path=path, PolicyDocument=document)
        return
    for old in [v for v in versions if not v["IsDefaultVersion"]]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=old["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)


def ci_policy_path(setup: CiSetup) -> str:
    """The IAM path of the CI roles' managed policies (no role may change them; they are not the workloads')."""
    return f"/{setup.name}-ci/"


def _roles(iam: Any, setup: CiSetup) -> dict[str, str]:
    arns = {}
    path = ci_policy_path(setup)
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
        wanted = []
        for index, document in enumerate(spec["permissionPolicies"], start=1):
            arn = setup.ctx.arn("iam", f"policy{path}{name}-{index}", region=False)
            _managed_policy(iam, arn, f"{name}-{index}", path, json.dumps(document))
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
            wanted.append(arn)
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            if attached["PolicyArn"] not in wanted:  # a part the policies no longer need
                iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        if "permissions" in iam.list_role_policies(RoleName=name)["PolicyNames"]:  # the inline policy of before
            iam.delete_role_policy(RoleName=name, PolicyName="permissions")
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


def account_blocks_public(s3control: Any, account_id: str) -> bool | None:
    """Whether the account blocks public buckets (None: it could not be read): IAM has no condition on a bucket
    policy's content, so this is what stops the deploy role (which writes the model and access-log buckets' policies)
    from making one public."""
    try:
        settings = s3control.get_public_access_block(AccountId=account_id)["PublicAccessBlockConfiguration"]
    except s3control.exceptions.NoSuchPublicAccessBlockConfiguration:
        return False
    except (ClientError, BotoCoreError):
        return None
    return all(settings.get(name) for name in BLOCK_PUBLIC_ACCESS)


def default_kms_alias(setup: CiSetup) -> str:
    """The environment's own key: `alias/<project>-<env>-pulumi`."""
    return f"alias/{setup.name}-pulumi"


def bootstrap(
    session: Session,
    setup: CiSetup,
    *,
    kms_alias: str | None = None,
    model: Path | None = None,
    allow_synthetic: bool = False,
    reviewers: tuple[str, ...] = (),
) -> Bootstrap:
    """Run the setup in order; safe to repeat."""
    kms_alias = kms_alias or default_kms_alias(setup)
    variable_suffix(setup.environment)  # refuse a name GitHub variables cannot carry, before anything is made
    if not kms_alias.startswith("alias/"):
        raise OpsError(f"--kms-alias must start with alias/, got {kms_alias!r}")
    if model is not None:
        check_model(model, allow_synthetic=allow_synthetic)  # before anything is made
    s3, iam = session.client("s3", region_name=setup.region), session.client("iam")
    _state_bucket(s3, setup.state_bucket, setup.region)
    tags = check_state_bucket_owner(s3, setup)
    others = other_environments(s3, setup.state_bucket, setup.environment)
    if others:
        raise OpsError(
            f"s3://{setup.state_bucket} already holds the state of {others}: each environment has a state bucket of "
            f"its own, so that its CI roles cannot touch another's state; pass e.g. --state-bucket "
            f"{setup.state_bucket}-{setup.environment}"
        )
    if not tags.items() >= setup.owner.items():
        tagged = {**tags, **setup.owner}
        s3.put_bucket_tagging(
            Bucket=setup.state_bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tagged.items()]}
        )
    key_id = _kms_key(session.client("kms", region_name=setup.region), kms_alias, f"Pulumi secrets of {setup.name}")
    setup = CiSetup(**{**setup.__dict__, "kms_key_id": key_id})
    _github_oidc_provider(iam, setup)
    _boundary(iam, setup)
    roles = _roles(iam, setup)
    uri = sha = None
    if model is not None:
        uri, sha = release_model(s3, setup.state_bucket, model, allow_synthetic=allow_synthetic)
    _tls_only(s3, setup)
    blocked = account_blocks_public(session.client("s3control", region_name=setup.region), setup.account_id)
    return Bootstrap(setup, kms_alias, roles, uri, sha, reviewers, blocked)


def variable_suffix(environment: str) -> str:
    """`DEV` for `dev`: repository variables are per environment (`AWS_REGION_DEV`); GitHub compares variable names
    case-insensitively, so the workflow finds them as `vars[format('AWS_REGION_{0}', matrix.stack)]`."""
    if not environment.replace("_", "").isalnum():
        raise OpsError(f"environment {environment!r}: use letters and digits only (it names GitHub variables)")
    return environment.upper()


def github_environment(setup: CiSetup, reviewers: tuple[str, ...]) -> str:
    """The commands that create the GitHub environment the publish and deploy roles trust, deployable from `main`
    only (and after a reviewer's approval, with reviewers): `gh variable set --env` needs it to exist."""
    repo_env = f"repos/{setup.repository}/environments/{setup.environment}"
    approval = ""
    if reviewers:
        users = ", ".join(f'{{"type": "User", "id": $(gh api users/{login} --jq .id)}}' for login in reviewers)
        approval = f', "reviewers": [{users}]'
    return (
        f"gh api --method PUT {repo_env} --input - <<JSON\n"
        '{"deployment_branch_policy": {"protected_branches": false, "custom_branch_policies": true}'
        f"{approval}}}\nJSON\n"
        f"gh api --method POST {repo_env}/deployment-branch-policies -f name=main -f type=branch"
    )


def next_steps(done: Bootstrap) -> str:
    """The commands left for a person, in order, with this bootstrap's values."""
    setup = done.setup
    suffix = variable_suffix(setup.environment)
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
    environment = (
        f"# 1. The GitHub environment {setup.environment}: the publish and deploy roles trust its jobs only; main "
        "only deploys."
    )
    state = "off" if done.account_blocks_public is False else "unknown (it could not be read)"
    public = (
        ""
        if done.account_blocks_public
        else f"# 0. S3 Block Public Access is {state} for this account: the deploy role writes the model and\n"
        "#    access-log buckets' policies, and IAM cannot hold a policy's content. Turn it on (after checking that\n"
        "#    no bucket of the account must stay public): S3 then refuses a public bucket policy from anyone.\n"
        f"aws s3control put-public-access-block --account-id {setup.account_id} --public-access-block-configuration "
        + ",".join(f"{name}=true" for name in BLOCK_PUBLIC_ACCESS)
        + "\n"
    )
    return f"""Bootstrap of {setup.name} in {setup.region} done: state bucket {setup.state_bucket} (this environment's
only), key {done.kms_alias}, boundary {setup.ctx.boundary_arn}, roles {", ".join(sorted(done.role_arns))}.

Next, once, in this order:
{public}{environment}
{github_environment(setup, done.reviewers)}
# 2. The three stacks, with this environment's backend and key (commit the stack files: they hold the encryptedkey).
pulumi login {done.backend}
{init}
git add {stack_files} && git commit -m "Stacks of {setup.environment}"
# 3. The variables, named for this environment (another environment's bootstrap never overwrites them).
gh variable set AWS_REGION_{suffix} --body '{setup.region}'
gh variable set PULUMI_BACKEND_URL_{suffix} --body '{done.backend}'
gh variable set AWS_PREVIEW_ROLE_ARN_{suffix} --body '{roles["preview"]}'
gh variable set EKS_ENABLED_{suffix} --body 'false'   # 'true' once the EKS stack is wanted and its endpoint reachable
gh variable set AWS_PUBLISH_ROLE_ARN --env {setup.environment} --body '{roles["publish"]}'
gh variable set AWS_DEPLOY_ROLE_ARN --env {setup.environment} --body '{roles["deploy"]}'
{model}
Then list {setup.environment} in the workflow's stack matrices (.github/workflows/ci.yml) and push to main: root up,
publish, ECS up and verify go green in that order."""
