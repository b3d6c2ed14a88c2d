"""Checks on the form's answers that one widget alone cannot express, and the BMI calculator's arithmetic.

Each widget already limits its own value to the range `ml.schema` allows; these checks look at combinations
and at numbers typed into the BMI calculator, and say in plain words what looks wrong and where.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ml.schema import feature

_BMI = feature("BMI")
_GEN_HLTH = feature("GenHlth")
_PHYS_HLTH = feature("PhysHlth")
_HIGH_CHOL = feature("HighChol")
_CHOL_CHECK = feature("CholCheck")

#: BMI values that are valid but rare enough to ask the user to check them.
UNUSUAL_BMI = (15.0, 60.0)
#: Days of poor physical health that sit oddly with "excellent" general health.
MANY_DAYS = 15

INCH_CM = 2.54
POUND_KG = 0.45359237


@dataclass(frozen=True)
class Notice:
    """Something to check, shown next to one field; the user may still predict."""

    field: str
    message: str


def bmi_metric(height_cm: float, weight_kg: float) -> float:
    """Body mass index from centimetres and kilograms."""
    if height_cm <= 0 or weight_kg <= 0:
        raise ValueError("height and weight must be positive")
    metres = height_cm / 100
    return weight_kg / (metres * metres)


def bmi_imperial(feet: float, inches: float, pounds: float) -> float:
    """Body mass index from feet, inches and pounds."""
    return bmi_metric((feet * 12 + inches) * INCH_CM, pounds * POUND_KG)


def check_calculated_bmi(bmi: float) -> str | None:
    """Why a BMI worked out from height and weight cannot be used, or None when it can."""
    if _BMI.minimum <= bmi <= _BMI.maximum:
        return None
    return (
        f"These numbers give a BMI of {bmi:.1f}, outside the range the model knows "
        f"({_BMI.minimum} to {_BMI.maximum}). Check the height, the weight and the units."
    )


def review(answers: Mapping[str, float]) -> list[Notice]:
    """Notices about answers that contradict each other or look mistyped."""
    notices: list[Notice] = []
    bmi = answers[_BMI.name]
    if not UNUSUAL_BMI[0] <= bmi <= UNUSUAL_BMI[1]:
        notices.append(
            Notice(
                _BMI.name,
                f"A BMI of {bmi:g} is very unusual. Please check it, or work it out from height and weight below.",
            )
        )
    days = int(answers[_PHYS_HLTH.name])
    if answers[_GEN_HLTH.name] == _GEN_HLTH.minimum and days >= MANY_DAYS:
        notices.append(
            Notice(
                _PHYS_HLTH.name,
                f"You rated your health as {_GEN_HLTH.label(_GEN_HLTH.minimum).lower()} but had {days} days of poor "
                "physical health this month. Please check both answers.",
            )
        )
    if answers[_HIGH_CHOL.name] == 1 and answers[_CHOL_CHECK.name] == 0:
        notices.append(
            Notice(
                _CHOL_CHECK.name,
                "You said your cholesterol is high but was not checked in the past five years. That is fine if it "
                "was found longer ago; otherwise please check this answer.",
            )
        )
    return notices
