"""The answer's wording: readable percentages, the status sentence and the factors in plain words."""

from __future__ import annotations

import pytest

from frontend.result import factor_sentence, percent, status_sentence
from ml.contract import Contribution, PredictionResponse
from ml.schema import feature


@pytest.mark.parametrize(
    ("probability", "text"),
    [(0.0, "0%"), (0.004, "<1%"), (0.005, "<1%"), (0.0051, "1%"), (0.425, "42%"), (0.996, ">99%"), (1.0, "100%")],
)
def test_percent_never_rounds_a_real_chance_to_zero_or_certainty(probability: float, text: str) -> None:
    assert percent(probability) == text


def test_status_sentence_adds_the_description_only_when_it_says_more() -> None:
    result = PredictionResponse.of(1, (0.2, 0.5, 0.3), "v1")
    assert status_sentence(result).endswith("**Pre-diabetes** (pre-diabetes or borderline diabetes).")
    assert status_sentence(PredictionResponse.of(2, (0.2, 0.3, 0.5), "v1")).endswith("**Diabetes**.")


def test_factor_sentence_quotes_the_question_the_answer_and_the_direction() -> None:
    up = factor_sentence(Contribution(feature="HighBP", value=1.0, value_label="Yes", contribution=0.4), "Diabetes")
    assert up == f"{feature('HighBP').question} You answered **Yes**: this points towards *Diabetes*."
    down = factor_sentence(Contribution(feature="Age", value=2.0, value_label="25-29", contribution=-0.3), "Diabetes")
    assert down.endswith("You answered **25-29**: this points away from *Diabetes*.")
