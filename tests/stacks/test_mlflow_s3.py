"""The MLflow S3 artifact store on a real moto server: a training run logs to s3://, the service's loader reads it back.

This is the path a deployment with `diabetes:modelUri: s3://bucket/prefix` takes: train, let MLflow put the artifact
in S3, point MODEL_URI at it, and the task role's read-only access to that prefix is all the API needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import numpy as np
import pytest

from ml.inference.artifact import MANIFEST_FILE, MODEL_FILE
from ml.inference.predictor import Predictor
from ml.schema import FEATURE_NAMES
from ml.training.synthetic_data import make_synthetic, write_synthetic

ROOT = Path(__file__).resolve().parents[2]
ROWS = 3000
SEED = 5


@pytest.fixture
def s3_training_run(aws_env: dict[str, str], tmp_path: Path) -> tuple[str, Path]:
    """Train on synthetic rows with MLflow's artifact store in a moto bucket; return (bucket, local artifact dir)."""
    import mlflow

    bucket = f"mlflow-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = "diabetes-status-s3"
    mlflow.MlflowClient(tracking).create_experiment(experiment, artifact_location=f"s3://{bucket}/experiments")

    data = write_synthetic(tmp_path / "synthetic.csv.gz", ROWS, SEED)
    output = tmp_path / "model"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_S3_ENDPOINT_URL": aws_env["AWS_ENDPOINT_URL"]}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.train",
            "--data",
            str(data),
            "--output",
            str(output),
            "--experiment",
            experiment,
            "--max-rounds",
            "40",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return bucket, output


def _keys(bucket: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_training_logs_to_s3_and_the_service_loader_reads_it_back(s3_training_run: tuple[str, Path]) -> None:
    bucket, local_dir = s3_training_run
    keys = _keys(bucket)
    assert all(key.startswith("experiments/") for key in keys)
    assert any(key.endswith(".png") for key in keys), "the confusion matrix image is in the S3 store"
    model_keys = [key for key in keys if key.endswith(f"/{MODEL_FILE}")]
    assert len(model_keys) == 1, keys
    prefix = model_keys[0].rsplit("/", 1)[0]
    assert f"{prefix}/{MANIFEST_FILE}" in keys

    from_s3 = Predictor.load(f"s3://{bucket}/{prefix}")
    local = Predictor.load(local_dir)
    assert from_s3.version == local.version
    rows = make_synthetic(50, seed=SEED + 1)[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    answer = from_s3.predict(rows)
    assert answer.probabilities.shape == (50, 3)
    np.testing.assert_allclose(answer.probabilities.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(answer.probabilities, local.predict(rows).probabilities)
    assert set(answer.classes) <= {0, 1, 2}
