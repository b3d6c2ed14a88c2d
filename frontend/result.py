"""How one answer is shown: the screening risk first, in words and numbers, and what to do about it; then the
most likely status, the factors that raised or lowered the estimate, and the model that answered.

The wording is written for the person who answered the questions: numbers as whole percentages, comparisons as
"about twice the average", advice that changes with the level the service reports, no double negatives.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ml.contract import Contribution, PredictionResponse, Screening, ScreeningLevel
from ml.schema import CLASSES, feature

DISCLAIMER = (
    "This is a screening aid, not a diagnosis. It estimates chances from survey answers only. Only a blood test "
    "(such as HbA1c or fasting glucose) can tell whether you have diabetes or pre-diabetes. Please talk to a health "
    "professional about your result."
)
SYNTHETIC_WARNING = (
    "**Made-up model.** This result comes from a model trained on synthetic (made-up) data, for a demonstration. "
    "It says nothing about your health."
)
#: What to do, by level; the levels' thresholds come with every answer (see `ml.training.screening`).
ADVICE = {
    ScreeningLevel.LOWER: (
        "This is below the level at which a blood test is advised. Keep an eye on it at your regular check-ups, and "
        "see a doctor if you notice signs such as strong thirst, passing urine often or unusual tiredness."
    ),
    ScreeningLevel.RAISED: (
        "This is in the range where a blood test is advised. A simple blood test (HbA1c or fasting glucose) shows "
        "whether you have pre-diabetes or diabetes: ask your doctor or a pharmacy about one."
    ),
    ScreeningLevel.HIGH: (
        "This is high: at least half of the people in the survey with an estimate like yours had pre-diabetes or "
        "diabetes. Please see a doctor soon for a blood test (HbA1c or fasting glucose)."
    ),
}
#: Two statuses this close (in probability) are a near-tie: the answers do not tell them apart.
NEAR_TIE = 0.10
_BANDS = {ScreeningLevel.LOWER: "#e8f0fe", ScreeningLevel.RAISED: "#fdf0d5", ScreeningLevel.HIGH: "#fbdada"}


def percent(probability: float) -> str:
    """A probability as a whole percentage a person can read ("<1%" rather than a misleading "0%")."""
    value = round(probability * 100)
    if value == 0 and probability > 0:
        return "<1%"
    if value == 100 and probability < 1:
        return ">99%"
    return f"{value}%"


def compared_with_average(ratio: float) -> str:
    """ "lower than", "about the same as", "about twice", "about 3.5 times": the ratio to the average in words."""
    if ratio < 0.8:
        return "lower than"
    if ratio < 1.25:
        return "about the same as"
    halves = max(round(ratio * 2) / 2, 1.5)
    if halves == 2:
        return "about twice"
    return f"about {halves:g} times"


def risk_sentence(screening: Screening) -> str:
    """The headline: the chance of pre-diabetes or diabetes, against the survey's average."""
    return (
        f"Your estimated chance of having pre-diabetes or diabetes is **{percent(screening.risk)}**, "
        f"{compared_with_average(screening.ratio)} the average of {percent(screening.average)} for adults in the "
        "survey the model learnt from."
    )


def status_sentence(result: PredictionResponse) -> str:
    """The most likely status, secondary to the risk; a near-tie between the two likeliest is said to be one."""
    probabilities = result.probabilities.ordered()
    first, second = sorted(range(len(CLASSES)), key=lambda k: -probabilities[k])[:2]
    likeliest = CLASSES[first]
    sentence = f"Most likely status: **{likeliest.label}** ({percent(probabilities[first])})."
    if likeliest.description.rstrip(".").lower() != likeliest.label.lower():
        sentence += f" {likeliest.description}"
    if probabilities[first] - probabilities[second] < NEAR_TIE:
        runner_up = CLASSES[second]
        sentence += (
            f" But **{runner_up.label}** is almost as likely ({percent(probabilities[second])}): the answers do not "
            "tell these two apart."
        )
    return sentence


