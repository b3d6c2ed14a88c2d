"""How one answer is shown: one message first (what to do, and the screening risk against the average), then the
bar, the chance of pre-diabetes alone, why the estimate may be too low for someone outside the care system, the
answers that moved the estimate, and the model that answered.

The wording is written for the person who answered the questions: numbers as whole percentages, comparisons as
"about twice the average", advice that changes with the level the service reports, no double negatives. Every
figure it states comes with the answer, from the model's manifest: nothing is written here by hand. The class the
decision rule names is left out: beside "a blood test is advised", a "most likely status: no diabetes" left
readers unsure which number was theirs.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from frontend.about import in_ten
from ml.contract import Contribution, PredictionResponse, Screening
from ml.manifest import ScreeningLevel
from ml.schema import feature

DISCLAIMER = (
    "This is a screening aid, not a diagnosis. It estimates chances from survey answers only. Only a blood test "
    "(such as HbA1c or fasting glucose) can tell whether you have diabetes or pre-diabetes. Please talk to a health "
    "professional about your result."
)
SYNTHETIC_WARNING = (
    "**Made-up model.** This result comes from a model trained on synthetic (made-up) data, for a demonstration. "
    "It says nothing about your health."
)
#: What the survey's label measures: a doctor's diagnosis, not the condition (said beside every estimate).
DIAGNOSED = (
    "That is the share of people answering like you who had been told by a doctor that they have either. Many cases "
    "are never diagnosed, so your true chance can be higher."
)
#: ... and for a person outside the care system, whose estimate is that of the same answers from someone in care
#: ("answering like you ... told by a doctor" was false for them: people like them are seldom told).
DIAGNOSED_OUTSIDE_CARE = (
    "That is the share who had been told by a doctor that they have either among people who gave your answers but "
    "were in care (checked and covered). Many cases are never diagnosed, most of all outside care, so your true "
    "chance can be higher."
)
#: Ratios to the average said to be "about the same as" it.
ABOUT_THE_SAME = (0.8, 1.25)
_BANDS = {ScreeningLevel.LOWER: "#e8f0fe", ScreeningLevel.RAISED: "#fdf0d5", ScreeningLevel.HIGH: "#fbdada"}


def percent(probability: float) -> str:
    """A probability as a whole percentage a person can read ("<1%" rather than a misleading "0%")."""
    value = round(probability * 100)
    if value == 0 and probability > 0:
        return "<1%"
    if value == 100 and probability < 1:
        return ">99%"
    return f"{value}%"


def fine_percent(share: float) -> str:
    """A small share with one decimal below 10% (1.8%, not 2%; "<0.1%" rather than "0.0%"), whole above: for a
    chance read beside an average of a few percent, where "2%" against "1.8%" hid which was larger."""
    if 0 < share < 0.0005:
        return "<0.1%"
    return f"{share:.1%}" if share < 0.1 else percent(share)


def compared_with_average(ratio: float) -> str:
    """ "lower than", "about the same as", "about twice", "about 3.5 times": the ratio to the average in words."""
    if ratio < ABOUT_THE_SAME[0]:
        return "lower than"
    if ratio < ABOUT_THE_SAME[1]:
        return "about the same as"
    halves = max(round(ratio * 2) / 2, 1.5)
    if halves == 2:
        return "about twice"
    return f"about {halves:g} times"


def risk_sentence(screening: Screening) -> str:
    """The chance of pre-diabetes or diabetes against the survey's average, in words that cannot contradict the
    level: near the average (where the raised level may already start), or where "lower" and "higher" would
    disagree with the level, the average is stated, not compared."""
    opening = f"Your estimated chance of having pre-diabetes or diabetes is **{percent(screening.risk)}**"
    survey = "for adults in the survey the model learnt from"
    words = compared_with_average(screening.ratio)
    contradicts = (screening.level is ScreeningLevel.LOWER) == (screening.ratio >= 1)
    if words == "about the same as" or contradicts:
        compared = f"{opening}; the average {survey} is {percent(screening.average)}."
    else:
        compared = f"{opening}, {words} the average of {percent(screening.average)} {survey}."
    return f"{compared} {DIAGNOSED if screening.care_access is None else DIAGNOSED_OUTSIDE_CARE}"


def headline(screening: Screening) -> str:
    """The one thing to do, by level; outside the care system a blood test is worth having whatever the level."""
    if screening.level is ScreeningLevel.HIGH:
        return "Please see a doctor soon for a blood test (HbA1c or fasting glucose)."
    if screening.level is ScreeningLevel.RAISED:
        return "A blood test is advised."
    if screening.care_access is not None:
        return "A blood test is worth having, because of your answers about seeing a doctor."
    if screening.guideline_test:
        return "A blood test is advised at your age and weight."
    return "No blood test is suggested by this screening."


def level_sentence(screening: Screening) -> str:
    """What the level means, with the level's own figures from the model's test split."""
    level, affected = screening.level, screening.affected_at_level
    if level is ScreeningLevel.HIGH:
        if affected is None:
            return ""
        return (
            f"Of the people in the survey whose estimate was {percent(screening.thresholds.high)} or more, "
            f"{in_ten(affected)} ({percent(affected)}) had pre-diabetes or diabetes."
        )
    if level is ScreeningLevel.RAISED:
        ask = (
            "A simple blood test (HbA1c or fasting glucose) shows whether you have pre-diabetes or diabetes: ask your "
            "doctor or a pharmacy about one."
        )
        if screening.care_access is not None:
            # The survey's figures at this level are everyone's; among people outside care few were diagnosed,
            # because few were tested, so no figure of theirs can be quoted here.
            return ask
        text = (
            f"Across everyone in the survey, from {percent(screening.thresholds.raised)} this screen finds at least "
            f"as many of the people with pre-diabetes or diabetes as the American Diabetes Association's risk test. "
            f"{ask}"
        )
    elif screening.care_access is not None:
        # No share of affected people here: among people outside care, few were diagnosed because few were tested.
        return (
            f"Your estimate alone is {_below(screening)} the level from which this screen would advise one; the "
            "reasons below are why a test is still worth having."
        )
    elif screening.guideline_test:
        return (
            "The US screening guideline advises a blood test for adults aged 35 to 70 who are overweight (BMI 25 or "
            f"more). This screen adds no reason of its own: your estimate is {_below(screening)} the level from "
            "which it would advise one."
        )
    else:
        text = (
            f"Your estimate is {_below(screening)} the level at which one is advised. Keep an eye on it at your "
            "regular check-ups, and see a doctor if you notice signs such as strong thirst, passing urine often or "
            "unusual tiredness."
        )
    if affected is not None:
        text += (
            f" Of the people in the survey whose result was '{level.value}', {in_ten(affected)} "
            f"({percent(affected)}) had pre-diabetes or diabetes."
        )
    return text


def message(screening: Screening) -> str:
    """The card's one message: what to do, the risk against the average, what the level means, and, for a person
    outside the care system, why a blood test is worth having and the estimate may be too low (the API's words)."""
    text = f"**{headline(screening)}** {risk_sentence(screening)} {level_sentence(screening)}".rstrip()
    if screening.care_access is not None:
        text += f"\n\n{screening.care_access.message}"
    return text


def _below(screening: Screening) -> str:
    """ "below 13%, " or, where the risk itself shows as 13% too, "just below" (never "13% is below 13%")."""
    raised = percent(screening.thresholds.raised)
    return "just below" if percent(screening.risk) == raised else f"below {raised},"


def prediabetes_sentence(screening: Screening) -> str:
    """The chance of pre-diabetes alone against its average, and what it cannot say."""
    chance = screening.prediabetes
    return (
        f"Your estimated chance of pre-diabetes alone is **{fine_percent(chance.risk)}**, "
        f"{compared_with_average(chance.ratio)} the average of {fine_percent(chance.average)}: the shares who had "
        f"been told by a doctor they have pre-diabetes{_IN_CARE if screening.care_access is not None else ''}. "
        "Pre-diabetes is often never diagnosed, so the true chance can be higher, and this estimate cannot rule it "
        "out: only a blood test can."
    )


#: Said after "told by a doctor" for a person outside care: their estimate is that of the same answers in care.
_IN_CARE = ", among people who gave your answers but were in care"


#: "Has a doctor ever told you ...?" answers that a person who was not checked may answer "No" only for that reason.
TOLD_BY_A_DOCTOR = frozenset({"HighChol", "HighBP"})


def factor_sentence(factor: Contribution, screening: Screening | None = None) -> str:
    """One factor in plain words: the question, the answer given, and which way it moved the estimated risk.

    A lowering share is said against the model's starting point (the survey's average answers): "BMI 27: this
    lowered your estimate" read as if being overweight protected, where it only means 27 is below the survey's
    average BMI. Every lowering line is said that way, rather than leaving out some: which answers count as "above
    normal" would be a medical judgement per question that the model does not make.
    """
    question = feature(factor.feature).question
    if factor.contribution > 0:
        effect = "this raised your estimate."
    else:
        effect = "this lowered your estimate, compared with the average answer in the survey."
    text = f"{question} You answered **{factor.value_label}**: {effect}"
    care = None if screening is None else screening.care_access
    if care is not None and care.not_checked and factor.feature in TOLD_BY_A_DOCTOR and factor.value == 0:
        text += " As you have not been checked recently, this answer may only mean it was never measured."
    return text


def tone(screening: Screening) -> str:
    """The card's colour, by level: `info` for lower (when nothing advises a test), `warning` for a test worth having
    or advised, `error` for high."""
    if screening.level is ScreeningLevel.HIGH:
        return "error"
    if screening.level is ScreeningLevel.RAISED or screening.care_access is not None or screening.guideline_test:
        return "warning"
    return "info"


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
        show = {"info": st.info, "warning": st.warning, "error": st.error}[tone(screening)]
        show(message(screening), icon=":material/bloodtype:")
        st.altair_chart(risk_chart(screening), width="stretch")
        st.markdown(prediabetes_sentence(screening))
        if result.explanation:
            st.markdown("**What moved your estimate most** (most important first)")
            st.markdown("\n".join(f"1. {factor_sentence(f, screening)}" for f in result.explanation))
        st.markdown(f":material/medical_information: {DISCLAIMER}")
        st.caption(f"Model version: {result.model_version}")
