"""How one prediction is shown: status in plain words, the three chances, the top factors, the model version."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ml.contract import Contribution, PredictionResponse
from ml.schema import CLASSES, feature

DISCLAIMER = (
    "This is a screening aid, not a diagnosis. It estimates chances from survey answers only. Only a doctor, "
    "with a blood test (such as HbA1c or fasting glucose), can tell whether you have diabetes or pre-diabetes. "
    "Please talk to a health professional about your result."
)


def percent(probability: float) -> str:
    """A probability as a whole percentage a person can read ("<1%" rather than a misleading "0%")."""
    value = round(probability * 100)
    if value == 0 and probability > 0:
        return "<1%"
    if value == 100 and probability < 1:
        return ">99%"
    return f"{value}%"


def status_sentence(result: PredictionResponse) -> str:
    """The predicted class in words, with its description when that adds anything to the label."""
    predicted = CLASSES[result.prediction]
    sentence = f"Based on your answers, the model's screening result is **{predicted.label}**"
    description = predicted.description.rstrip(".")
    if description.lower() != predicted.label.lower():
        sentence += f" ({description[0].lower()}{description[1:]})"
    return sentence + "."


def factor_sentence(factor: Contribution, predicted_label: str) -> str:
    """One factor in plain words: the question, the answer given and which way it pushed."""
    question = feature(factor.feature).question
    direction = "points towards" if factor.contribution > 0 else "points away from"
    return f"{question} You answered **{factor.value_label}**: this {direction} *{predicted_label}*."


def render_prediction(result: PredictionResponse, *, stale: bool) -> None:
    """Draw the answer; `stale` when the form changed since this prediction was made."""
    with st.container(border=True, key="prediction_result"):
        st.subheader("Your result")
        if stale:
            st.info("You changed some answers since this result. Press **Predict** again to update it.")
        st.markdown(status_sentence(result))
        columns = st.columns(len(CLASSES))
        probabilities = result.probabilities.ordered()
        for column, cls, probability in zip(columns, CLASSES, probabilities, strict=True):
            column.metric(f"Chance of: {cls.label}", percent(probability))
        chart = pd.DataFrame(
            {
                "Status": [c.label for c in CLASSES],
                "Chance (%)": [round(p * 100, 1) for p in probabilities],
            }
        )
        st.bar_chart(chart, x="Status", y="Chance (%)", horizontal=True, sort=False, height=180)
        if result.explanation:
            predicted_label = CLASSES[result.prediction].label
            st.markdown("**What weighed most in this result** (most important first)")
            st.markdown("\n".join(f"1. {factor_sentence(f, predicted_label)}" for f in result.explanation))
        st.warning(DISCLAIMER, icon=":material/medical_information:")
        st.caption(f"Model version: {result.model_version}")