def factor_sentence(factor: Contribution) -> str:
    """One factor in plain words: the question, the answer given, and which way it moved the estimated risk."""
    question = feature(factor.feature).question
    effect = "this raises your estimated risk" if factor.contribution > 0 else "this lowers your estimated risk"
    return f"{question} You answered **{factor.value_label}**: {effect}."


def risk_chart(screening: Screening) -> alt.LayerChart | alt.FacetChart:
    """The risk as a bar on a fixed 0-100% axis, the three levels as a strip under it, the average marked."""
    raised, high = screening.thresholds.raised, screening.thresholds.high
    x_scale = alt.Scale(domain=[0, 1], nice=False)
    x_axis = alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1.0], title=None, grid=False)
    rows = ["average", "you", "levels"]
    y = alt.Y("row:N", sort=rows, axis=None, scale=alt.Scale(domain=rows, paddingInner=0.25, paddingOuter=0))
    levels = list(ScreeningLevel)
    bands = pd.DataFrame(
        {
            "row": "levels",
            "level": [level.value for level in levels],
            "start": [0.0, raised, high],
            "end": [raised, high, 1.0],
            "middle": [raised / 2, (raised + high) / 2, (high + 1) / 2],
            "colour": [_BANDS[level] for level in levels],
        }
    )
    you = pd.DataFrame(
        {"row": "you", "start": [0.0], "end": [1.0], "risk": [screening.risk], "text": [percent(screening.risk)]}
    )
    average = pd.DataFrame(
        {"row": "average", "risk": [screening.average], "text": [f"average {percent(screening.average)}"]}
    )

    def x(field: str) -> alt.X:
        return alt.X(f"{field}:Q", scale=x_scale, axis=x_axis)

    layers = [
        alt.Chart(you).mark_bar(color="#eeeeee", height={"band": 1}).encode(x=x("start"), x2="end:Q", y=y),
        alt.Chart(you).mark_bar(color="#1f4e79", height={"band": 1}).encode(x=x("start"), x2="risk:Q", y=y),
        alt.Chart(you)
        .mark_text(align="left", dx=5, color="#1f4e79", fontWeight="bold")
        .encode(x=x("risk"), y=y, text="text:N"),
        alt.Chart(bands)
        .mark_bar(height={"band": 1})
        .encode(x=x("start"), x2="end:Q", y=y, color=alt.Color("colour:N", scale=None)),
        alt.Chart(bands).mark_text(color="#555555").encode(x=x("middle"), y=y, text="level:N"),
        alt.Chart(average).mark_rule(color="#333333", strokeDash=[4, 3], strokeWidth=2).encode(x=x("risk")),
        alt.Chart(average).mark_text(align="left", dx=5, color="#333333").encode(x=x("risk"), y=y, text="text:N"),
    ]
    chart: alt.LayerChart | alt.FacetChart = alt.layer(*layers).properties(height=alt.Step(24))
    return chart


def render_prediction(result: PredictionResponse, *, stale: bool) -> None:
    """Draw the answer; `stale` when the form changed since this prediction was made."""
    screening = result.screening
    with st.container(border=True, key="prediction_result"):
        st.subheader("Your result")
        if result.synthetic:
            st.error(SYNTHETIC_WARNING, icon=":material/science:")
        if stale:
            st.info("You changed some answers since this result. Press **Predict** again to update it.")
        st.markdown(risk_sentence(screening))
        st.altair_chart(risk_chart(screening), width="stretch")
        advice = st.warning if screening.level is not ScreeningLevel.LOWER else st.info
        advice(ADVICE[screening.level], icon=":material/bloodtype:")
        st.markdown(status_sentence(result))
        if result.explanation:
            st.markdown("**What moved your estimate most** (most important first)")
            st.markdown("\n".join(f"1. {factor_sentence(f)}" for f in result.explanation))
        st.warning(DISCLAIMER, icon=":material/medical_information:")
        st.caption(f"Model version: {result.model_version}")
