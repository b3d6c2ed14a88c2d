"""The ADA risk test score from the survey's indicators, item by item, against the test's own point table."""

from __future__ import annotations

import numpy as np
import pytest

from ml.schema import DEFAULT_RECORD, FEATURE_NAMES
from ml.training.ada import HIGH_RISK_POINTS, ada_risk_points


def _row(**changes: float) -> np.ndarray:
    record = {**DEFAULT_RECORD, "Age": 1, "Sex": 0, "HighBP": 0, "PhysActivity": 1, "BMI": 22.0, **changes}
    return np.array([[record[name] for name in FEATURE_NAMES]], dtype=np.float64)


@pytest.mark.parametrize(
    ("changes", "points"),
    [
        ({}, 0),  # a woman aged 18-24, active, normal weight, no high blood pressure
        ({"Age": 4}, 0),  # 35-39
        ({"Age": 5}, 1),  # 40-44
        ({"Age": 6}, 1),  # 45-49
        ({"Age": 7}, 2),  # 50-54
        ({"Age": 8}, 2),  # 55-59
        ({"Age": 9}, 3),  # 60-64
        ({"Age": 13}, 3),  # 80+
        ({"Sex": 1}, 1),
        ({"HighBP": 1}, 1),
        ({"PhysActivity": 0}, 1),
        ({"BMI": 24.9}, 0),
        ({"BMI": 25.0}, 1),
        ({"BMI": 29.9}, 1),
        ({"BMI": 30.0}, 2),
        ({"BMI": 39.9}, 2),
        ({"BMI": 40.0}, 3),
        ({"Age": 11, "Sex": 1, "HighBP": 1, "PhysActivity": 0, "BMI": 41.0}, 9),  # every available item
    ],
)
def test_points_follow_the_test_item_by_item(changes: dict[str, float], points: int) -> None:
    assert ada_risk_points(_row(**changes)).tolist() == [points]


def test_the_cut_off_is_five_points_and_rows_are_scored_independently() -> None:
    rows = np.vstack([_row(Age=9, Sex=1, HighBP=1), _row(Age=9, Sex=1), _row()])
    scores = ada_risk_points(rows)
    assert scores.tolist() == [5, 4, 0]
    assert (scores >= HIGH_RISK_POINTS).tolist() == [True, False, False]
