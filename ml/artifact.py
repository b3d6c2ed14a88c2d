"""The model artifact: LightGBM's own text model plus manifest.json, saved and verified without pickle.

Loading a LightGBM text model parses numbers; it cannot execute code. The manifest pins the schema, the feature
order, the post-processing, the metrics and the sha256 of every file, so a tampered or incompatible artifact is
refused before it serves a single prediction.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb

from ml.digest import file_sha256
from ml.postprocess import Calibration, DecisionRule
from ml.schema import CLASS_NAMES, FEATURE_NAMES, SCHEMA_VERSION, schema_dict

FORMAT_VERSION = 1
MODEL_FILE = "model.txt"
MANIFEST_FILE = "manifest.json"
#: Where `ml.train` writes by default and where the service looks when MODEL_URI is unset.
DEFAULT_MODEL_DIR = Path("artifacts/model")


class ArtifactError(RuntimeError):
    """The artifact is missing, tampered with or incompatible; the message says which and how to fix it."""


@dataclass(frozen=True)
class LoadedArtifact:
    booster: lgb.Booster
    calibration: Calibration
    decision_rule: DecisionRule
    manifest: dict[str, Any]
    directory: Path

    @property
    def version(self) -> str:
        return str(self.manifest["model_version"])


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("lightgbm", "numpy", "scikit-learn", "pandas", "mlflow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _clear_previous_artifact(directory: Path) -> None:
    """Remove the files of an artifact being replaced; never touch a folder that holds anything else."""
    if not directory.exists() or not any(directory.iterdir()):
        return
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        raise ArtifactError(
            f"{directory} is not empty and holds no {MANIFEST_FILE}: refusing to write a model over other files; "
            "choose an empty or new --output directory"
        )
    listed = json.loads(manifest.read_text()).get("files", {})
    for name in (*listed, MANIFEST_FILE):
        path = directory / Path(name).name
        if path.is_file():
            path.unlink()


def save_artifact(
    directory: Path,
    booster: lgb.Booster,
    calibration: Calibration,
    decision_rule: DecisionRule,
    details: dict[str, Any],
    extra_files: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """Write model.txt, copy `extra_files` (reports) in, and write the manifest that seals them all."""
    _clear_previous_artifact(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    booster.save_model(str(model_path), num_iteration=booster.best_iteration or None)
    for source in extra_files:
        (directory / source.name).write_bytes(source.read_bytes())
    # Seal only what was written here: a file a user drops into the folder is neither adopted nor later deleted.
    files = {name: file_sha256(directory / name) for name in sorted({MODEL_FILE, *(s.name for s in extra_files)})}
    created = datetime.now(UTC)
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_version": f"{created:%Y%m%dT%H%M%SZ}-{files[MODEL_FILE][:8]}",
        "created_at": created.isoformat(timespec="seconds"),
        "schema_version": SCHEMA_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "class_names": list(CLASS_NAMES),
        "schema": schema_dict(),
        "model": {"file": MODEL_FILE, "type": "lightgbm.Booster", "num_trees": booster.num_trees()},
        "calibration": calibration.to_dict(),
        "decision_rule": decision_rule.to_dict(),
        "versions": library_versions(),
        "files": files,
        **details,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def _major(version: str) -> str:
    return version.split(".", maxsplit=1)[0]


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ArtifactError(
            f"model directory {directory} does not exist; train one with "
            f"`uv run python -m ml.train --data PATH --output {directory}` or set MODEL_URI"
        )
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: {directory} is not a model artifact written by ml.train")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); the artifact is corrupt, retrain it") from None
    return manifest


def verify_manifest(manifest: dict[str, Any], directory: Path) -> bytes:
    """Check compatibility with this code and the integrity of every file the manifest lists.

    Returns the verified bytes of the model file, so the loader parses exactly what was checked, read once.
    """
    problems: list[str] = []
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version {manifest.get('schema_version')!r}, this code has {SCHEMA_VERSION}")
    if manifest.get("feature_names") != list(FEATURE_NAMES):
        problems.append("feature_names differ from ml.schema (order or names)")
    if manifest.get("class_names") != list(CLASS_NAMES):
        problems.append("class_names differ from ml.schema")
    trained_with = manifest.get("versions", {}).get("lightgbm", "?")
    if _major(trained_with) != _major(lgb.__version__):
        problems.append(f"trained with lightgbm {trained_with}, installed {lgb.__version__} (major differs)")
    if problems:
        raise ArtifactError(f"incompatible model artifact {directory}: " + "; ".join(problems) + ". Retrain it.")
    files: dict[str, str] = manifest.get("files", {})
    if MODEL_FILE not in files:
        raise ArtifactError(f"manifest of {directory} does not list {MODEL_FILE}; the artifact is corrupt")
    model = b""
    for name, expected in files.items():
        path = directory / name
        if Path(name).name != name:
            raise ArtifactError(f"manifest of {directory} lists a path outside the artifact: {name!r}")
        if not path.is_file():
            raise ArtifactError(f"{path} is listed in the manifest but missing; copy the whole artifact directory")
        content = path.read_bytes()
        actual = hashlib.sha256(content).hexdigest()
        if name == MODEL_FILE:
            model = content
        if actual != expected:
            raise ArtifactError(
                f"{path} has sha256 {actual[:12]}..., the manifest says {expected[:12]}...: the file was modified "
                "after training; refusing to load it. Restore the original or retrain."
            )
    return model


def load_artifact(directory: str | Path) -> LoadedArtifact:
    """Verify, then load; every failure is an ArtifactError with the reason."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    model = verify_manifest(manifest, directory)
    try:
        booster = lgb.Booster(model_str=model.decode("utf-8"))
        calibration = Calibration.from_dict(manifest["calibration"])
        rule = DecisionRule.from_dict(manifest["decision_rule"])
    except (lgb.basic.LightGBMError, KeyError, TypeError, ValueError) as exc:  # ValueError covers bad UTF-8
        raise ArtifactError(f"cannot load the model in {directory}: {exc}") from None
    if booster.num_feature() != len(FEATURE_NAMES):
        raise ArtifactError(
            f"{directory / MODEL_FILE} expects {booster.num_feature()} features, the schema has {len(FEATURE_NAMES)}"
        )
    return LoadedArtifact(booster, calibration, rule, manifest, directory)
