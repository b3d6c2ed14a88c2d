"""MLflow tracking against a real `mlflow server` on 127.0.0.1: run contents, registry, promotion, pinned loading."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from ml import reference as reference_cli
from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor
from ml.training import comparison
from ml.training.data import features_matrix, read_data_file
from ml.training.mlflow_model import load_pinned
from ml.training.pipeline import TrainingConfig, TrainingResult, split_folds, train
from ml.training.reference import pin_reference
from ml.training.synthetic_data import write_synthetic
from ml.training.tracking import (
    CHAMPION,
    DIGEST_TAG,
    HOLDOUT_TAG,
    MODEL_NAME,
    SYNTHETIC_MODEL_NAME,
    TrackingOutcome,
    log_training_run,
)
from ml.training.tuning import weighted_f1
from tests.ml.datasets import without_signal
from tests.ml.mlflow_server import MlflowServer

#: Trains models, runs MLflow, Spark or `make demo`: the whole suite runs it, `make test-quick` leaves it out.
pytestmark = pytest.mark.end_to_end


@dataclass(frozen=True)
class Models:
    strong: TrainingResult
    weak: TrainingResult  # trained on the same file with every label outside the holdout shuffled: it learnt nothing
    other_split: TrainingResult  # strong, trained on another split (seed) of the same file
    other_file: TrainingResult  # strong, trained on another (synthetic) data file
    real: TrainingResult  # trained on `survey`, a copy without the synthetic sidecar: treated as real data
    survey: Path


@pytest.fixture(scope="module")
def models(synthetic_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("tracked-models")
    other_file = write_synthetic(root / "other.csv.gz", 6_000, seed=8)
    real_file = root / "survey.csv.gz"
    shutil.copyfile(synthetic_csv, real_file)  # no sidecar: nothing says these rows are synthetic
    noise = without_signal(synthetic_csv, root / "noise.csv", synthetic=True)
    strong = TrainingConfig(max_rounds=200, num_threads=1)  # one thread: the same trees, faster on small files
    return Models(
        strong=train(synthetic_csv, root / "strong", strong),
        weak=train(noise, root / "weak", strong),
        other_split=train(synthetic_csv, root / "other-split", TrainingConfig(max_rounds=200, seed=9, num_threads=1)),
        other_file=train(other_file, root / "other-file", strong),
        real=train(real_file, root / "real", strong),
        survey=real_file,
    )


def pin_on_purpose(data: Path, name: str = MODEL_NAME) -> None:
    """What the model's owner does once: pin the reference holdout of the production model from `data`."""
    assert reference_cli.main(["renew", "--name", name, "--data", str(data), "--reason", "the tests' survey"]) == 0


def _champion(client: MlflowClient, name: str = SYNTHETIC_MODEL_NAME) -> str:
    return str(client.get_model_version_by_alias(name, CHAMPION).version)


def _holdout_score(result: TrainingResult, model: TrainingResult) -> float:
    """`model`'s weighted F1 on `result`'s promotion holdout rows, computed here independently."""
    predicted = Predictor.load(model.artifact_dir).predict(result.holdout_features).classes
    return weighted_f1(result.holdout_labels, predicted)


def _logged_decision(client: MlflowClient, outcome: TrackingOutcome, tmp_path: Path) -> dict[str, object]:
    path = client.download_artifacts(outcome.run_id, "promotion_decision.json", str(tmp_path))
    decision: dict[str, object] = json.loads(Path(path).read_text())
    assert client.get_run(outcome.run_id).data.tags["champion_decision"] == outcome.reason == decision["reason"]
    return decision


