"""`stacks.ops bootstrap` against a real moto server: what the first push on main needs exists afterwards, a second run
changes nothing it should keep, and a synthetic-data model is refused on the way to a deployment."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from stacks.ops import OpsError
from stacks.ops.bootstrap import Bootstrap, bootstrap, check_model, next_steps
from stacks.ops.ci_roles import CiSetup
from tests.stacks.ops_cli import run_ops


def _setup(bucket: str) -> CiSetup:
    return CiSetup("acme/diabetes", "dev", "123456789012", "eu-west-1", bucket, "", "diabetes")


def _real_copy(model: Path, tmp_path: Path) -> Path:
    """The trained (synthetic) model relabelled as trained on the real file, to release it."""
    copy = Path(shutil.copytree(model, tmp_path / "real-model"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["data"]["synthetic"] = False
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_the_bootstrap_makes_everything_the_first_push_needs(
    aws_env: dict[str, str], trained_model_dir: Path, tmp_path: Path
) -> None:
    session = boto3.session.Session()
    model = _real_copy(trained_model_dir, tmp_path)
    done = bootstrap(session, _setup("acme-diabetes-pulumi-dev"), model=model, reviewers=("alice",))
    again = bootstrap(session, _setup("acme-diabetes-pulumi-dev"))
    assert again.setup.kms_key_id == done.setup.kms_key_id, "the second run reuses the key behind the alias"
    assert done.kms_alias == "alias/diabetes-dev-pulumi", "each environment has a key of its own"

    s3, iam = session.client("s3"), session.client("iam")
    bucket = "acme-diabetes-pulumi-dev"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]

    boundary = iam.get_policy(PolicyArn=done.setup.ctx.boundary_arn)["Policy"]
    assert boundary["PolicyName"] == "diabetes-dev-workload-boundary"
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert {"diabetes-dev-github-preview", "diabetes-dev-github-publish", "diabetes-dev-github-deploy"} <= roles
    # The permissions are managed policies (the deploy role's exceed an inline policy's 10,240 characters).
    attached = iam.list_attached_role_policies(RoleName="diabetes-dev-github-deploy")["AttachedPolicies"]
    assert len(attached) >= 2
    assert iam.list_role_policies(RoleName="diabetes-dev-github-deploy")["PolicyNames"] == []
    documents = [
        iam.get_policy_version(
            PolicyArn=a["PolicyArn"], VersionId=iam.get_policy(PolicyArn=a["PolicyArn"])["Policy"]["DefaultVersionId"]
        )["PolicyVersion"]["Document"]
        for a in attached
    ]
    assert done.setup.kms_key_id in json.dumps(documents), "the roles name the key the bootstrap made"
    providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert [p for p in providers if p["Arn"].endswith("token.actions.githubusercontent.com")]

    # The released model is where MODEL_S3_URI says, under its digest, before any stack exists.
    assert done.model_uri == f"s3://{bucket}/models/{done.model_sha256}"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{done.model_sha256}/")["Contents"]
    assert {o["Key"].rsplit("/", 1)[-1] for o in listed} == {p.name for p in model.iterdir()}

    steps = next_steps(done)
    for command in (
        "pulumi login s3://acme-diabetes-pulumi-dev",
        "pulumi stack init dev -C stacks/ecs --secrets-provider 'awskms://alias/diabetes-dev-pulumi?region=eu-west-1'",
        "gh variable set EKS_ENABLED_DEV --body 'false'",
        "gh variable set AWS_REGION_DEV --body 'eu-west-1'",
        "gh variable set AWS_PREVIEW_ROLE_ARN_DEV --body",
        "gh variable set PULUMI_BACKEND_URL_DEV --body 's3://acme-diabetes-pulumi-dev'",
        f"gh variable set MODEL_SHA256 --env dev --body '{done.model_sha256}'",
    ):
        assert command in steps
    assert "gh variable set AWS_REGION --body" not in steps, "a repository-wide variable another environment overwrites"


def test_a_synthetic_model_is_refused_on_the_way_to_a_deployment(trained_model_dir: Path) -> None:
    with pytest.raises(OpsError, match="trained on SYNTHETIC data") as caught:
        check_model(trained_model_dir, allow_synthetic=False)
    assert "uv run python -m ml.download" in str(caught.value)
    assert len(check_model(trained_model_dir, allow_synthetic=True)) == 64


def test_the_ci_digest_step_refuses_a_synthetic_model(trained_model_dir: Path) -> None:
    """CI's publish step runs `model-digest` on what it will bake: a synthetic model stops it with exit status 1."""
    done = run_ops("model-digest", str(trained_model_dir))
    assert done.returncode == 1
    assert "SYNTHETIC" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_bootstrap_creates_the_protected_github_environment_before_its_variables() -> None:
    """The publish and deploy roles trust the `dev` environment's jobs: nothing created or protected it, so any
    branch's job that named it got their tokens. The commands create it, deployable from main only, with reviewers."""
    setup = _setup("b")
    done = Bootstrap(
        setup,
        "alias/diabetes-dev-pulumi",
        {setup.role_name(j): f"arn:{j}" for j in ("preview", "publish", "deploy")},
        reviewers=("alice", "bob"),
    )
    steps = next_steps(done)
    create = steps.index("gh api --method PUT repos/acme/diabetes/environments/dev")
    branches = "repos/acme/diabetes/environments/dev/deployment-branch-policies -f name=main -f type=branch"
    policy = steps.index(f"gh api --method POST {branches}")
    assert create < policy < steps.index("gh variable set AWS_DEPLOY_ROLE_ARN --env dev")
    body = steps[create : steps.index("\nJSON", create)].split("\n", 1)[1]
    body = body.replace("$(gh api users/alice --jq .id)", "1").replace("$(gh api users/bob --jq .id)", "2")
    assert json.loads(body) == {
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
        "reviewers": [{"type": "User", "id": 1}, {"type": "User", "id": 2}],
    }


