"""MLflow tracking against a real `mlflow server` on 127.0.0.1: run contents, registry, champion alias."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from ml.inference.predictor import Predictor
from ml.training.tracking import CHAMPION, MODEL_NAME, log_training_run
from ml.training.train import TrainingConfig, train
from tests.servers import free_port, running_server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server (sqlite store, served artifacts) on a free loopback port."""
    port = free_port()
    root = tmp_path_factory.mktemp("mlflow-server")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    url = f"http://127.0.0.1:{port}"
    with running_server(command, f"{url}/health", root / "server.log", env=env, cwd=root, timeout=120):
        yield url


@pytest.fixture
def tracking(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return MlflowClient(tracking_uri=mlflow_server)


def test_run_holds_params_metrics_images_tables_and_lineage(
    tracking: MlflowClient, synthetic_csv: Path, tmp_path: Path
) -> None:
    result = train(synthetic_csv, tmp_path / "model", TrainingConfig(max_rounds=120))
    outcome = log_training_run(result, experiment="test-contents")
    run = tracking.get_run(outcome.run_id)
    assert run.data.metrics["weighted_f1"] == pytest.approx(result.test_metrics["weighted_f1"])
    for key in ("test_macro_f1", "test_macro_roc_auc", "test_log_loss", "test_ece", "test_recall_prediabetic"):
        assert key in run.data.metrics
    assert run.data.params["cfg_seed"] == "42"
    assert run.data.tags["data_sha256"] == result.manifest.data.sha256
    assert run.data.tags["data_synthetic"] == "true"
    assert len(run.data.tags["git_commit"]) in (40, len("unknown"))
    logged = {a.path for a in tracking.list_artifacts(outcome.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/subgroup_metrics.csv"} <= logged
    png = Path(tracking.download_artifacts(outcome.run_id, "evaluation/confusion_matrix.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "manifest.json" in {a.path for a in tracking.list_artifacts(outcome.run_id)}


def test_champion_moves_only_when_weighted_f1_improves(
    tracking: MlflowClient, synthetic_csv: Path, tmp_path: Path
) -> None:
    good = train(synthetic_csv, tmp_path / "good", TrainingConfig(max_rounds=200))
    first = log_training_run(good, experiment="test-champion")
    champion = tracking.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    if not first.champion:  # an earlier test's model already holds the alias and scores at least as well
        assert "<=" in first.reason
    weak = train(synthetic_csv, tmp_path / "weak", TrainingConfig(max_rounds=1, learning_rate=0.01))
    assert weak.test_metrics["weighted_f1"] < good.test_metrics["weighted_f1"]
    second = log_training_run(weak, experiment="test-champion")
    assert not second.champion
    assert "same split" in second.reason
    assert tracking.get_model_version_by_alias(MODEL_NAME, CHAMPION).version == champion.version
    run = tracking.get_run(second.run_id)
    assert run.data.tags["champion_decision"] == second.reason


def test_champion_from_another_split_is_rescored_on_this_split(
    tracking: MlflowClient, synthetic_csv: Path, tmp_path: Path
) -> None:
    other = train(synthetic_csv, tmp_path / "other", TrainingConfig(max_rounds=1, learning_rate=0.01, seed=9))
    outcome = log_training_run(other, experiment="test-champion")
    assert "re-scored on this run's split" in outcome.reason
    assert not outcome.champion


def test_service_can_load_the_champion_from_the_registry(
    tracking: MlflowClient, synthetic_csv: Path, tmp_path: Path
) -> None:
    result = train(synthetic_csv, tmp_path / "m", TrainingConfig(max_rounds=120))
    log_training_run(result, experiment="test-load")
    champion = tracking.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    predictor = Predictor.load(f"models:/{MODEL_NAME}@{CHAMPION}")
    expected = tracking.get_run(champion.run_id).data.tags["model_version"]
    assert predictor.version == expected
    proba = predictor.predict(result.test_features[:10]).probabilities
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
