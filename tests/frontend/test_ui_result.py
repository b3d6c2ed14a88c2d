"""The answer's wording: one message by level, the risk against the average, pre-diabetes, access to care, factors,
the chart."""

from __future__ import annotations

import pytest

from frontend.about import in_ten, intro, learnt_from, track_record
from frontend.result import (
    DIAGNOSED,
    DIAGNOSED_OUTSIDE_CARE,
    compared_with_average,
    factor_sentence,
    fine_percent,
    headline,
    level_sentence,
    percent,
    prediabetes_sentence,
    risk_chart,
    risk_sentence,
    tone,
)
from frontend.result import message as card_message
from ml.contract import Contribution, ModelResponse, PredictionResponse, Screening
from ml.manifest import (
    AccessHandling,
    FlaggedShare,
    LevelOutcome,
    ScreeningLevel,
    ScreeningPerformance,
    ScreeningRule,
)
from ml.schema import DEFAULT_RECORD, FEATURE_NAMES, feature

LEVELS = {
    ScreeningLevel.LOWER: LevelOutcome(people=0.58, affected=0.052),
    ScreeningLevel.RAISED: LevelOutcome(people=0.34, affected=0.241),
    ScreeningLevel.HIGH: LevelOutcome(people=0.08, affected=0.496),
}
RULE = ScreeningRule(
    average=0.16,
    prediabetes_average=0.018,
    raised=0.15,
    raised_not_checked=0.09,
    high=0.38,
    access=AccessHandling(
        roc_auc_as_given=0.828,
        roc_auc_in_care=0.827,
        specificity_at_ada_sensitivity_as_given=0.689,
        specificity_at_ada_sensitivity_in_care=0.687,
    ),
    test=ScreeningPerformance(
        rows=50_732,
        flagged=0.385,
        precision=0.326,
        sensitivity=0.802,
        sensitivity_diabetes=0.82,
        sensitivity_prediabetes=0.74,
        specificity=0.65,
        ada_flagged=0.47,
        ada_sensitivity=0.80,
        ada_sensitivity_prediabetes=0.72,
        ada_specificity=0.58,
    ),
    test_not_checked=FlaggedShare(rows=1_700, flagged=0.3, ada_flagged=0.27),
    test_levels=LEVELS,
)
IN_CARE = [float(DEFAULT_RECORD[name]) for name in FEATURE_NAMES]  # 55-59, BMI 27: the guideline advises a test


def _with(row: list[float], **answers: float) -> list[float]:
    changed = list(row)
    for name, value in answers.items():
        changed[FEATURE_NAMES.index(name)] = value
    return changed


#: In care and outside the guideline's ages (25-29): the one person a 'lower' level tells "no blood test".
YOUNG = _with(IN_CARE, Age=2.0)


def answer(probabilities: tuple[float, float, float], row: list[float] = IN_CARE) -> PredictionResponse:
    screening = Screening.of(probabilities, RULE, row)
    return PredictionResponse.of(0, probabilities, screening, model_version="v1", synthetic=False)


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
        f"adults in the survey the model learnt from. {DIAGNOSED}"
    )


def test_advice_changes_with_the_level_and_names_the_blood_test() -> None:
    answers = [answer(p, YOUNG).screening for p in ((0.95, 0.01, 0.04), (0.8, 0.03, 0.17), (0.4, 0.05, 0.55))]
    assert [a.level for a in answers] == list(ScreeningLevel)
    assert [headline(a) for a in answers] == [
        "No blood test is suggested by this screening.",
        "A blood test is advised.",
        "Please see a doctor soon for a blood test (HbA1c or fasting glucose).",
    ]
    assert "HbA1c" in level_sentence(answers[1])
    # The card's one message: what to do first, then the risk, then what the level means.
    raised = card_message(answers[1])
    assert raised.startswith("**A blood test is advised.** Your estimated chance of having pre-diabetes or diabetes")
    assert raised.index(risk_sentence(answers[1])) < raised.index(level_sentence(answers[1]))


def test_high_says_what_its_precision_supports_not_at_least_half() -> None:
    """The 'high' threshold is where about half of everyone at or above it is affected: a person just above it is
    not "at least half"; the card gives the test split's share, from the manifest."""
    high = level_sentence(answer((0.4, 0.05, 0.55)).screening)
    assert "at least half" not in high
    assert "Of the people in the survey whose estimate was 38% or more, about 5 in 10 (50%) had" in high


