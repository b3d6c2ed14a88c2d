"""File hashing shared by data preparation and the model artifact (no numpy or pandas: the service uses it)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (recorded in manifests, MLflow runs and synthetic-data sidecars)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
