"""The single-person form, generated from `ml.schema.FEATURES`: one widget per feature, chosen by its kind."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from frontend.checks import Notice, bmi_imperial, bmi_metric, check_calculated_bmi, review
from ml.schema import FEATURES, NO_YES, Feature, FeatureKind, feature

#: Ordinal features with at most this many named levels are shown as a row of buttons, more as a drop-down.
RADIO_MAX_OPTIONS = 5
_BMI = feature("BMI")

Answers = dict[str, float]

#: The form's help on who the screening is for; the result card leaves it out (it is about the questions).
WHO_IT_IS_FOR = (
    "For adults aged 18 or over. Diabetes only during pregnancy (gestational diabetes) is not covered: the survey "
    "the model learnt from counted women who had diabetes only while pregnant as having no diabetes."
)


def answer_key(name: str) -> str:
    """Session-state key of a feature's widget (also used by tests and the browser to find it)."""
    return f"answer_{name}"


def is_yes_no(f: Feature) -> bool:
    return f.kind is FeatureKind.BINARY and f.labels == NO_YES


def reset_answers() -> None:
    """Put every answer back to its default from the schema."""
    for f in FEATURES:
        st.session_state[answer_key(f.name)] = _default(f)


def render_form() -> Answers:
    """Draw the questions, with a notice under any field whose answer looks wrong; return the answers."""
    for f in FEATURES:
        st.session_state.setdefault(answer_key(f.name), _default(f))
    slots: dict[str, Callable[[Notice], None]] = {}

    st.subheader("About you")
    st.caption(WHO_IT_IS_FOR)
    about = [f for f in FEATURES if not is_yes_no(f)]
    columns = st.columns(2, gap="large")
    for i, f in enumerate(about):
        with columns[i % 2]:
            _widget(f)
            slots[f.name] = _notice_slot()
            if f.name == _BMI.name:
                _bmi_calculator()

    st.subheader("Your health and habits")
    yes_no = [f for f in FEATURES if is_yes_no(f)]
    columns = st.columns(2, gap="large")
    for i, f in enumerate(yes_no):
        with columns[i % 2]:
            _widget(f)
            slots[f.name] = _notice_slot()

    answers = {f.name: _value(f) for f in FEATURES}
    for notice in review(answers):
        slots[notice.field](notice)
    return answers


def _default(f: Feature) -> float | int:
    return float(f.default) if f.kind is FeatureKind.CONTINUOUS else f.default


def _value(f: Feature) -> float:
    return float(st.session_state[answer_key(f.name)])


def _widget(f: Feature) -> None:
    key = answer_key(f.name)
    if f.kind is FeatureKind.BINARY or (f.kind is FeatureKind.ORDINAL and len(f.labels) <= RADIO_MAX_OPTIONS):
        st.radio(f.question, list(f.labels), format_func=f.label, horizontal=True, key=key, help=f.description)
    elif f.kind is FeatureKind.ORDINAL:
        st.selectbox(f.question, list(f.labels), format_func=f.label, key=key, help=f.description)
    elif f.kind is FeatureKind.DAYS:
        st.slider(f.question, f.minimum, f.maximum, step=1, key=key, help=f.description)
    else:
        st.number_input(
            f.question,
            min_value=float(f.minimum),
            max_value=float(f.maximum),
            step=0.5,
            format="%.1f",
            key=key,
            help=f"{f.description} Between {f.minimum} and {f.maximum}.",
        )


def _notice_slot() -> Callable[[Notice], None]:
    """An empty spot right under a field, filled once all answers are known."""
    slot = st.empty()

    def show(notice: Notice) -> None:
        slot.warning(notice.message)

    return show


def _use_bmi(value: float) -> None:
    st.session_state[answer_key(_BMI.name)] = round(value, 1)


def _bmi_calculator() -> None:
    with st.expander("Don't know your BMI? Work it out from your height and weight"):
        units = st.radio("Units", ("Metric (cm, kg)", "Imperial (ft, in, lb)"), horizontal=True, key="bmi_units")
        if units.startswith("Metric"):
            left, right = st.columns(2)
            height = left.number_input("Height (cm)", 100.0, 250.0, 170.0, step=1.0, key="bmi_height_cm")
            weight = right.number_input("Weight (kg)", 20.0, 350.0, 75.0, step=0.5, key="bmi_weight_kg")
            bmi = bmi_metric(height, weight)
        else:
            feet_col, inches_col, pounds_col = st.columns(3)
            feet = feet_col.number_input("Height (ft)", 3, 8, 5, step=1, key="bmi_height_ft")
            inches = inches_col.number_input("and (in)", 0, 11, 7, step=1, key="bmi_height_in")
            pounds = pounds_col.number_input("Weight (lb)", 45.0, 770.0, 165.0, step=1.0, key="bmi_weight_lb")
            bmi = bmi_imperial(feet, inches, pounds)
        problem = check_calculated_bmi(bmi)
        if problem:
            st.error(problem)
        st.button(
            f"Use BMI {bmi:.1f}",
            key="bmi_use",
            disabled=problem is not None,
            on_click=_use_bmi,
            args=(bmi,),
        )
