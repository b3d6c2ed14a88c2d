"""The single source of truth for the BRFSS 2015 health indicators (the features) and the three classes.

Data validation, the API models, the Streamlit form, the docs tables and the model manifest all derive from
this module; no other module lists feature names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

SCHEMA_VERSION = "1"
TARGET = "Diabetes_012"
#: Target of the two binary Kaggle files, which are refused (pre-diabetes is folded into 0 there).
BINARY_TARGET = "Diabetes_binary"
REAL_DATA_FILE = "diabetes_012_health_indicators_BRFSS2015.csv"


class FeatureKind(StrEnum):
    """How a feature is measured; decides validation, the form widget and the docs."""

    BINARY = "binary"
    ORDINAL = "ordinal"
    DAYS = "days"
    CONTINUOUS = "continuous"


@dataclass(frozen=True)
class Feature:
    """One health indicator, as recorded in the BRFSS 2015 file."""

    name: str
    kind: FeatureKind
    minimum: int
    maximum: int
    description: str
    question: str
    default: int
    labels: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def integer(self) -> bool:
        """Whether only whole numbers are valid (every kind but continuous)."""
        return self.kind is not FeatureKind.CONTINUOUS

    @property
    def unit(self) -> str:
        """Unit of a value in the range: "days" for a count of days, "" otherwise (BMI has none)."""
        return "days" if self.kind is FeatureKind.DAYS else ""

    def code_texts(self) -> tuple[str, ...]:
        """Each named code as "1 = Excellent", in code order; empty for a feature without named codes."""
        return tuple(f"{code} = {label}" for code, label in self.labels.items())

    def allowed_values(self) -> str:
        """The one wording of what this feature accepts, e.g. "whole numbers from 1 to 5: 1 = Excellent, ...".

        Validation errors (data files and the API), the API schema, the UI's column help and the docs all quote
        it, so the rule is stated the same way everywhere.
        """
        text = f"{'whole numbers' if self.integer else 'numbers'} from {self.minimum} to {self.maximum}"
        if self.unit:
            text += f" ({self.unit})"
        if self.labels:
            text += ": " + ", ".join(self.code_texts())
        return text

    def label(self, value: float) -> str:
        """Human label of a value (the code's name, or the number itself)."""
        if self.labels and float(value).is_integer() and int(value) in self.labels:
            return self.labels[int(value)]
        return f"{value:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "description": self.description,
            "question": self.question,
            "default": self.default,
            "labels": {str(k): v for k, v in self.labels.items()},
        }


@dataclass(frozen=True)
class DiabetesClass:
    """One value of the target."""

    id: int
    name: str
    label: str
    description: str


def _codes(*names: str, start: int = 1) -> Mapping[int, str]:
    return MappingProxyType({start + i: name for i, name in enumerate(names)})


#: Codes of the yes/no questions (every binary feature but Sex).
NO_YES = _codes("No", "Yes", start=0)


def _binary(name: str, description: str, question: str, default: int = 0) -> Feature:
    return Feature(name, FeatureKind.BINARY, 0, 1, description, question, default, NO_YES)


AGE_BANDS = _codes(
    "18-24",
    "25-29",
    "30-34",
    "35-39",
    "40-44",
    "45-49",
    "50-54",
    "55-59",
    "60-64",
    "65-69",
    "70-74",
    "75-79",
    "80+",
)

