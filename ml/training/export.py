"""Writing a model artifact: LightGBM's text model, the report files, and the manifest that seals them."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import lightgbm as lgb

from ml.inference.artifact import MANIFEST_FILE, MODEL_FILE, ArtifactError
from ml.inference.digest import file_sha256
from ml.manifest import Manifest, ModelFile, TrainingReport
from ml.schema import schema_dict


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("lightgbm", "numpy", "scikit-learn", "pandas", "mlflow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def check_output_folder(directory: Path) -> None:
    """Refuse an output that is a file, or a folder holding anything but an artifact: checked before training too,
    so a wrong --output costs nothing rather than a whole training."""
    if directory.exists() and not directory.is_dir():
        raise ArtifactError(f"{directory} is a file, not a folder; choose an empty or new --output directory")
    if directory.exists() and any(directory.iterdir()) and not (directory / MANIFEST_FILE).is_file():
        raise ArtifactError(
            f"{directory} is not empty and holds no {MANIFEST_FILE}: refusing to write a model over other files; "
            "choose an empty or new --output directory"
        )


def _clear_previous_artifact(directory: Path) -> None:
    """Remove the files of an artifact being replaced; never touch a folder that holds anything else."""
    check_output_folder(directory)
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        return
    try:
        listed = json.loads(manifest.read_text()).get("files", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        listed = {}
    for name in (*listed, MANIFEST_FILE):
        path = directory / Path(name).name
        if path.is_file():
            path.unlink()


def save_artifact(
    directory: Path, booster: lgb.Booster, report: TrainingReport, extra_files: tuple[Path, ...] = ()
) -> Manifest:
    """Write model.txt, copy `extra_files` (reports) in, and write the manifest that seals them all."""
    _clear_previous_artifact(directory)
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / MODEL_FILE), num_iteration=booster.best_iteration or None)
    for source in extra_files:
        (directory / source.name).write_bytes(source.read_bytes())
    # Seal only what was written here: a file a user drops into the folder is neither adopted nor later deleted.
    files = {name: file_sha256(directory / name) for name in sorted({MODEL_FILE, *(s.name for s in extra_files)})}
    created = datetime.now(UTC).replace(microsecond=0)
    manifest = Manifest.model_validate(
        {
            **dict(report),
            "model_version": f"{created:%Y%m%dT%H%M%SZ}-{files[MODEL_FILE][:8]}",
            "created_at": created,
            "schema": schema_dict(),
            "model": ModelFile(file=MODEL_FILE, num_trees=booster.num_trees()),
            "versions": library_versions(),
            "files": files,
        }
    )
    (directory / MANIFEST_FILE).write_text(manifest.to_json())
    return manifest
