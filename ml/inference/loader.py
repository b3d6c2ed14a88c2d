"""Where a model comes from: a local folder, `s3://bucket/prefix` or the MLflow registry, read into memory.

An artifact is the regular files of one folder (names starting with a dot are skipped, as the shell's `*` does).
S3 objects are read straight into memory: the service needs no writable disk, so it runs on a read-only root
file system with an unwritable `/tmp` (as on Fargate). Only MLflow downloads through a temporary folder, because
that is its API; MLflow is not in the service image.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from ml.inference.artifact import MANIFEST_FILE, ArtifactError, LoadedArtifact, load_files

#: The most bytes one artifact may hold (the real model is about 2 MB): a wrong prefix cannot exhaust memory.
MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
_MLFLOW_SCHEMES = ("models:/", "runs:/")


def load_artifact(uri: str | Path, expected_sha256: str | None = None) -> LoadedArtifact:
    """Read, verify and load the artifact at a folder, `s3://bucket/prefix`, `models:/name@alias` or `runs:/...`.

    `expected_sha256` pins the artifact's digest (`ml.inference.digest.artifact_digest`): any other is refused.
    """
    text = str(uri)
    return load_files(read_artifact_files(text), text, expected_sha256)


def read_artifact_files(uri: str) -> dict[str, bytes]:
    """Every file of the artifact at `uri`, by name."""
    if uri.startswith("s3://"):
        return _read_s3(uri)
    if uri.startswith(_MLFLOW_SCHEMES):
        return _read_mlflow(uri)
    return read_folder(Path(uri))


def read_folder(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        raise ArtifactError(
            f"model directory {directory} does not exist; train one with "
            f"`uv run python -m ml.train --data PATH --output {directory}` or set MODEL_URI"
        )
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    size = sum(p.stat().st_size for p in files)
    if size > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"{directory} holds {size:,} bytes, more than a model artifact ({MAX_ARTIFACT_BYTES:,})")
    if not any(p.name == MANIFEST_FILE for p in files):
        raise ArtifactError(
            f"{directory / MANIFEST_FILE} is missing: {directory} is not a model artifact written by ml.train"
        )
    return {p.name: p.read_bytes() for p in files}


def _read_s3(uri: str) -> dict[str, bytes]:
    """The objects next to the one `manifest.json` under the prefix (the artifact may sit in an MLflow model)."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ArtifactError("MODEL_URI is s3:// but boto3 is not installed (install the 's3' extra)") from None
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client = boto3.client("s3")
    try:
        objects = [
            (obj["Key"], int(obj["Size"]))
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        folder = _artifact_folder([PurePosixPath(key[len(prefix) :]) for key, _ in objects], uri)
        chosen = [(key, size) for key, size in objects if PurePosixPath(key[len(prefix) :]).parent == folder]
        chosen = [(key, size) for key, size in chosen if not PurePosixPath(key).name.startswith(".")]
        total = sum(size for _, size in chosen)
        if total > MAX_ARTIFACT_BYTES:
            raise ArtifactError(f"{uri} holds {total:,} bytes, more than a model artifact ({MAX_ARTIFACT_BYTES:,})")
        return {PurePosixPath(key).name: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key, _ in chosen}
    except (BotoCoreError, ClientError) as exc:
        raise ArtifactError(f"cannot read the model from {uri}: {exc}") from None


def _artifact_folder(paths: list[PurePosixPath], uri: str) -> PurePosixPath:
    """The folder (relative to the prefix) holding the one manifest.json under `uri`."""
    if not paths:
        raise ArtifactError(f"no objects under {uri}; check the bucket and prefix")
    manifests = [p for p in paths if p.name == MANIFEST_FILE]
    if len(manifests) != 1:
        raise ArtifactError(f"expected exactly one {MANIFEST_FILE} under {uri}, found {len(manifests)}")
    return manifests[0].parent


def download_from_mlflow(uri: str, destination: str) -> Path:
    """The MLflow model or run artifact at `uri`, downloaded into `destination`; any failure is an ArtifactError."""
    try:
        import mlflow
    except ImportError:
        raise ArtifactError(f"MODEL_URI is {uri} but MLflow is not installed in this environment") from None
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=destination))
    except Exception as exc:  # MLflow raises many types (registry, REST, storage); report them as one error
        raise ArtifactError(f"cannot fetch {uri} from MLflow: {exc}") from None


def _read_mlflow(uri: str) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        local = download_from_mlflow(uri, tmp)
        manifests = sorted(local.rglob(MANIFEST_FILE))
        if len(manifests) != 1:
            raise ArtifactError(f"expected exactly one {MANIFEST_FILE} under {uri}, found {len(manifests)}")
        return read_folder(manifests[0].parent)