#: The features, in the column order of the Kaggle file (after the target).
FEATURES: tuple[Feature, ...] = (
    _binary(
        "HighBP",
        "Ever told by a health professional that blood pressure is high.",
        "Has a doctor or other health professional ever told you that you have high blood pressure?",
    ),
    _binary(
        "HighChol",
        "Ever told by a health professional that blood cholesterol is high.",
        "Has a doctor or other health professional ever told you that your cholesterol is high?",
    ),
    _binary(
        "CholCheck",
        "Cholesterol checked within the past five years.",
        "Have you had your cholesterol checked in the past five years?",
        default=1,
    ),
    Feature(
        "BMI",
        FeatureKind.CONTINUOUS,
        12,
        98,
        "Body mass index (weight in kg divided by the square of height in m).",
        "What is your body mass index (BMI)?",
        27,
    ),
    _binary(
        "Smoker",
        "Smoked at least 100 cigarettes (5 packs) in one's entire life.",
        "Have you smoked at least 100 cigarettes (5 packs) in your entire life?",
    ),
    _binary("Stroke", "Ever told of having had a stroke.", "Have you ever been told you had a stroke?"),
    _binary(
        "HeartDiseaseorAttack",
        "Ever reported coronary heart disease or a heart attack (myocardial infarction).",
        "Have you ever had coronary heart disease or a heart attack?",
    ),
    _binary(
        "PhysActivity",
        "Physical activity or exercise in the past 30 days, other than for work.",
        "In the past 30 days, did you do any physical activity or exercise other than your regular job?",
        default=1,
    ),
    _binary("Fruits", "Eats fruit one or more times per day.", "Do you eat fruit at least once a day?", default=1),
    _binary(
        "Veggies",
        "Eats vegetables one or more times per day.",
        "Do you eat vegetables at least once a day?",
        default=1,
    ),
    _binary(
        "HvyAlcoholConsump",
        "Heavy drinker: more than 14 drinks a week (men) or more than 7 (women).",
        "Do you have more than 14 alcoholic drinks a week (men) or more than 7 (women)?",
    ),
    _binary(
        "AnyHealthcare",
        "Has any kind of health care coverage (insurance, prepaid plans, Medicare, ...).",
        "Do you have any kind of health care coverage?",
        default=1,
    ),
    _binary(
        "NoDocbcCost",
        "Needed to see a doctor in the past 12 months but could not because of the cost.",
        "In the past 12 months, was there a time you needed a doctor but could not go because of the cost?",
    ),
    Feature(
        "GenHlth",
        FeatureKind.ORDINAL,
        1,
        5,
        "Self-rated general health, from 1 (excellent) to 5 (poor).",
        "In general, how would you rate your health?",
        2,
        _codes("Excellent", "Very good", "Good", "Fair", "Poor"),
    ),
    Feature(
        "MentHlth",
        FeatureKind.DAYS,
        0,
        30,
        "Days of poor mental health (stress, depression, emotional problems) in the past 30 days.",
        "In the past 30 days, on how many days was your mental health not good?",
        0,
    ),
    Feature(
        "PhysHlth",
        FeatureKind.DAYS,
        0,
        30,
        "Days of physical illness or injury in the past 30 days.",
        "In the past 30 days, on how many days was your physical health not good?",
        0,
    ),
    _binary(
        "DiffWalk",
        "Serious difficulty walking or climbing stairs.",
        "Do you have serious difficulty walking or climbing stairs?",
    ),
    Feature(
        "Sex",
        FeatureKind.BINARY,
        0,
        1,
        "Sex: 0 female, 1 male.",
        "What is your sex?",
        0,
        _codes("Female", "Male", start=0),
    ),
    Feature(
        "Age",
        FeatureKind.ORDINAL,
        1,
        13,
        "Age in 13 five-year bands: 1 = 18-24 ... 13 = 80 or older.",
        "How old are you?",
        8,
        AGE_BANDS,
    ),
    Feature(
        "Education",
        FeatureKind.ORDINAL,
        1,
        6,
        "Highest grade or year of school completed, 1 (never attended) to 6 (college graduate).",
        "What is the highest level of school you have completed?",
        5,
        _codes(
            "Never attended school or only kindergarten",
            "Grades 1-8 (elementary)",
            "Grades 9-11 (some high school)",
            "Grade 12 or GED (high school graduate)",
            "College 1-3 years (some college or technical school)",
            "College 4 years or more (college graduate)",
        ),
    ),
    Feature(
        "Income",
        FeatureKind.ORDINAL,
        1,
        8,
        "Annual household income in 8 brackets, 1 (< $10,000) to 8 ($75,000 or more).",
        "What is your annual household income?",
        6,
        _codes(
            "Less than $10,000",
            "$10,000 to $14,999",
            "$15,000 to $19,999",
            "$20,000 to $24,999",
            "$25,000 to $34,999",
            "$35,000 to $49,999",
            "$50,000 to $74,999",
            "$75,000 or more",
        ),
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: Mapping[str, Feature] = MappingProxyType({f.name: f for f in FEATURES})
#: A record with every feature at its default (read-only; copy it with `dict(...)` or `{**DEFAULT_RECORD, ...}`).
DEFAULT_RECORD: Mapping[str, int] = MappingProxyType({f.name: f.default for f in FEATURES})
#: Column order of the Kaggle 3-class file.
COLUMNS: tuple[str, ...] = (TARGET, *FEATURE_NAMES)

CLASSES: tuple[DiabetesClass, ...] = (
    DiabetesClass(0, "healthy", "No diabetes", "Women who had diabetes only while pregnant count here too."),
    DiabetesClass(1, "prediabetic", "Pre-diabetes", "Pre-diabetes or borderline diabetes."),
    DiabetesClass(2, "diabetic", "Diabetes", "Diabetes."),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
N_CLASSES = len(CLASSES)

#: Subgroups every evaluation reports on, with how to band each feature's codes.
SUBGROUP_BANDS: Mapping[str, Mapping[str, tuple[int, ...]]] = MappingProxyType(
    {
        "Sex": MappingProxyType({"Female": (0,), "Male": (1,)}),
        "Age": MappingProxyType({"18-44": (1, 2, 3, 4, 5), "45-64": (6, 7, 8, 9), "65+": (10, 11, 12, 13)}),
        "Income": MappingProxyType({"< $25,000": (1, 2, 3, 4), "$25,000-$74,999": (5, 6, 7), "$75,000+": (8,)}),
    }
)


#: The answers about access to care, each with the answer that means "in the care system" (checked, covered, never
#: kept from a doctor by the cost). The label is a doctor's diagnosis, so people outside the care system are seldom
#: diagnosed: the screening estimate reads these answers as "in care" (`ml.inference.screening`).
CARE_ACCESS: Mapping[str, int] = MappingProxyType({"CholCheck": 1, "AnyHealthcare": 1, "NoDocbcCost": 0})


def feature(name: str) -> Feature:
    """Look a feature up by its column name, with an error that lists the valid names."""
    try:
        return FEATURES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; expected one of: {', '.join(FEATURE_NAMES)}") from None


def schema_dict() -> dict[str, Any]:
    """The schema as plain JSON data, written into every model manifest."""
    return {
        "version": SCHEMA_VERSION,
        "target": TARGET,
        "features": [f.to_dict() for f in FEATURES],
        "classes": [{"id": c.id, "name": c.name, "label": c.label} for c in CLASSES],
    }