def test_every_level_states_its_own_share_of_affected_people() -> None:
    lower = level_sentence(answer((0.95, 0.01, 0.04), YOUNG).screening)
    assert "whose result was 'lower', about 1 in 10 (5%) had pre-diabetes or diabetes" in lower
    raised = level_sentence(answer((0.8, 0.03, 0.17)).screening)
    assert "whose result was 'raised', about 2 in 10 (24%) had pre-diabetes or diabetes" in raised
    assert raised.startswith("Across everyone in the survey, from 15% this screen finds at least as many")


def test_a_raised_risk_near_the_average_is_not_called_average_beside_the_advice() -> None:
    """'raised' may start below the average (15% < 16% here): the card must not call a raised person "about the
    average" (or "lower than" it) while advising a test; it states the average and the level instead."""
    near = answer((0.845, 0.01, 0.145)).screening
    assert near.level is ScreeningLevel.RAISED
    assert near.ratio < 1
    sentence = risk_sentence(near)
    assert "about the same as" not in sentence
    assert "lower than" not in sentence
    assert "the average for adults in the survey the model learnt from is 16%" in sentence
    assert level_sentence(near).startswith("Across everyone in the survey, from 15% this screen finds")
    # Far from the average, the comparison is said in words, and it agrees with the level.
    assert "about 4 times the average of 16%" in risk_sentence(answer((0.4, 0.05, 0.55)).screening)
    assert "lower than the average of 16%" in risk_sentence(answer((0.95, 0.01, 0.04)).screening)


def test_the_chance_of_prediabetes_is_told_against_its_average() -> None:
    """As the issue asks: "your estimated chance of pre-diabetes is 4%, about twice the average of 1.8%; this
    estimate cannot rule it out"."""
    screening = answer((0.69, 0.04, 0.27)).screening
    assert screening.prediabetes.risk == pytest.approx(0.04)
    assert screening.prediabetes.average == RULE.prediabetes_average
    assert prediabetes_sentence(screening) == (
        "Your estimated chance of pre-diabetes alone is **4.0%**, about twice the average of 1.8%: the shares who had "
        "been told by a doctor they have pre-diabetes. Pre-diabetes is often never diagnosed, so the true chance can "
        "be higher, and this estimate cannot rule it out: only a blood test can."
    )
    assert fine_percent(0.018) == "1.8%"
    assert fine_percent(0.158) == "16%"
    assert fine_percent(0.0002) == "<0.1%"
    # One decimal on both sides: "2%" beside an average of 1.8% hid which was larger (screening re-attack).
    assert "**2.3%**, about" in prediabetes_sentence(answer((0.69, 0.023, 0.287)).screening)


def test_outside_care_the_estimate_is_said_to_be_that_of_people_in_care() -> None:
    """The estimate of a person outside care is that of the same answers from someone in care: "the share of people
    answering like you who had been told by a doctor" was false for them, as people like them are seldom told."""
    unchecked = list(IN_CARE)
    unchecked[FEATURE_NAMES.index("CholCheck")] = 0.0
    outside = answer((0.69, 0.04, 0.27), unchecked).screening
    assert risk_sentence(outside).endswith(DIAGNOSED_OUTSIDE_CARE)
    assert DIAGNOSED not in risk_sentence(outside)
    assert "among people who gave your answers but were in care" in prediabetes_sentence(outside)
    inside = answer((0.69, 0.04, 0.27)).screening
    assert risk_sentence(inside).endswith(DIAGNOSED)
    assert "were in care" not in prediabetes_sentence(inside)


@pytest.mark.parametrize("probabilities", [(0.8, 0.03, 0.17), (0.4, 0.05, 0.55)])
def test_at_raised_or_high_the_care_note_does_not_soften_the_advice(
    probabilities: tuple[float, float, float],
) -> None:
    """ "Please see a doctor soon" followed by "a blood test is worth having whatever this result says" read as a step
    down: at 'raised' and 'high' the note says the advised test matters all the more."""
    uninsured = list(IN_CARE)
    uninsured[FEATURE_NAMES.index("AnyHealthcare")] = 0.0
    screening = answer(probabilities, uninsured).screening
    assert screening.level is not ScreeningLevel.LOWER
    assert screening.care_access is not None
    note = screening.care_access.message
    assert "worth having whatever" not in note
    assert note.startswith(
        "The blood test this result advises matters all the more because you have no health care coverage: "
        "this estimate may be too low for you"
    )
    assert "worth having whatever" not in card_message(screening)


