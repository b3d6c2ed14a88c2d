"""The screening answer is safe for the people it could miss (issue 19), checked through the API on the session's
synthetic model: access answers never lower it, people not checked recently and people with pre-diabetes are
flagged at least as often as by the ADA risk test on the model's own test split, and the answer says why.

The synthetic data, like the real file, diagnoses fewer people who were not checked (`ml.training.synthetic_data`), so a
model that took the access answers at their word would fail these tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml.inference.predictor import Predictor
from ml.schema import CARE_ACCESS, FEATURE_NAMES, TARGET
from ml.training.ada import HIGH_RISK_POINTS, ada_risk_points
from ml.training.data import read_data_file
from ml.training.pipeline import TrainingConfig, split_folds
from ml.training.synthetic_data import make_synthetic
from tests.service.helpers import record

LEVELS = ("lower", "raised", "high")
NO_ACCESS = {name: 1 - in_care for name, in_care in CARE_ACCESS.items()}


def _screenings(client: TestClient, rows: np.ndarray) -> list[dict[str, Any]]:
    """The `screening` of every row's answer, through POST /predict/batch (1,000 records a request)."""
    answers = []
    for start in range(0, len(rows), 1000):
        records = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in rows[start : start + 1000]]
        response = client.post("/predict/batch", json={"records": records})
        assert response.status_code == 200, response.text
        answers += [answer["screening"] for answer in response.json()["predictions"]]
    return answers


@pytest.fixture
def test_split(client: TestClient, trained_model_dir: Path) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """The session model's own test split (re-created from its manifest), and the service's answer for each row."""
    manifest = Predictor.load(trained_model_dir).manifest
    frame = read_data_file(trained_model_dir.parent / "synthetic.csv.gz")
    folds = split_folds(frame, TrainingConfig(**manifest.training.config))
    assert folds.outer.protocol["split_id"] == manifest.split.test_split_id
    return folds.x_test, folds.y_test, _screenings(client, folds.x_test)


def _flagged(screenings: list[dict[str, Any]]) -> np.ndarray:
    return np.array([s["level"] != "lower" for s in screenings])


@pytest.mark.parametrize("answers", [{name: value} for name, value in NO_ACCESS.items()] + [NO_ACCESS])
def test_an_access_answer_set_to_no_access_lowers_no_ones_screening(
    client: TestClient, answers: dict[str, int]
) -> None:
    """People in care (checked, covered, never kept from a doctor by the cost), then the same people without."""
    frame = make_synthetic(600, seed=8).drop(columns=[TARGET])
    for name, in_care in CARE_ACCESS.items():
        frame[name] = in_care
    rows = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    outside = rows.copy()
    for name, value in answers.items():
        outside[:, FEATURE_NAMES.index(name)] = value
    before, after = _screenings(client, rows), _screenings(client, outside)
    lowered = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a["risk"] < b["risk"] - 1e-12]
    assert not lowered, f"{len(lowered)} of {len(rows)} risks fell, e.g. row {lowered[0]}: {before[lowered[0]]}"
    moved_down = [
        i
        for i, (b, a) in enumerate(zip(before, after, strict=True))
        if LEVELS.index(a["level"]) < LEVELS.index(b["level"])
    ]
    assert not moved_down, f"{len(moved_down)} of {len(rows)} levels fell"


def test_people_not_checked_recently_are_flagged_at_least_as_often_as_by_the_ada_test(
    test_split: tuple[np.ndarray, np.ndarray, list[dict[str, Any]]],
) -> None:
    rows, _, screenings = test_split
    unchecked = rows[:, FEATURE_NAMES.index("CholCheck")] == 0
    assert unchecked.sum() >= 10  # the synthetic test split has people not checked
    ada = ada_risk_points(rows) >= HIGH_RISK_POINTS
    assert _flagged(screenings)[unchecked].mean() >= ada[unchecked].mean()


def test_raised_flags_at_least_as_many_people_with_prediabetes_as_the_ada_test(
    test_split: tuple[np.ndarray, np.ndarray, list[dict[str, Any]]],
) -> None:
    rows, y, screenings = test_split
    prediabetic = y == 1
    assert prediabetic.sum() >= 5
    ada = ada_risk_points(rows) >= HIGH_RISK_POINTS
    assert _flagged(screenings)[prediabetic].mean() >= ada[prediabetic].mean()


def test_each_level_states_the_share_of_its_test_split_people_who_were_affected(
    test_split: tuple[np.ndarray, np.ndarray, list[dict[str, Any]]],
) -> None:
    """`affected_at_level`, the figure the result card states for the level, is measured on those very rows."""
    _, y, screenings = test_split
    levels = np.array([s["level"] for s in screenings])
    for level in set(levels):
        at_level = levels == level
        stated = [s["affected_at_level"] for s, here in zip(screenings, at_level, strict=True) if here]
        assert stated == pytest.approx([float((y[at_level] > 0).mean())] * len(stated))


def test_the_chance_of_prediabetes_comes_with_its_average_from_the_training_rows(
    client: TestClient, trained_model_dir: Path
) -> None:
    manifest = Predictor.load(trained_model_dir).manifest
    folds = split_folds(
        read_data_file(trained_model_dir.parent / "synthetic.csv.gz"), TrainingConfig(**manifest.training.config)
    )
    training_share = float((np.concatenate((folds.y_fit, folds.y_val)) == 1).mean())
    body = client.post("/predict", json=record(HighBP=1, BMI=33, Age=9)).json()
    chance = body["screening"]["prediabetes"]
    assert chance["risk"] == pytest.approx(body["probabilities"]["prediabetic"])  # in care: the same answers
    assert chance["average"] == pytest.approx(training_share)
    assert chance["ratio"] == pytest.approx(chance["risk"] / training_share)


def test_a_person_outside_the_care_system_is_told_why_in_plain_words(client: TestClient) -> None:
    assert "care_access" not in client.post("/predict", json=record()).json()["screening"]
    body = client.post("/predict", json=record(CholCheck=0)).json()
    care = body["screening"]["care_access"]
    assert (care["not_checked"], care["no_coverage"], care["cost_barrier"]) == (True, False, False)
    assert care["message"].startswith("A blood test (HbA1c or fasting glucose) is worth having whatever this result")
    assert "may be too low for you" in care["message"]
    # The screening reads the answers as in care; the class probabilities stay the model's for the answers given.
    in_care = client.post("/predict", json=record()).json()
    assert body["screening"]["risk"] == pytest.approx(in_care["screening"]["risk"])
    assert body["screening"]["thresholds"]["raised"] <= in_care["screening"]["thresholds"]["raised"]
    assert "It can still be too low" in care["message"]  # after the in-care reading (screening review 1)


@pytest.mark.parametrize(
    ("age", "bmi", "advised"), [(8, 27, True), (4, 25, True), (10, 24.9, False), (3, 30, False), (11, 30, False)]
)
def test_the_answer_says_when_the_us_guideline_advises_a_test_whatever_the_level(
    client: TestClient, age: int, bmi: float, advised: bool
) -> None:
    """USPSTF 2021: adults aged 35 to 70 with a BMI of 25 or more (Age bands 35-39 to 65-69)."""
    assert client.post("/predict", json=record(Age=age, BMI=bmi)).json()["screening"]["guideline_test"] is advised
