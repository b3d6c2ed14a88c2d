"""MLflow tracking and registry: log every training run, register the model, move `champion` only on merit.

The champion alias moves when the new model beats the current champion's weighted F1 on the same test split.
When the champion was evaluated on another split (other data or seed), it is re-scored on this run's split
first, so the two numbers are always comparable.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml.inference.predictor import Predictor
from ml.training.evaluate import classification_metrics
from ml.training.train import CONFUSION_PNG, SUBGROUPS_CSV, TrainingResult

logger = logging.getLogger(__name__)

MODEL_NAME = "diabetes-status"
CHAMPION = "champion"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
PYFUNC_CODE = Path(__file__).with_name("mlflow_model.py")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded sqlite store in the project folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@dataclass(frozen=True)
class TrackingOutcome:
    run_id: str
    experiment_id: str
    registered_version: str
    champion: bool
    reason: str

    def summary(self) -> str:
        verdict = "is now champion" if self.champion else "champion unchanged"
        return (
            f"MLflow run {self.run_id} ({tracking_uri()}); registered {MODEL_NAME} v{self.registered_version}, "
            f"{verdict}: {self.reason}"
        )


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _flat_params(result: TrainingResult) -> dict[str, Any]:
    manifest = result.manifest
    params: dict[str, Any] = {f"lgb_{k}": v for k, v in manifest.training.lightgbm_params.items()}
    params.update({f"cfg_{k}": v for k, v in manifest.training.config.items()})
    params["imbalance_strategy"] = manifest.imbalance_strategy.chosen
    params["decision_rule_weights"] = list(manifest.decision_rule.class_weights)
    params["calibration_temperature"] = round(manifest.calibration.temperature, 6)
    params["best_iteration"] = manifest.training.best_iteration
    return params


def _metrics(result: TrainingResult) -> dict[str, float]:
    manifest = result.manifest
    metrics = {f"test_{k}": v for k, v in manifest.metrics.test.items()}
    metrics["weighted_f1"] = manifest.metrics.test["weighted_f1"]
    metrics.update({f"validation_{k}": v for k, v in manifest.metrics.validation.items()})
    for name, scores in manifest.imbalance_strategy.compared.items():
        key = name.replace("+", "__")
        metrics.update({f"candidate_{key}_{metric}": value for metric, value in scores.items()})
    metrics["training_seconds"] = manifest.training.seconds
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}


def log_training_run(result: TrainingResult, *, experiment: str = MODEL_NAME) -> TrackingOutcome:
    """Log params, metrics, images, tables, manifest and the model; register it and decide the champion."""
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(experiment)
    manifest = result.manifest
    split_id = manifest.split.test_split_id
    tags = {
        "data_sha256": manifest.data.sha256,
        "data_synthetic": str(manifest.data.synthetic).lower(),
        "data_file": manifest.data.file,
        "split_id": split_id,
        "git_commit": git_commit(),
        "model_version": manifest.model_version,
    }
    with mlflow.start_run(run_name=manifest.model_version, tags=tags) as run:
        mlflow.log_params(_flat_params(result))
        mlflow.log_metrics(_metrics(result))
        mlflow.log_artifact(str(result.artifact_dir / CONFUSION_PNG), artifact_path="evaluation")
        mlflow.log_artifact(str(result.artifact_dir / SUBGROUPS_CSV), artifact_path="evaluation")
        mlflow.log_table(result.subgroups, artifact_file="evaluation/subgroup_metrics.json")
        mlflow.log_dict(manifest.model_dump(mode="json", by_alias=True), "manifest.json")
        model_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"model_dir": str(result.artifact_dir)},
            code_paths=[str(PROJECT_ROOT / "ml")],
            pip_requirements=[
                f"lightgbm=={metadata.version('lightgbm')}",
                f"numpy=={metadata.version('numpy')}",
                f"pandas=={metadata.version('pandas')}",
                f"mlflow=={metadata.version('mlflow')}",
            ],
            registered_model_name=MODEL_NAME,
        )
        version = str(model_info.registered_model_version)
        champion, reason = _maybe_promote(result, version, split_id)
        mlflow.set_tag("champion_decision", reason)
        return TrackingOutcome(run.info.run_id, run.info.experiment_id, version, champion, reason)


def _champion_score_on(result: TrainingResult, champion_run_id: str) -> float:
    """Re-score the champion on this run's test split (used only when the champion's split differs)."""
    predictor = Predictor.load(f"runs:/{champion_run_id}/model")
    predictions = predictor.predict(result.test_features)
    return classification_metrics(result.test_labels, predictions.classes, predictions.probabilities)["weighted_f1"]


def _maybe_promote(result: TrainingResult, version: str, split_id: str) -> tuple[bool, str]:
    client = MlflowClient()
    new_score = result.test_metrics["weighted_f1"]
    try:
        current = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
        return True, f"no champion yet; v{version} (weighted F1 {new_score:.4f}) becomes champion"
    champion_run_id = str(current.run_id)
    champion_run = client.get_run(champion_run_id)
    if champion_run.data.tags.get("split_id") == split_id:
        old_score = champion_run.data.metrics["test_weighted_f1"]
        basis = f"same split {split_id}"
    else:
        old_score = _champion_score_on(result, champion_run_id)
        basis = f"champion re-scored on this run's split {split_id}"
    if new_score > old_score:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
        return True, f"weighted F1 {new_score:.4f} > champion v{current.version} {old_score:.4f} ({basis})"
    return False, f"weighted F1 {new_score:.4f} <= champion v{current.version} {old_score:.4f} ({basis})"
