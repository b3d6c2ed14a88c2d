"""Every figure the result card and the sidebar state is the test split's: the session's model is asked, through the
real service, about every row of its own test split, and each sentence is checked against the shares counted there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frontend.about import in_ten, track_record
from frontend.client import ApiClient
from frontend.result import level_sentence, percent
from ml.contract import PredictionResponse
from ml.inference.predictor import Predictor
from ml.manifest import ScreeningLevel
from ml.schema import FEATURE_NAMES
from ml.training.data import read_data_file
from ml.training.pipeline import TrainingConfig, split_folds


@pytest.fixture(scope="module")
def answered(api_url: str, trained_model_dir: Path) -> tuple[np.ndarray, list[PredictionResponse]]:
    """The true classes of the model's test split and the service's answer for each of its rows."""
    manifest = Predictor.load(trained_model_dir).manifest
    folds = split_folds(
        read_data_file(trained_model_dir.parent / "synthetic.csv.gz"), TrainingConfig(**manifest.training.config)
    )
    client = ApiClient(api_url, timeout_seconds=30, connect_timeout_seconds=2)
    records = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in folds.x_test]
    answers = [
        answer
        for start in range(0, len(records), 1000)
        for answer in client.predict_batch(records[start : start + 1000])
    ]
    return folds.y_test, answers


def test_each_levels_sentence_states_the_share_of_affected_people_on_the_test_split(
    answered: tuple[np.ndarray, list[PredictionResponse]],
) -> None:
    y, answers = answered
    levels = np.array([a.screening.level for a in answers], dtype=object)
    seen = set(levels)
    assert len(seen) >= 2
    for level in seen:
        affected = float((y[levels == level] > 0).mean())
        example = next(a.screening for a in answers if a.screening.level is level)
        sentence = level_sentence(example)
        assert f"{in_ten(affected)} ({percent(affected)}) had pre-diabetes or diabetes" in sentence, sentence
        if level is ScreeningLevel.HIGH:
            assert "at least half" not in sentence


def test_the_sidebar_states_the_test_splits_figures(
    api_url: str, answered: tuple[np.ndarray, list[PredictionResponse]]
) -> None:
    y, answers = answered
    flagged = np.array([a.screening.level is not ScreeningLevel.LOWER for a in answers])
    positive = y > 0
    info = ApiClient(api_url, timeout_seconds=10, connect_timeout_seconds=2).model_info()
    sentences = " ".join(track_record(info))
    assert f"Tested on {len(y):,} people" in sentences
    assert f"gives a raised or high result to {round(flagged.mean() * 100)}% of them" in sentences
    assert f"{in_ten(positive[flagged].mean())} of those have pre-diabetes or diabetes" in sentences
    assert f"{in_ten(flagged[y == 2].mean())} of the people who have diabetes" in sentences
    assert f"to {in_ten(flagged[positive].mean())} of those who have pre-diabetes or diabetes" in sentences
