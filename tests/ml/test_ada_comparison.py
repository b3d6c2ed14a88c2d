"""The model against the ADA risk test: hand-checked figures, and the section every trained model carries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml.inference.predictor import Predictor
from ml.manifest import Manifest
from ml.training.ada import HIGH_RISK_POINTS, UNAVAILABLE_ITEMS, ada_risk_points
from ml.training.ada_comparison import compare_with_ada, screening_comparison
from ml.training.data import features_matrix
from ml.training.synthetic_data import make_synthetic

#: Trains models, runs MLflow, Spark or `make demo`: the whole suite runs it, `make test-quick` leaves it out.
pytestmark = pytest.mark.end_to_end


def test_screening_comparison_by_hand() -> None:
    positive = np.array([True] * 4 + [False] * 6)
    points = np.array([6, 5, 3, 7, 5, 2, 1, 6, 0, 4])
    score = np.array([0.9, 0.8, 0.3, 0.7, 0.6, 0.1, 0.2, 0.5, 0.05, 0.4])
    result = screening_comparison(positive, score, points)
    # ADA >= 5 flags 3 of the 4 positives and 2 of the 6 negatives.
    assert (result.ada_sensitivity, result.ada_specificity) == (0.75, pytest.approx(4 / 6))
    # The model reaches 3 of 4 at threshold 0.7, where no negative scores as high.
    assert (result.model_threshold, result.model_sensitivity, result.model_specificity) == (0.7, 0.75, 1.0)
    assert result.model_roc_auc == pytest.approx(21 / 24)
    assert result.ada_roc_auc == pytest.approx(19 / 24)  # ties count half
    assert (result.positives, result.negatives) == (4, 6)


def test_model_sensitivity_never_falls_short_of_the_ada_tests() -> None:
    """Where model scores tie, the matched point is the first one at or above the ADA test's sensitivity."""
    positive = np.array([True, True, True, False, False, False])
    points = np.array([5, 5, 0, 0, 0, 5])
    score = np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.1])
    result = screening_comparison(positive, score, points)
    assert result.ada_sensitivity == pytest.approx(2 / 3)
    assert result.model_sensitivity == 1.0
    assert result.model_specificity == pytest.approx(2 / 3)


def test_one_class_only_is_refused() -> None:
    with pytest.raises(ValueError, match="with and without the condition"):
        screening_comparison(np.zeros(5, dtype=bool), np.linspace(0, 1, 5), np.arange(5))


def test_every_trained_model_compares_itself_with_the_ada_test(trained_model_dir: Path) -> None:
    manifest = Manifest.model_validate_json((trained_model_dir / "manifest.json").read_text())
    ada = manifest.ada_comparison
    assert ada.ada_cutoff == HIGH_RISK_POINTS == 5
    assert ada.unavailable_items == UNAVAILABLE_ITEMS
    assert ada.rows == manifest.metrics.test["rows"]
    assert ada.diabetes.positives == manifest.metrics.test["support_diabetic"]
    assert ada.prediabetes_or_diabetes.positives == ada.rows - manifest.metrics.test["support_healthy"]
    assert (trained_model_dir / "ada_roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_screening_risk_ranks_exactly_as_p_no_diabetes() -> None:
    """p(pre-diabetes) + p(diabetes) = 1 - p(no diabetes): its AUC is the no-diabetes one-vs-rest one."""
    frame = make_synthetic(3_000, seed=12)
    rows, y = features_matrix(frame), frame["Diabetes_012"].to_numpy()
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([6, 1, 2], size=len(y))
    result = compare_with_ada(rows, y, proba)
    assert result.prediabetes_or_diabetes.model_roc_auc == pytest.approx(roc_auc_score(y == 0, proba[:, 0]))
    assert result.diabetes.ada_roc_auc == pytest.approx(roc_auc_score(y == 2, ada_risk_points(rows)))


def test_a_better_model_score_beats_the_ada_test_on_its_own_rows(trained_model_dir: Path) -> None:
    frame = make_synthetic(4_000, seed=31)
    rows, y = features_matrix(frame), frame["Diabetes_012"].to_numpy()
    result = compare_with_ada(rows, y, Predictor.load(trained_model_dir).predict(rows).probabilities)
    for compared in (result.prediabetes_or_diabetes, result.diabetes):
        assert compared.model_sensitivity >= compared.ada_sensitivity
        assert compared.model_roc_auc > compared.ada_roc_auc