def test_a_person_not_checked_is_told_a_blood_test_is_worth_having_whatever_the_level() -> None:
    unchecked = list(IN_CARE)
    unchecked[FEATURE_NAMES.index("CholCheck")] = 0.0
    screening = answer((0.95, 0.01, 0.04), unchecked).screening
    assert screening.level is ScreeningLevel.LOWER
    assert screening.care_access is not None
    assert screening.care_access.not_checked
    message = screening.care_access.message
    assert message.startswith("A blood test (HbA1c or fasting glucose) is worth having whatever this result says")
    assert "have not had your cholesterol checked in the past five years" in message
    assert "may be too low for you" in message
    assert "advised from a lower estimate (9% instead of 15%)" in message
    card = card_message(screening)
    assert card.startswith("**A blood test is worth having, because of your answers about seeing a doctor.**")
    assert card.endswith(f"\n\n{message}")  # the API's words, in the card's one message
    assert "No blood test is suggested" not in card
    assert "Your estimate alone is below 9%, the level from which this screen would advise one" in card
    # Not checked, the raised level starts at its own threshold, and the bar shows that one.
    assert answer((0.88, 0.02, 0.10), unchecked).screening.level is ScreeningLevel.RAISED
    assert answer((0.88, 0.02, 0.10)).screening.level is ScreeningLevel.LOWER
    assert answer((0.88, 0.02, 0.10), unchecked).screening.thresholds.raised == RULE.raised_not_checked


def test_no_coverage_and_cost_are_named_too() -> None:
    row = list(IN_CARE)
    row[FEATURE_NAMES.index("AnyHealthcare")] = 0.0
    row[FEATURE_NAMES.index("NoDocbcCost")] = 1.0
    care = answer((0.95, 0.01, 0.04), row).screening.care_access
    assert care is not None
    assert (care.not_checked, care.no_coverage, care.cost_barrier) == (False, True, True)
    assert "because you have no health care coverage and could not see a doctor because of the cost" in care.message
    assert "lower estimate" not in care.message  # only people not checked have their own threshold
    assert answer((0.95, 0.01, 0.04)).screening.care_access is None


def test_factors_say_what_they_did_to_this_estimate_without_double_negatives() -> None:
    up = factor_sentence(Contribution(feature="HighBP", value=1.0, value_label="Yes", contribution=0.4))
    assert up == f"{feature('HighBP').question} You answered **Yes**: this raised your estimate."
    down = factor_sentence(Contribution(feature="Age", value=2.0, value_label="25-29", contribution=-0.3))
    assert down.endswith(
        "You answered **25-29**: this lowered your estimate, compared with the average answer in the survey."
    )
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
    assert "182,570 US adults" in intro(info)  # the rows it learnt from, not the whole file's 253,680
    assert learnt_from(info) == "Learnt from 182,570 answers to the CDC's 2015 health survey (BRFSS)."
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
            "learnt_from": 182_570,
            "synthetic": synthetic,
            "duplicates": {},
            "class_counts": {},
        },
        "versions": {},
        "schema": {},
        "batch_limit": 1000,
    }


def test_a_risk_that_rounds_to_the_threshold_is_said_to_be_just_below_it() -> None:
    """14.6% shows as 15%, like the raised level of 15%: "15% ... below 15%" would contradict itself."""
    screening = answer((0.854, 0.01, 0.136), YOUNG).screening
    assert screening.level is ScreeningLevel.LOWER
    assert percent(screening.risk) == percent(screening.thresholds.raised)
    assert "Your estimate is just below the level at which one is advised." in level_sentence(screening)
    assert "Your estimate is below 15%, the level" in level_sentence(answer((0.95, 0.01, 0.04), YOUNG).screening)


def test_a_person_outside_care_is_not_reassured_with_the_lower_levels_share() -> None:
    """Few of the people outside the care system carry a diagnosis because few were tested: "fewer than 1 in 10
    had pre-diabetes or diabetes" would reassure exactly the people the estimate may miss."""
    row = list(IN_CARE)
    row[FEATURE_NAMES.index("AnyHealthcare")] = 0.0
    card = card_message(answer((0.95, 0.01, 0.04), row).screening)
    assert "whose result was 'lower'" not in card
    assert "whose result was 'lower'" in card_message(answer((0.95, 0.01, 0.04), YOUNG).screening)


# ------------------------------------------------------------------------------ screening review 1 (lay reader)


