"""The model artifact: LightGBM's own text model plus `manifest.json`, verified and loaded without pickle.

Loading a LightGBM text model parses numbers; it cannot execute code. The artifact's files are read into memory
first (from a folder, S3 or MLflow: `ml.inference.loader`), checked against the sha256 of each that the manifest
records, and the manifest itself is validated (`ml.manifest`: every number finite and in range), so a tampered,
half-broken or incompatible artifact is refused with the reason before it serves a single prediction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ml.inference import lightgbm_capi
from ml.inference.digest import artifact_digest
from ml.inference.model_text import ModelTextError, check_model_text
from ml.manifest import FORMAT_VERSION, Manifest

MODEL_FILE = "model.txt"
MANIFEST_FILE = "manifest.json"
#: Where `ml.train` writes by default and where the service looks when MODEL_URI is unset.
DEFAULT_MODEL_DIR = Path("artifacts/model")


class ArtifactError(RuntimeError):
    """The artifact is missing, tampered with or incompatible; the message says which and how to fix it."""


class ModelFileError(ArtifactError):
    """`model.txt` is not a LightGBM model as training writes it: refused before LightGBM parses it (whose parser
    would abort the process), with the line and what is wrong."""


@dataclass(frozen=True)
class LoadedArtifact:
    """A verified artifact in memory: the booster, its manifest and the digest of all its files."""

    booster: lightgbm_capi.Booster
    manifest: Manifest
    digest: str

    @property
    def version(self) -> str:
        return self.manifest.model_version


def _major(version: str) -> str:
    return version.split(".", maxsplit=1)[0]


def parse_manifest(raw: bytes, source: str) -> Manifest:
    """Validate `manifest.json`'s bytes; an incompatible or invalid one raises ArtifactError naming each problem."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{MANIFEST_FILE} of {source} is not valid JSON ({exc}); the artifact is corrupt") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{MANIFEST_FILE} of {source} is not a JSON object; the artifact is corrupt")
    if data.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"incompatible model artifact {source}: format_version {data.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}. Retrain it with `python -m ml.train`."
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'manifest'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ArtifactError(f"invalid {MANIFEST_FILE} in {source}: {problems}. Retrain it.") from None
    trained_with = manifest.versions.get("lightgbm", "?")
    installed = lightgbm_capi.version()
    if _major(trained_with) != _major(installed):
        raise ArtifactError(
            f"incompatible model artifact {source}: trained with lightgbm {trained_with}, installed "
            f"{installed} (major differs). Retrain it."
        )
    return manifest


def _verified_model(files: Mapping[str, bytes], manifest: Manifest, source: str) -> bytes:
    """Check every file the manifest seals; return the model file's bytes, exactly what was checked."""
    if MODEL_FILE not in manifest.files:
        raise ArtifactError(f"the manifest of {source} does not list {MODEL_FILE}; the artifact is corrupt")
    for name, expected in manifest.files.items():
        if name not in files:
            raise ArtifactError(f"{source} lacks {name}, which its manifest lists; copy the whole artifact")
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != expected:
            raise ArtifactError(
                f"{name} in {source} has sha256 {actual[:12]}..., the manifest says {expected[:12]}...: the file was "
                "modified after training; refusing to load it. Restore the original or retrain."
            )
    return files[MODEL_FILE]


def check_pin(digest: str, expected_sha256: str | None, source: str) -> None:
    """Refuse an artifact whose digest is not the pinned one (`MODEL_SHA256`, `--expect-sha256`)."""
    if expected_sha256 is not None and digest != expected_sha256:
        raise ArtifactError(
            f"the model at {source} has digest {digest}, but the pinned digest is {expected_sha256}: refusing to "
            "load another artifact than the pinned one. Deploy the pinned model, or pin this one after checking it "
            "(`cd <model folder> && LC_ALL=C sha256sum -- * | sha256sum`)."
        )


def load_files(files: Mapping[str, bytes], source: str, expected_sha256: str | None = None) -> LoadedArtifact:
    """Verify and load an artifact whose files (name -> bytes) are already in memory.

    With `expected_sha256`, the digest of the bytes is compared first: another artifact is refused before any of
    it (JSON or booster) is parsed.
    """
    digest = artifact_digest(files)
    check_pin(digest, expected_sha256, source)
    if MANIFEST_FILE not in files:
        raise ArtifactError(f"{source} holds no {MANIFEST_FILE}: it is not a model artifact written by ml.train")
    manifest = parse_manifest(files[MANIFEST_FILE], source)
    model = _verified_model(files, manifest, source)
    try:
        text = check_model_text(model, len(manifest.feature_names), len(manifest.class_names))
    except ModelTextError as exc:
        raise ModelFileError(
            f"{MODEL_FILE} of {source} cannot be loaded: {exc}. Refusing to hand it to LightGBM; restore the "
            "artifact as training wrote it, or retrain."
        ) from None
    try:
        booster = lightgbm_capi.Booster(text)
    except lightgbm_capi.LightGBMError as exc:
        raise ModelFileError(f"cannot load {MODEL_FILE} of {source}: {type(exc).__name__}: {exc}") from None
    if booster.n_features != len(manifest.feature_names):
        raise ArtifactError(
            f"{MODEL_FILE} of {source} expects {booster.n_features} features, the schema has "
            f"{len(manifest.feature_names)}"
        )
    return LoadedArtifact(booster, manifest, digest)
