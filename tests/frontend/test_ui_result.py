"""The answer's wording: the risk against the average, advice by level, near-ties, factors in plain words, the chart."""

from __future__ import annotations

import pytest

from frontend.about import in_ten, intro, track_record
from frontend.result import (
    ADVICE,
    compared_with_average,
    factor_sentence,
    percent,
    risk_chart,
    risk_sentence,
    status_sentence,
)
from ml.contract import Contribution, ModelResponse, PredictionResponse, ScreeningLevel
from ml.manifest import ScreeningPerformance, ScreeningRule
from ml.schema import feature

RULE = ScreeningRule(
    average=0.16,
    raised=0.15,
    high=0.38,
    test=ScreeningPerformance(
        rows=50_732, flagged=0.385, precision=0.326, sensitivity=0.802, sensitivity_diabetes=0.82
    ),
)


def answer(probabilities: tuple[float, float, float]) -> PredictionResponse:
    return PredictionResponse.of(0, probabilities, RULE, model_version="v1", synthetic=False)


@pytest.mark.parametrize(
    ("probability", "text"),
    [(0.0, "0%"), (0.004, "<1%"), (0.005, "<1%"), (0.0051, "1%"), (0.425, "42%"), (0.996, ">99%"), (1.0, "100%")],
)
def test_percent_never_rounds_a_real_chance_to_zero_or_certainty(probability: float, text: str) -> None:
    assert percent(probability) == text


@pytest.mark.parametrize(
    ("ratio", "words"),
    [
        (0.3, "lower than"),
        (0.79, "lower than"),
        (0.8, "about the same as"),
        (1.2, "about the same as"),
        (1.3, "about 1.5 times"),
        (1.94, "about twice"),
        (2.2, "about twice"),
        (3.83, "about 4 times"),
    ],
)
def test_the_ratio_to_the_average_is_said_in_words(ratio: float, words: str) -> None:
    assert compared_with_average(ratio) == words


def test_the_headline_is_the_risk_against_the_average_as_in_the_issue() -> None:
    """A person with 27% diabetes and 4% pre-diabetes: "31%, about twice the average of 16%"."""
    result = answer((0.69, 0.04, 0.27))
    assert result.screening.level is ScreeningLevel.RAISED
    assert risk_sentence(result.screening) == (
        "Your estimated chance of having pre-diabetes or diabetes is **31%**, about twice the average of 16% for "
        "adults in the survey the model learnt from."
    )


def test_advice_changes_with_the_level_and_names_the_blood_test() -> None:
    levels = {answer(p).screening.level for p in ((0.95, 0.01, 0.04), (0.8, 0.03, 0.17), (0.4, 0.05, 0.55))}
    assert levels == set(ScreeningLevel)
    assert len(set(ADVICE.values())) == len(ScreeningLevel)
    assert all("HbA1c" in ADVICE[level] for level in (ScreeningLevel.RAISED, ScreeningLevel.HIGH))
    assert "see a doctor soon" in ADVICE[ScreeningLevel.HIGH]


def test_the_most_likely_status_is_secondary_and_a_near_tie_is_said_to_be_one() -> None:
    clear = status_sentence(answer((0.9, 0.02, 0.08)))
    assert clear.startswith("Most likely status: **No diabetes** (90%).")
    assert "only while pregnant" in clear  # the class's description, in plain words
    assert "almost as likely" not in clear
    tie = status_sentence(answer((0.51, 0.04, 0.45)))
    assert "But **Diabetes** is almost as likely (45%): the answers do not tell these two apart." in tie
    assert status_sentence(answer((0.3, 0.05, 0.65))) == "Most likely status: **Diabetes** (65%)."


def test_factors_say_what_they_do_to_the_risk_without_double_negatives() -> None:
    up = factor_sentence(Contribution(feature="HighBP", value=1.0, value_label="Yes", contribution=0.4))
    assert up == f"{feature('HighBP').question} You answered **Yes**: this raises your estimated risk."
    down = factor_sentence(Contribution(feature="Age", value=2.0, value_label="25-29", contribution=-0.3))
    assert down.endswith("You answered **25-29**: this lowers your estimated risk.")
    assert "away" not in up + down


def test_the_chart_has_a_fixed_0_to_100_axis_the_levels_and_the_average() -> None:
    spec = risk_chart(answer((0.69, 0.04, 0.27)).screening).to_dict()
    x_scales = [layer["encoding"]["x"]["scale"]["domain"] for layer in spec["layer"]]
    assert all(domain == [0, 1] for domain in x_scales)
    datasets = [row for rows in spec["datasets"].values() for row in rows]
    assert {row.get("level") for row in datasets} >= {"lower", "raised", "high"}
    assert {"risk": 0.16, "row": "average", "text": "average 16%"} in datasets
    assert any(row.get("risk") == pytest.approx(0.31) and row.get("text") == "31%" for row in datasets)


def test_the_model_is_described_in_plain_words() -> None:
    assert in_ten(0.326) == "about 3 in 10"
    assert in_ten(0.82) == "about 8 in 10"
    assert in_ten(0.04) == "fewer than 1 in 10"
    info = ModelResponse.model_validate(_model_document(synthetic=False))
    sentences = " ".join(track_record(info))
    assert "Tested on 50,732 people it never saw in training." in sentences
    assert "38% of them; about 3 in 10 of those have pre-diabetes or diabetes" in sentences
    assert "about 8 in 10 of the people who have diabetes" in sentences
    assert "253,680 US adults" in intro(info)
    synthetic = ModelResponse.model_validate(_model_document(synthetic=True))
    assert "made-up (synthetic) data" in intro(synthetic)


def _model_document(*, synthetic: bool) -> dict[str, object]:
    return {
        "model_version": "20261201T131344Z-8278e4c8",
        "created_at": "2026-12-01T13:13:44Z",
        "model_uri": "artifacts/model",
        "digest": "0" * 64,
        "metrics": {"test": {}, "validation_tuned_on": {}},
        "decision_rule": {},
        "calibration": {},
        "synthetic": synthetic,
        "screening": RULE.model_dump(),
        "data": {
            "file": "x.csv",
            "sha256": "0" * 64,
            "rows": 253_680,
            "synthetic": synthetic,
            "duplicates": {},
            "class_counts": {},
        },
        "versions": {},
        "schema": {},
        "batch_limit": 1000,
    }
