"""The artifact and the Predictor: integrity checks, probabilities, explanations, behaviour, and the predict CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import predict as predict_cli
from ml.artifact import MANIFEST_FILE, MODEL_FILE, ArtifactError, load_artifact
from ml.data import features_matrix, read_csv
from ml.predict import Predictor
from ml.schema import FEATURE_NAMES, FEATURES_BY_NAME, TARGET
from ml.synthetic import make_synthetic, write_synthetic


@pytest.fixture
def model_copy(trained_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the trained artifact that a test may damage."""
    return Path(shutil.copytree(trained_model_dir, tmp_path / "model"))


@pytest.fixture(scope="module")
def predictor(trained_model_dir: Path) -> Predictor:
    return Predictor.load(trained_model_dir)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return features_matrix(make_synthetic(3_000, seed=21))


def test_tampered_model_file_is_refused(model_copy: Path) -> None:
    with (model_copy / MODEL_FILE).open("a") as handle:
        handle.write("\n")
    with pytest.raises(ArtifactError, match=r"model\.txt has sha256 .* modified after training"):
        load_artifact(model_copy)


def test_manifest_with_other_feature_order_is_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / MANIFEST_FILE).read_text())
    manifest["feature_names"] = list(reversed(manifest["feature_names"]))
    (model_copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="feature_names differ"):
        load_artifact(model_copy)


def test_other_lightgbm_major_version_is_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / MANIFEST_FILE).read_text())
    manifest["versions"]["lightgbm"] = "1.0.0"
    (model_copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"trained with lightgbm 1\.0\.0"):
        load_artifact(model_copy)


def test_manifest_pointing_outside_the_artifact_is_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / MANIFEST_FILE).read_text())
    manifest["files"]["../escape.txt"] = "0" * 64
    (model_copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="outside the artifact"):
        load_artifact(model_copy)


def test_missing_files_are_explained(model_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist; train one"):
        load_artifact(tmp_path / "nowhere")
    (model_copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(model_copy)
    (model_copy / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        load_artifact(model_copy)


def test_manifest_records_what_reproduces_the_model(trained_model_dir: Path) -> None:
    manifest = json.loads((trained_model_dir / MANIFEST_FILE).read_text())
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["data"]["synthetic"] is True
    assert len(manifest["data"]["sha256"]) == 64
    assert manifest["split"]["test"]["split_id"]
    assert manifest["training"]["config"]["seed"] == 42
    assert set(manifest["files"]) >= {MODEL_FILE, "confusion_matrix.png", "subgroup_metrics.csv"}
    assert {"lightgbm", "numpy", "python"} <= set(manifest["versions"])
    compared = manifest["imbalance_strategy"]["compared"]
    assert set(compared) == {"none+argmax", "none+tuned_rule", "class_weights+argmax", "class_weights+tuned_rule"}
    assert manifest["imbalance_strategy"]["chosen"] in compared


def test_probabilities_are_a_distribution_and_decisions_follow_the_rule(predictor: Predictor, rows: np.ndarray) -> None:
    proba = predictor.predict_proba(rows)
    assert proba.shape == (len(rows), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    weights = np.array(predictor.manifest["decision_rule"]["class_weights"])
    np.testing.assert_array_equal(predictor.predict(rows), np.argmax(proba * weights, axis=1))
    # One row alone gives the same answer as inside a batch.
    np.testing.assert_allclose(predictor.predict_proba(rows[5]), proba[5:6], rtol=1e-12)


def test_wrong_row_width_is_a_clear_error(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="expected rows of 21 features"):
        predictor.predict_proba(np.zeros((2, 20)))


def test_explanation_names_features_with_human_labels(predictor: Predictor, rows: np.ndarray) -> None:
    [answer] = predictor.predict_rows(rows[:1], explain=True, top_k=4)
    assert answer.explanation is not None
    assert len(answer.explanation) == 4
    magnitudes = [abs(c.contribution) for c in answer.explanation]
    assert magnitudes == sorted(magnitudes, reverse=True)
    for item in answer.explanation:
        assert item.feature in FEATURE_NAMES
        assert item.value_label == FEATURES_BY_NAME[item.feature].label(item.value)


def test_contributions_add_up_to_the_raw_score(trained_model_dir: Path, rows: np.ndarray) -> None:
    """TreeSHAP is exact: all contributions plus the bias equal the booster's raw score for the class."""
    booster = load_artifact(trained_model_dir).booster
    raw = booster.predict(rows[:20], raw_score=True)
    contrib = booster.predict(rows[:20], pred_contrib=True).reshape(20, 3, len(FEATURE_NAMES) + 1)
    np.testing.assert_allclose(contrib.sum(axis=2), raw, rtol=1e-6, atol=1e-6)


def test_single_row_path_explains_like_the_batch_path(predictor: Predictor, rows: np.ndarray) -> None:
    """predict_one's explanation (class offset into the contributions, scaled by temperature) matches explain()."""
    for i in range(10):
        one = predictor.predict_one(rows[i].tolist(), explain=True, top_k=21)
        [batch] = predictor.predict_rows(rows[i : i + 1], explain=True, top_k=21)
        assert one.explanation is not None
        assert batch.explanation is not None
        assert [c.feature for c in one.explanation] == [c.feature for c in batch.explanation]
        np.testing.assert_allclose(
            [c.contribution for c in one.explanation], [c.contribution for c in batch.explanation], atol=1e-12
        )


@pytest.mark.parametrize(("feature", "low", "high"), [("GenHlth", 1, 5), ("HighBP", 0, 1), ("Age", 2, 11)])
def test_risk_factors_do_not_lower_the_probability_of_diabetes(
    predictor: Predictor, rows: np.ndarray, feature: str, low: int, high: int
) -> None:
    column = FEATURE_NAMES.index(feature)
    lower, higher = rows.copy(), rows.copy()
    lower[:, column], higher[:, column] = low, high
    assert predictor.predict_proba(higher)[:, 2].mean() > predictor.predict_proba(lower)[:, 2].mean()


def test_model_beats_the_majority_baseline(predictor: Predictor) -> None:
    frame = make_synthetic(4_000, seed=99)
    y = frame[TARGET].to_numpy()
    predicted = predictor.predict(features_matrix(frame))
    from ml.tuning import weighted_f1

    assert weighted_f1(y, predicted) > weighted_f1(y, np.zeros_like(y)) + 0.02


def test_predict_cli_round_trips_in_input_order(
    trained_model_dir: Path, predictor: Predictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_synthetic(tmp_path / "input.csv", 500, seed=5)
    out = tmp_path / "out" / "predictions.csv"
    code = predict_cli.main(["--model", str(trained_model_dir), "--data", str(data), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    result = pd.read_csv(out)
    assert list(result.columns) == ["prediction", "proba_0", "proba_1", "proba_2"]
    expected = predictor.predict_proba(features_matrix(read_csv(data, target="ignore")))
    assert len(result) == 500
    np.testing.assert_allclose(result[["proba_0", "proba_1", "proba_2"]].to_numpy(), expected, atol=2e-6)
    np.testing.assert_array_equal(result["prediction"].to_numpy(), predictor.decide(expected))


def test_predict_cli_rejects_bad_rows_naming_the_column(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = make_synthetic(50, seed=1).drop(columns=[TARGET])
    frame["Age"] = frame["Age"].astype(float)
    frame.loc[7, "Age"] = 14
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "never.csv"
    code = predict_cli.main(["--model", str(trained_model_dir), "--data", str(bad), "--output", str(out)])
    assert code != 0
    err = capsys.readouterr().err
    assert "Age" in err
    assert "14" in err
    assert not out.exists()