def test_the_estimate_is_said_to_be_the_share_told_by_a_doctor_and_the_true_chance_can_be_higher() -> None:
    """The survey's label is a doctor's diagnosis: "your chance of pre-diabetes is 1.8% on average" read as the
    share of adults with pre-diabetes, which is far higher (most of it is never diagnosed)."""
    screening = answer((0.69, 0.04, 0.27)).screening
    for sentence in (risk_sentence(screening), card_message(screening)):
        assert "share of people answering like you who had been told by a doctor" in sentence
        assert "Many cases are never diagnosed, so your true chance can be higher." in sentence
    alone = prediabetes_sentence(screening)
    assert "the shares who had been told by a doctor they have pre-diabetes" in alone
    assert "Pre-diabetes is often never diagnosed, so the true chance can be higher" in alone


@pytest.mark.parametrize(
    ("age", "bmi", "advised"),
    [
        (8.0, 27.0, True),
        (4.0, 25.0, True),
        (10.0, 40.0, True),
        (3.0, 40.0, False),
        (11.0, 30.0, False),
        (10.0, 24.9, False),
    ],
)
def test_lower_never_says_no_test_to_people_the_guideline_advises_one(age: float, bmi: float, advised: bool) -> None:
    """USPSTF 2021: adults aged 35-70 with a BMI of 25 or more; the schema's Age bands 4 (35-39) to 10 (65-69)."""
    assert (feature("Age").label(4), feature("Age").label(10)) == ("35-39", "65-69")
    screening = answer((0.95, 0.01, 0.04), _with(IN_CARE, Age=age, BMI=bmi)).screening
    assert screening.level is ScreeningLevel.LOWER
    assert screening.guideline_test is advised
    card = card_message(screening)
    if advised:
        assert card.startswith("**A blood test is advised at your age and weight.**")
        assert "No blood test" not in card
        assert "guideline advises a blood test for adults aged 35 to 70 who are overweight (BMI 25 or more)" in card
        assert tone(screening) == "warning"
    else:
        assert card.startswith("**No blood test is suggested by this screening.**")
        assert tone(screening) == "info"


def test_outside_care_at_lower_the_card_does_not_contradict_itself_and_says_it_can_still_be_too_low() -> None:
    """ "A blood test is worth having" then "below 8%, the level at which one is advised for you" read as: worth
    having, but not advised?"""
    screening = answer((0.95, 0.01, 0.04), _with(IN_CARE, CholCheck=0.0)).screening
    card = card_message(screening)
    assert "the level at which one is advised" not in card
    assert "the reasons below are why a test is still worth having" in card
    assert "It can still be too low: whether a doctor ever told you that your blood pressure or cholesterol" in card


def test_outside_care_at_raised_the_card_quotes_no_figures_of_the_whole_population_as_theirs() -> None:
    """Among unchecked people only about 3% carry a diagnosis: "of the people whose result was 'raised', 2 in 10"
    and "from 8%, this screen finds at least as many as the ADA test" are everyone's figures, not theirs."""
    for row in (_with(IN_CARE, CholCheck=0.0), _with(IN_CARE, AnyHealthcare=0.0, Age=9.0)):
        screening = answer((0.8, 0.03, 0.17), row).screening
        assert screening.level is ScreeningLevel.RAISED
        sentence = level_sentence(screening)
        assert "whose result was" not in sentence
        assert "American Diabetes Association" not in sentence
        assert "HbA1c" in sentence


def test_an_unchecked_persons_never_told_answer_is_said_to_maybe_mean_never_measured() -> None:
    unchecked = answer((0.95, 0.01, 0.04), _with(IN_CARE, CholCheck=0.0)).screening
    checked = answer((0.95, 0.01, 0.04)).screening
    note = "As you have not been checked recently, this answer may only mean it was never measured."
    for name in ("HighChol", "HighBP"):
        no = Contribution(feature=name, value=0.0, value_label="No", contribution=-0.2)
        assert factor_sentence(no, unchecked).endswith(note)
        assert note not in factor_sentence(no, checked)
        yes = Contribution(feature=name, value=1.0, value_label="Yes", contribution=0.3)
        assert note not in factor_sentence(yes, unchecked)


def test_a_lowering_bmi_line_does_not_read_as_overweight_being_protective() -> None:
    bmi = Contribution(feature="BMI", value=27.0, value_label="27", contribution=-0.05)
    sentence = factor_sentence(bmi)
    assert "compared with the average answer in the survey" in sentence


def test_each_level_has_its_own_colour() -> None:
    levels = [answer(p, YOUNG).screening for p in ((0.95, 0.01, 0.04), (0.8, 0.03, 0.17), (0.4, 0.05, 0.55))]
    assert [tone(s) for s in levels] == ["info", "warning", "error"]
    assert tone(answer((0.95, 0.01, 0.04), _with(YOUNG, NoDocbcCost=1.0)).screening) == "warning"
