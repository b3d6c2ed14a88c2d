"""The digest that pins a model directory (`diabetes-*:modelSha256`, the service's MODEL_SHA256).

It is the service's own artifact digest (`ml.inference.digest.artifact_digest`): the sha256 of exactly what
`LC_ALL=C sha256sum -- *` prints inside the directory, dot-files left out. So the shell gives the same answer
without this project: `cd DIR && LC_ALL=C sha256sum -- * | sha256sum | cut -c1-64`.
"""

from __future__ import annotations

from pathlib import Path

from ml.inference.digest import artifact_digest
from stacks.ops import OpsError


def directory_digest(directory: Path) -> str:
    """The pinning digest of a model directory's files (subfolders are not part of a model artifact)."""
    if not directory.is_dir():
        raise OpsError(f"{directory} is not a directory: point at the model folder (model.txt, manifest.json, ...)")
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file()]
    if len(files) != len(entries):
        raise OpsError(
            f"{directory} holds subfolders {[p.name for p in entries if not p.is_file()]}: a model is files only"
        )
    if not files:
        raise OpsError(f"{directory} holds no files")
    if any(("\\" in p.name or "\n" in p.name) for p in files):
        raise OpsError("file names with a backslash or a newline are escaped by sha256sum: rename them")
    return artifact_digest({path.name: path.read_bytes() for path in files})
