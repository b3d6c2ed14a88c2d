"""Training: reproducibility, the strategy comparison, calibration, the decision rule and the train CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml import train as train_cli
from ml.inference.artifact import ArtifactError
from ml.inference.postprocess import calibrate, decide
from ml.manifest import Calibration, DecisionRule
from ml.training.synthetic import make_synthetic
from ml.training.train import TrainingConfig, train
from ml.training.tuning import fit_calibration, tune_decision_rule, weighted_f1

FAST = TrainingConfig(max_rounds=150)


def test_same_seed_gives_the_same_model_and_metrics(synthetic_csv: Path, tmp_path: Path) -> None:
    first = train(synthetic_csv, tmp_path / "a", FAST)
    second = train(synthetic_csv, tmp_path / "b", FAST)
    assert first.test_metrics == second.test_metrics
    assert first.manifest.files["model.txt"] == second.manifest.files["model.txt"]
    other_seed = train(synthetic_csv, tmp_path / "c", TrainingConfig(max_rounds=150, seed=7))
    assert other_seed.manifest.split.test_split_id != first.manifest.split.test_split_id


def test_choice_is_made_on_validation_not_test(synthetic_csv: Path, tmp_path: Path) -> None:
    result = train(synthetic_csv, tmp_path / "m", FAST)
    chosen = result.manifest.imbalance_strategy.chosen
    candidates = result.manifest.imbalance_strategy.compared
    best_validation = max(v["validation_weighted_f1"] for v in candidates.values())
    assert candidates[chosen]["validation_weighted_f1"] == pytest.approx(best_validation)
    assert result.test_metrics["weighted_f1"] == pytest.approx(candidates[chosen]["test_weighted_f1"])


def test_calibration_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(20_000, 3))
    y = np.array([rng.choice(3, p=p) for p in calibrate(logits, Calibration())])
    fitted = fit_calibration(logits * 2.5, y)  # scores 2.5x over-confident
    assert fitted.temperature == pytest.approx(2.5, rel=0.08)
    assert max(abs(b) for b in fitted.bias) < 0.1


def test_decision_rule_never_scores_below_argmax_on_its_fold() -> None:
    frame = make_synthetic(3_000, seed=4)
    y = frame["Diabetes_012"].to_numpy()
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([8, 0.3, 1.5], size=len(y))
    proba[y == 2, 2] += 0.2
    proba /= proba.sum(axis=1, keepdims=True)
    rule, score = tune_decision_rule(proba, y)
    assert score >= weighted_f1(y, proba.argmax(axis=1))
    assert score == pytest.approx(weighted_f1(y, decide(proba, rule)))
    assert DecisionRule().method == "argmax"


def test_weighted_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    assert weighted_f1(y, p) == pytest.approx(f1_score(y, p, average="weighted"))


def test_train_cli_prints_metrics_and_labels_synthetic_data(
    synthetic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics.json"
    code = train_cli.main(
        [
            "--data",
            str(synthetic_csv),
            "--output",
            str(tmp_path / "m"),
            "--max-rounds",
            "100",
            "--no-mlflow",
            "--metrics-json",
            str(metrics),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC DATA" in out
    assert "weighted F1" in out
    assert json.loads(metrics.read_text())["weighted_f1"] > 0.5
    assert (tmp_path / "m" / "manifest.json").is_file()


def test_train_cli_refuses_bad_data_naming_the_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = make_synthetic(200, seed=2)
    frame["BMI"] = frame["BMI"].astype(str)
    frame.loc[3, "BMI"] = "heavy"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    assert train_cli.main(["--data", str(bad), "--output", str(tmp_path / "m"), "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "BMI" in err
    assert "heavy" in err
    assert not (tmp_path / "m").exists()


def test_output_folder_with_other_files_is_never_overwritten(synthetic_csv: Path, tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(ArtifactError, match=r"not empty and holds no manifest\.json"):
        train(synthetic_csv, tmp_path, FAST)
    assert precious.read_text() == "keep me"
    first = train(synthetic_csv, tmp_path / "m", FAST)
    second = train(synthetic_csv, tmp_path / "m", FAST)  # an artifact is replaced in place
    assert second.manifest.files == first.manifest.files


def test_a_file_added_to_an_artifact_is_neither_sealed_nor_deleted(synthetic_csv: Path, tmp_path: Path) -> None:
    train(synthetic_csv, tmp_path / "m", FAST)
    added = tmp_path / "m" / "notes.txt"
    added.write_text("keep me")
    for _ in range(2):  # retraining in place twice: the second would delete it if the first had sealed it
        result = train(synthetic_csv, tmp_path / "m", FAST)
        assert "notes.txt" not in result.manifest.files
    assert added.read_text() == "keep me"