def test_run_holds_params_metrics_images_tables_and_lineage(
    tracking: MlflowClient, models: Models, tmp_path: Path
) -> None:
    result = models.strong
    outcome = log_training_run(result, experiment="test-contents")
    run = tracking.get_run(outcome.run_id)
    assert run.data.metrics["weighted_f1"] == pytest.approx(result.test_metrics["weighted_f1"])
    for key in (
        "test_macro_f1",
        "test_macro_roc_auc",
        "test_log_loss",
        "test_ece",
        "test_ece_prediabetic",
        "test_recall_prediabetic",
        "validation_tuned_on_weighted_f1",
        "ada_prediabetes_or_diabetes_model_specificity",
        "ada_diabetes_ada_specificity",
        "precision_floor_without_test_named_prediabetic",
    ):
        assert key in run.data.metrics, key
    assert run.data.params["cfg_seed"] == "42"
    assert run.data.params["calibration_method"] == "bias_corrected_temperature_scaling"
    assert run.data.tags["data_sha256"] == result.manifest.data.sha256
    assert run.data.tags["data_synthetic"] == "true"
    assert run.data.tags[DIGEST_TAG] == result.digest
    assert len(run.data.tags["git_commit"]) in (40, len("unknown"))
    version = tracking.get_model_version(outcome.registered_name, outcome.registered_version)
    assert version.tags[DIGEST_TAG] == result.digest
    # The registry says what each version is without opening the run: data, test figures, digest.
    assert "SYNTHETIC data" in version.description
    assert result.manifest.data.file in version.description
    assert f"weighted F1 {result.test_metrics['weighted_f1']:.4f}" in version.description
    assert result.digest in version.description
    logged = {a.path for a in tracking.list_artifacts(outcome.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/ada_roc.png", "evaluation/subgroup_metrics.csv"} <= logged
    png = Path(tracking.download_artifacts(outcome.run_id, "evaluation/ada_roc.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "manifest.json" in {a.path for a in tracking.list_artifacts(outcome.run_id)}


def test_synthetic_model_never_joins_the_production_model(tracking: MlflowClient, models: Models) -> None:
    pin_on_purpose(models.survey)
    real = log_training_run(models.real, experiment="test-kind")
    assert (real.registered_name, real.champion) == (MODEL_NAME, True)
    synthetic = log_training_run(models.strong, experiment="test-kind")
    assert synthetic.registered_name == SYNTHETIC_MODEL_NAME
    production = tracking.search_model_versions(f"name='{MODEL_NAME}'")
    assert [v.run_id for v in production] == [real.run_id]
    assert _champion(tracking, MODEL_NAME) == real.registered_version


def test_weaker_model_is_refused_on_the_promotion_holdout(
    tracking: MlflowClient, models: Models, tmp_path: Path
) -> None:
    first = log_training_run(models.strong, experiment="test-champion")
    second = log_training_run(models.weak, experiment="test-champion")
    assert not second.champion
    assert _champion(tracking) == first.registered_version
    rows = len(models.weak.holdout_labels)
    assert f"({rows:,} rows of {models.strong.manifest.data.file}" in second.reason
    decision = _logged_decision(tracking, second, tmp_path)
    assert decision["holdout_rows"] == rows
    assert decision["comparison"]["new_weighted_f1"] == pytest.approx(_holdout_score(models.weak, models.weak))
    assert decision["comparison"]["champion_weighted_f1"] == pytest.approx(_holdout_score(models.weak, models.strong))
    assert decision["comparison"]["new_weighted_f1"] < decision["comparison"]["champion_weighted_f1"]  # type: ignore[operator]


def _weak_champion(client: MlflowClient, models: Models, experiment: str) -> TrackingOutcome:
    """The model that learnt nothing fails a first champion's absolute check (nothing is pinned): a person pins
    its file's holdout as the reference and moves the alias to it."""
    outcome = log_training_run(models.weak, experiment=experiment)
    assert not outcome.champion
    assert "majority-class baseline" in outcome.reason
    pin_reference(
        client,
        SYNTHETIC_MODEL_NAME,
        models.weak.holdout_features,
        models.weak.holdout_labels,
        source="the tests' file",
        reason="tests",
        pinned_by="tests",
    )
    client.set_registered_model_alias(SYNTHETIC_MODEL_NAME, CHAMPION, outcome.registered_version)
    return outcome


def test_champion_from_another_split_is_compared_on_rows_neither_model_saw(
    tracking: MlflowClient, models: Models, synthetic_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No re-scoring on the new run's test split, which the champion partly trained on: both are scored on
    holdout rows, and neither model's folds hold any of those feature vectors. (The plausibility limits are lifted:
    a champion that learnt nothing loses by more than a retrained model could on real data.)"""
    monkeypatch.setattr(comparison, "MAX_PLAUSIBLE_GAIN", 1.0)
    monkeypatch.setattr(comparison, "MAX_PLAUSIBLE_AUC_GAIN", 1.0)
    _weak_champion(tracking, models, "test-split")
    outcome = log_training_run(models.other_split, experiment="test-split")
    assert outcome.champion
    decision = _logged_decision(tracking, outcome, tmp_path)
    assert decision["comparison"]["champion_weighted_f1"] == pytest.approx(
        _holdout_score(models.other_split, models.weak)
    )
    frame = read_data_file(synthetic_csv)
    held = {row.tobytes() for row in models.other_split.holdout_features}
    for seed in (42, 9):
        folds = split_folds(frame, TrainingConfig(seed=seed))
        seen = np.concatenate([folds.x_fit, folds.x_val, folds.x_test])
        assert not held & {row.tobytes() for row in seen}


def test_champion_trained_without_the_holdout_is_not_compared(tracking: MlflowClient, models: Models) -> None:
    old = _weak_champion(tracking, models, "test-old")
    tracking.delete_tag(old.run_id, HOLDOUT_TAG)  # as a champion trained before the holdout existed
    new = log_training_run(models.strong, experiment="test-old")
    assert not new.champion
    assert "refused" in new.reason
    assert "trained under the promotion holdout None" in new.reason
    assert "may have trained on the rows the others would be compared on" in new.reason
    assert _champion(tracking) == old.registered_version


def test_champion_trained_on_the_other_kind_of_data_is_not_compared(tracking: MlflowClient, models: Models) -> None:
    old = _weak_champion(tracking, models, "test-mixed")
    tracking.set_tag(old.run_id, "data_synthetic", "false")  # e.g. a real-data model registered here by hand
    new = log_training_run(models.strong, experiment="test-mixed")
    assert not new.champion
    assert "only compared with models trained on the same kind of data" in new.reason
    assert _champion(tracking) == old.registered_version


def test_a_file_without_holdout_rows_cannot_decide(tracking: MlflowClient, models: Models) -> None:
    old = _weak_champion(tracking, models, "test-empty")
    no_rows = replace(models.strong, holdout_features=np.empty((0, 21)), holdout_labels=np.empty(0, dtype=np.int64))
    new = log_training_run(no_rows, experiment="test-empty")
    assert not new.champion
    assert "(0 rows) is not the reference" in new.reason
    assert _champion(tracking) == old.registered_version


def test_a_change_of_data_file_is_stated_and_another_file_is_not_promoted(
    tracking: MlflowClient, models: Models, tmp_path: Path
) -> None:
    _weak_champion(tracking, models, "test-data")
    outcome = log_training_run(models.other_file, experiment="test-data")
    assert not outcome.champion
    assert f"of v{outcome.registered_version}'s data file other.csv.gz" in outcome.reason
    assert "is not the reference" in outcome.reason
    assert "the data file changed" in outcome.reason
    assert f"on {models.weak.manifest.data.file} (sha256 {models.weak.manifest.data.sha256[:12]}" in outcome.reason
    assert f"on {models.other_file.manifest.data.file} (sha256" in outcome.reason
    decision = _logged_decision(tracking, outcome, tmp_path)
    assert decision["reproduces_reference"] is False
    # Judged on the reference all the same: the first model's holdout, not its own file's.
    assert decision["comparison"]["new_weighted_f1"] == pytest.approx(_holdout_score(models.weak, models.other_file))


def test_service_can_load_the_pinned_champion_from_the_registry(tracking: MlflowClient, models: Models) -> None:
    log_training_run(models.strong, experiment="test-load")
    champion = tracking.get_model_version_by_alias(SYNTHETIC_MODEL_NAME, CHAMPION)
    uri = f"models:/{SYNTHETIC_MODEL_NAME}@{CHAMPION}"
    predictor = Predictor.load(uri, expected_sha256=champion.tags[DIGEST_TAG])
    assert predictor.version == tracking.get_run(champion.run_id).data.tags["model_version"]
    proba = predictor.predict(models.strong.holdout_features[:10]).probabilities
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(ArtifactError, match="pinned digest"):
        Predictor.load(uri, expected_sha256="0" * 64)


def test_pyfunc_model_holds_no_code_and_loads_only_when_pinned(
    tracking: MlflowClient, models: Models, synthetic_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    outcome = log_training_run(models.strong, experiment="test-pyfunc")
    uri = f"models:/{SYNTHETIC_MODEL_NAME}/{outcome.registered_version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "model")))
    assert not list(local.rglob("*.py")), "the store holds no code"
    assert yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]["code"] is None
    model = load_pinned(uri, models.strong.digest)
    frame = read_data_file(synthetic_csv).iloc[:20]
    answer = model.predict(frame)
    expected = Predictor.load(models.strong.artifact_dir).predict(features_matrix(frame))
    np.testing.assert_array_equal(answer["prediction"].to_numpy(), expected.classes)
    with pytest.raises(ArtifactError, match="pinned digest"):
        load_pinned(uri, "0" * 64)
    # `mlflow models serve` and `mlflow.pyfunc.load_model` honour MODEL_SHA256 through the loader module.
    monkeypatch.setenv("MODEL_SHA256", "0" * 64)
    with pytest.raises(ArtifactError, match="pinned digest"):
        mlflow.pyfunc.load_model(uri)


def test_tampered_store_code_is_refused_before_it_runs(
    mlflow_server: MlflowServer, tracking: MlflowClient, models: Models, tmp_path: Path
) -> None:
    outcome = log_training_run(models.strong, experiment="test-tamper")
    where = tracking.get_model_version_download_uri(SYNTHETIC_MODEL_NAME, outcome.registered_version)
    stored = mlflow_server.artifacts / where.removeprefix("mlflow-artifacts:/")
    assert (stored / "MLmodel").is_file(), where
    marker = tmp_path / "store code ran"
    (stored / "code").mkdir()
    (stored / "code" / "evil_loader.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from ml.training.mlflow_model import _load_pyfunc\n"
    )
    meta = yaml.safe_load((stored / "MLmodel").read_text())
    meta["flavors"]["python_function"].update(loader_module="evil_loader", code="code")
    (stored / "MLmodel").write_text(yaml.safe_dump(meta))
    uri = f"models:/{SYNTHETIC_MODEL_NAME}/{outcome.registered_version}"

    with pytest.raises(ArtifactError, match=r"loader_module 'evil_loader'.*code from the store"):
        load_pinned(uri, models.strong.digest)
    assert not marker.exists()
    # The threat is real: MLflow's own loader runs the store's code (in a child process, to keep this one clean).
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url}
    load = f"import mlflow; mlflow.pyfunc.load_model({uri!r})"
    subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, timeout=300, check=True)
    assert marker.read_text() == "ran"


def test_every_run_reports_the_screening_by_subgroup_beside_the_ada_test(
    tracking: MlflowClient, models: Models, tmp_path: Path
) -> None:
    """Sensitivity and specificity of 'raised' by Sex, Age band and Income band, the ADA test's beside them, with
    their bootstrap intervals, and who the screen misses in plain words (issue 19)."""
    result = models.strong
    outcome = log_training_run(result, experiment="test-screening")
    run = tracking.get_run(outcome.run_id)
    logged = {a.path for a in tracking.list_artifacts(outcome.run_id, "evaluation")}
    assert {"evaluation/screening_subgroups.csv", "evaluation/screening_who_is_missed.txt"} <= logged
    table = pd.read_csv(
        tracking.download_artifacts(outcome.run_id, "evaluation/screening_subgroups.csv", str(tmp_path))
    )
    assert {"Sex", "Age", "Income"} <= set(table["feature"])
    for measure in ("sensitivity", "specificity"):
        for test in ("model", "ada", "difference"):
            assert {f"{measure}_{test}", f"{measure}_{test}_low", f"{measure}_{test}_high"} <= set(table.columns)
    words = Path(tracking.download_artifacts(outcome.run_id, "evaluation/screening_who_is_missed.txt", str(tmp_path)))
    assert "ADA risk test" in words.read_text()
    metrics = run.data.metrics
    assert metrics["screening_Sex_Male_sensitivity_model"] == pytest.approx(
        table.loc[(table["feature"] == "Sex") & (table["group"] == "Male"), "sensitivity_model"].item(), abs=1e-4
    )
    assert "screening_Income_lt_25000_specificity_ada" in metrics
    assert metrics["screening_test_sensitivity_prediabetes"] == result.manifest.screening.test.sensitivity_prediabetes
    assert metrics["screening_not_checked_flagged"] == result.manifest.screening.test_not_checked.flagged
