"""`stacks.ops bootstrap` against a real moto server: what the first push on main needs exists afterwards, a second run
changes nothing it should keep, and a synthetic-data model is refused on the way to a deployment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from stacks.ops import OpsError
from stacks.ops.bootstrap import bootstrap, check_model, next_steps
from stacks.ops.ci_roles import CiSetup

ROOT = Path(__file__).resolve().parents[2]


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
    done = bootstrap(session, _setup("acme-diabetes-pulumi"), kms_alias="alias/diabetes-pulumi", model=model)
    again = bootstrap(session, _setup("acme-diabetes-pulumi"), kms_alias="alias/diabetes-pulumi")
    assert again.setup.kms_key_id == done.setup.kms_key_id, "the second run reuses the key behind the alias"

    s3, iam = session.client("s3"), session.client("iam")
    bucket = "acme-diabetes-pulumi"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]

    boundary = iam.get_policy(PolicyArn=done.setup.ctx.boundary_arn)["Policy"]
    assert boundary["PolicyName"] == "diabetes-dev-workload-boundary"
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert {"diabetes-dev-github-preview", "diabetes-dev-github-publish", "diabetes-dev-github-deploy"} <= roles
    deploy = iam.get_role_policy(RoleName="diabetes-dev-github-deploy", PolicyName="permissions")["PolicyDocument"]
    assert done.setup.kms_key_id in json.dumps(deploy), "the roles name the key the bootstrap made"
    providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert [p for p in providers if p["Arn"].endswith("token.actions.githubusercontent.com")]

    # The released model is where MODEL_S3_URI says, under its digest, before any stack exists.
    assert done.model_uri == f"s3://{bucket}/models/{done.model_sha256}"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{done.model_sha256}/")["Contents"]
    assert {o["Key"].rsplit("/", 1)[-1] for o in listed} == {p.name for p in model.iterdir()}

    steps = next_steps(done)
    for command in (
        "pulumi login s3://acme-diabetes-pulumi",
        "pulumi stack init dev -C stacks/ecs --secrets-provider 'awskms://alias/diabetes-pulumi?region=eu-west-1'",
        "gh variable set EKS_ENABLED --body 'false'",
        f"gh variable set MODEL_SHA256 --env dev --body '{done.model_sha256}'",
    ):
        assert command in steps


def test_a_synthetic_model_is_refused_on_the_way_to_a_deployment(trained_model_dir: Path) -> None:
    with pytest.raises(OpsError, match="trained on SYNTHETIC data") as caught:
        check_model(trained_model_dir, allow_synthetic=False)
    assert "uv run python -m ml.download" in str(caught.value)
    assert len(check_model(trained_model_dir, allow_synthetic=True)) == 64


def test_the_ci_digest_step_refuses_a_synthetic_model(trained_model_dir: Path) -> None:
    """CI's publish step runs `model-digest` on what it will bake: a synthetic model stops it with exit status 1."""
    done = subprocess.run(
        [sys.executable, "-m", "stacks.ops", "model-digest", str(trained_model_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 1
    assert "SYNTHETIC" in done.stderr
    assert "Traceback" not in done.stderr
