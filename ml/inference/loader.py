"""Where a model comes from: a local folder, `s3://bucket/prefix` or the MLflow registry, read into memory.

An artifact is its `manifest.json` and the regular files it lists (never a link, FIFO or device; others are not read).
S3 objects are read straight into memory: the service needs no writable disk, so it runs on a read-only root
file system with an unwritable `/tmp` (as on Fargate). Only MLflow downloads through a temporary folder, because
that is its API; MLflow is not in the service image.
"""

from __future__ import annotations

import json
import os
import stat
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
    """The manifest and the files it lists, nothing else: an unlisted file is never opened, so a link to a device
    or a never-ending file cannot hang or fail the load. Each file must be a regular file, not a symlink (a link
    could name `/proc/...` or a file outside the artifact), and all of them together at most `MAX_ARTIFACT_BYTES`
    (counted while reading: a file that grows after its size was read is still cut off)."""
    if not directory.is_dir():
        raise ArtifactError(
            f"model directory {directory} does not exist; train one with "
            f"`uv run python -m ml.train --data PATH --output {directory}` or set MODEL_URI"
        )
    budget = [MAX_ARTIFACT_BYTES]
    if not (directory / MANIFEST_FILE).exists() and not (directory / MANIFEST_FILE).is_symlink():
        raise ArtifactError(
            f"{directory / MANIFEST_FILE} is missing: {directory} is not a model artifact written by ml.train"
        )
    manifest = _read_regular(directory / MANIFEST_FILE, budget)
    files = {MANIFEST_FILE: manifest}
    for name in listed_files(manifest):
        path = directory / name
        if path.exists() or path.is_symlink():  # a missing one is named by the manifest check
            files[name] = _read_regular(path, budget)
    return files


def listed_files(manifest: bytes) -> list[str]:
    """The plain file names a manifest seals; anything else (bad JSON, a path) is left to the manifest's
    validation, which names it."""
    try:
        listed = json.loads(manifest).get("files")
    except (ValueError, AttributeError):
        return []
    if not isinstance(listed, dict):
        return []
    return sorted(name for name in listed if isinstance(name, str) and name not in ("", ".", "..") and "/" not in name)


def _read_regular(path: Path, budget: list[int]) -> bytes:
    """The bytes of one regular file, refused when it is a link, a FIFO, a device or beyond the remaining budget."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        why = "a symbolic link" if path.is_symlink() else exc.strerror or str(exc)
        raise ArtifactError(f"cannot read {path}: {why}; a model artifact holds only regular files") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"{path} is not a regular file (a FIFO, device or folder); a model artifact holds none")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(budget[0] + 1)
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    budget[0] -= len(data)
    if budget[0] < 0:
        raise ArtifactError(f"{path.parent} holds more than a model artifact ({MAX_ARTIFACT_BYTES:,} bytes)")
    return data


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