def test_a_second_environment_gets_its_own_bucket_and_key(aws_env: dict[str, str]) -> None:
    """Dev's deploy role could write prod's state in a shared bucket (and the state's kubeconfig runs as whoever runs
    the next admin destroy); a shared alias let every environment's preview role decrypt the others' secrets."""
    session = boto3.session.Session()
    s3 = session.client("s3")
    s3.create_bucket(Bucket="acme-shared-state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="acme-shared-state", Key=".pulumi/stacks/diabetes/dev.json", Body=b"{}")
    prod = CiSetup("acme/diabetes", "prod", "123456789012", "eu-west-1", "acme-shared-state", "", "diabetes")
    # An untagged bucket (made before the bootstrap tagged its buckets) is judged by the state it holds.
    with pytest.raises(OpsError, match=r"already holds the state of \['dev'\].*--state-bucket acme-shared-state-prod"):
        bootstrap(session, prod)
    bootstrap(session, _setup("acme-shared-state"))  # dev's own bucket: accepted
    with pytest.raises(
        OpsError, match=r"state bucket of \{'Environment': 'dev'\}.*--state-bucket acme-shared-state-prod"
    ):
        bootstrap(session, prod)
    with pytest.raises(OpsError, match="each environment has a key of its own"):
        bootstrap(
            session,
            CiSetup("acme/diabetes", "prod", "123456789012", "eu-west-1", "acme-prod-state", "", "diabetes"),
            kms_alias="alias/diabetes-dev-pulumi",
        )


def test_a_bucket_bootstrapped_for_one_environment_is_refused_to_another_before_any_state(
    aws_env: dict[str, str],
) -> None:
    """Review 2, N4: right after dev's bootstrap (before `pulumi stack init` writes any state) a trial bootstrap into
    dev's bucket was accepted, and both environments' roles then listed one bucket. The bucket carries its environment
    from the first bootstrap on; the tags a bucket already had are kept."""
    session = boto3.session.Session()
    s3 = session.client("s3")
    s3.create_bucket(Bucket="acme-first-state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_tagging(Bucket="acme-first-state", Tagging={"TagSet": [{"Key": "CostCenter", "Value": "ml"}]})
    bootstrap(session, _setup("acme-first-state"))
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="acme-first-state")["TagSet"]}
    assert tags == {"CostCenter": "ml", "Project": "diabetes", "Environment": "dev"}
    trial = replace(_setup("acme-first-state"), environment="trial")
    with pytest.raises(
        OpsError, match=r"state bucket of \{'Environment': 'dev'\}.*--state-bucket acme-first-state-trial"
    ):
        bootstrap(session, trial)
    assert s3.list_objects_v2(Bucket="acme-first-state").get("KeyCount", 0) == 0
    other_project = replace(_setup("acme-first-state"), project="payments")
    with pytest.raises(OpsError, match="Project"):
        bootstrap(session, other_project)
    bootstrap(session, _setup("acme-first-state"))  # its own environment again: accepted


