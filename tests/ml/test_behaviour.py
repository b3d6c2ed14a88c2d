"""The behaviour table: one step up of each risk factor, counted where p(diabetes) falls materially."""

from __future__ import annotations

import numpy as np
import pytest

from ml.schema import FEATURE_NAMES
from ml.training.behaviour import MATERIAL_DROP, RISK_FACTORS, step_up_effects
from ml.training.data import features_matrix
from ml.training.synthetic_data import make_synthetic

BMI, HIGH_BP, GEN_HLTH = (FEATURE_NAMES.index(name) for name in ("BMI", "HighBP", "GenHlth"))


def _p_diabetes(rows: np.ndarray) -> np.ndarray:
    """A known model: BMI raises the risk, high blood pressure lowers it by 5 points, GenHlth moves it by 0.5."""
    result: np.ndarray = 0.1 + 0.002 * rows[:, BMI] - 0.05 * rows[:, HIGH_BP] - 0.005 * rows[:, GEN_HLTH]
    return result


def test_step_up_counts_material_falls_over_the_rows_that_can_step() -> None:
    rows = features_matrix(make_synthetic(2_000, seed=5))
    effects = {e.feature: e for e in step_up_effects(_p_diabetes, rows)}
    assert list(effects) == list(RISK_FACTORS)
    high_bp = effects["HighBP"]
    assert high_bp.rows == int((rows[:, HIGH_BP] == 0).sum())  # only "no" can step up to "yes"
    assert (high_bp.lowered_share, high_bp.raised_share) == (1.0, 0.0)
    assert high_bp.mean_change == pytest.approx(-0.05)
    assert effects["GenHlth"].rows == int((rows[:, GEN_HLTH] < 5).sum())
    assert effects["GenHlth"].lowered_share == 0.0  # a fall of half a point is not material
    assert -MATERIAL_DROP < effects["GenHlth"].mean_change < 0
    assert (effects["BMI"].lowered_share, effects["BMI"].mean_change) == (0.0, pytest.approx(0.002))
    assert effects["Stroke"].mean_change == 0.0
