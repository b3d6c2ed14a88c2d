"""Where a model comes from: a folder, or S3 (a real moto server) read straight into memory."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import boto3
import numpy as np
import pytest

from ml.inference.artifact import ArtifactError
from ml.inference.loader import load_artifact, read_folder
from ml.inference.predictor import Predictor


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty bucket on the session's moto server, with boto3 pointed at it."""
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    name = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


def _upload(bucket: str, prefix: str, directory: Path) -> None:
    s3 = boto3.client("s3")
    for name, content in read_folder(directory).items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=content)


def test_s3_model_loads_without_any_writable_temporary_folder(
    bucket: str, trained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Fargate, where /tmp is a root-owned volume the service's user cannot write: nothing touches disk."""
    _upload(bucket, "models/v1", trained_model_dir)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    from_s3 = Predictor.load(f"s3://{bucket}/models/v1")
    local = Predictor.load(trained_model_dir)
    assert (from_s3.version, from_s3.digest) == (local.version, local.digest)
    rows = np.tile(np.arange(21, dtype=np.float64) % 2, (5, 1))
    np.testing.assert_array_equal(from_s3.predict(rows).probabilities, local.predict(rows).probabilities)


def test_s3_artifact_inside_an_mlflow_model_is_found_by_its_manifest(bucket: str, trained_model_dir: Path) -> None:
    _upload(bucket, "run/model/artifacts/model_dir", trained_model_dir)
    boto3.client("s3").put_object(Bucket=bucket, Key="run/model/MLmodel", Body=b"flavors: {}\n")
    assert load_artifact(f"s3://{bucket}/run").version == Predictor.load(trained_model_dir).version


def test_s3_prefix_without_exactly_one_manifest_is_refused(bucket: str, trained_model_dir: Path) -> None:
    with pytest.raises(ArtifactError, match="no objects under"):
        load_artifact(f"s3://{bucket}/nothing-here")
    _upload(bucket, "two/a", trained_model_dir)
    _upload(bucket, "two/b", trained_model_dir)
    with pytest.raises(ArtifactError, match=r"expected exactly one manifest\.json under .*, found 2"):
        load_artifact(f"s3://{bucket}/two")


def test_unreadable_bucket_is_an_artifact_error(bucket: str) -> None:
    with pytest.raises(ArtifactError, match="cannot read the model from s3://no-such-bucket-"):
        load_artifact(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/model")