def test_the_bootstrap_keeps_the_statements_a_state_bucket_policy_already_has(aws_env: dict[str, str]) -> None:
    session = boto3.session.Session()
    s3 = session.client("s3")
    s3.create_bucket(Bucket="acme-audited-state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    audit = {
        "Sid": "AuditRead",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::acme-audited-state/*",
    }
    s3.put_bucket_policy(
        Bucket="acme-audited-state", Policy=json.dumps({"Version": "2012-10-17", "Statement": [audit]})
    )
    bootstrap(session, _setup("acme-audited-state"))
    bootstrap(session, _setup("acme-audited-state"))
    statements = json.loads(s3.get_bucket_policy(Bucket="acme-audited-state")["Policy"])["Statement"]
    assert [item["Sid"] for item in statements] == ["AuditRead", "TlsOnly"]


def test_the_documented_bootstrap_runs_without_a_default_region(moto_endpoint: str, tmp_path: Path) -> None:
    """`--region` after the command set only the roles' region; the AWS session had none and STS failed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    done = run_ops(
        "bootstrap",
        "--repository",
        "acme/diabetes",
        "--environment",
        "dev",
        "--region",
        "eu-west-1",
        "--state-bucket",
        "acme-no-default-region-dev",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "gh variable set AWS_REGION_DEV --body 'eu-west-1'" in done.stdout


def test_the_bootstrap_asks_for_account_wide_block_public_access_until_it_is_on(aws_env: dict[str, str]) -> None:
    """The deploy role writes the model and access-log buckets' policies and IAM cannot hold a policy's content, so
    only the account's S3 Block Public Access stops it from making a bucket public: the bootstrap reads the account's
    setting and, while it is off (or unreadable), gives the command first.

    S3 Control addresses `<account>.<endpoint>`, which a moto server on 127.0.0.1 cannot answer: the setting is read
    from moto's in-process backend here, the bootstrap against the server reports it unreadable."""
    from moto import mock_aws

    from stacks.ops.bootstrap import account_blocks_public

    command = "aws s3control put-public-access-block --account-id 123456789012"
    with mock_aws(), pytest.MonkeyPatch.context() as in_process:
        in_process.delenv("AWS_ENDPOINT_URL")
        control = boto3.client("s3control", region_name="eu-west-1")
        assert account_blocks_public(control, "123456789012") is False
        partly = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False}
        control.put_public_access_block(AccountId="123456789012", PublicAccessBlockConfiguration=partly)
        assert account_blocks_public(control, "123456789012") is False
        on = {**partly, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        control.put_public_access_block(AccountId="123456789012", PublicAccessBlockConfiguration=on)
        assert account_blocks_public(control, "123456789012") is True

    done = bootstrap(boto3.session.Session(), _setup("acme-diabetes-pulumi-public"))
    assert done.account_blocks_public is None
    steps = next_steps(done)
    assert "S3 Block Public Access is unknown" in steps
    assert steps.index(command) < steps.index("# 1. The GitHub environment")
    assert "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true" in steps
    assert "S3 Block Public Access is off" in next_steps(replace(done, account_blocks_public=False))
    assert command not in next_steps(replace(done, account_blocks_public=True))
