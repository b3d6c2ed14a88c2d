"""Hashes of data files and model artifacts (hashlib only: the service image imports this)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (recorded in manifests, MLflow runs and synthetic-data sidecars)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def artifact_digest(files: Mapping[str, bytes]) -> str:
    """One sha256 over every file of an artifact, manifest included.

    It is the sha256 of what `LC_ALL=C sha256sum -- *` prints in the artifact's folder (one `<hex>  <name>` line
    per file, sorted by name), so anyone can recompute it with coreutils:
    `cd artifacts/model && LC_ALL=C sha256sum -- * | sha256sum`.
    """
    lines = "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files, key=str.encode))
    return hashlib.sha256(lines.encode()).hexdigest()
