"""The answer's wording: readable percentages, the status sentence and the factors in plain words."""

from __future__ import annotations

import pytest

from frontend.client import Factor, PredictionResult
from frontend.result import factor_sentence, percent, status_sentence
from ml.schema import feature


@pytest.mark.parametrize(
    ("probability", "text"),
    [(0.0, "0%"), (0.004, "<1%"), (0.005, "<1%"), (0.0051, "1%"), (0.425, "42%"), (0.996, ">99%"), (1.0, "100%")],
)
def test_percent_never_rounds_a_real_chance_to_zero_or_certainty(probability: float, text: str) -> None:
    assert percent(probability) == text


def test_status_sentence_adds_the_description_only_when_it_says_more() -> None:
    result = PredictionResult(1, "Pre-diabetes", (0.2, 0.5, 0.3), "v1")
    assert status_sentence(result).endswith("**Pre-diabetes** (pre-diabetes or borderline diabetes).")
    assert status_sentence(PredictionResult(2, "Diabetes", (0.2, 0.3, 0.5), "v1")).endswith("**Diabetes**.")


def test_factor_sentence_quotes_the_question_the_answer_and_the_direction() -> None:
    up = factor_sentence(Factor("HighBP", 1.0, "Yes", 0.4), "Diabetes")
    assert up == f"{feature('HighBP').question} You answered **Yes**: this points towards *Diabetes*."
    down = factor_sentence(Factor("Age", 2.0, "25-29", -0.3), "Diabetes")
    assert down.endswith("You answered **25-29**: this points away from *Diabetes*.")
