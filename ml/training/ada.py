"""The American Diabetes Association's type 2 diabetes risk test, scored from the survey's indicators.

The ADA test is the points score clinics screen with today (diabetes.org "Risk Test"): age band, sex, high blood
pressure, physical activity, weight category, family history and gestational diabetes; 5 points or more means high
risk. Five of its seven items are in the BRFSS file. Family history and gestational diabetes are not, so they score 0:
this score is a lower bound of the real test's, and its sensitivity at the cut-off is too.
"""

from __future__ import annotations

import numpy as np

from ml.schema import FEATURE_NAMES

#: The test's own cut-off: 5 points or more is "at increased risk for having type 2 diabetes".
HIGH_RISK_POINTS = 5
#: Items of the real test this file cannot answer; they score 0 here.
UNAVAILABLE_ITEMS = ("family history of diabetes", "gestational diabetes")

_AGE, _SEX, _HIGH_BP, _ACTIVE, _BMI = (
    FEATURE_NAMES.index(name) for name in ("Age", "Sex", "HighBP", "PhysActivity", "BMI")
)
#: Age points by survey band: under 40 (bands 1-4) 0, 40-49 (5-6) 1, 50-59 (7-8) 2, 60 or older (9-13) 3.
_AGE_POINTS = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 3])
#: The test's weight table reads as BMI bands: under 25 0, overweight (25-30) 1, obese (30-40) 2, 40 or more 3.
_BMI_EDGES = np.array([25.0, 30.0, 40.0])


def ada_risk_points(rows: np.ndarray) -> np.ndarray:
    """The score (0 to 9 here, of the test's 11) of each row of the features in schema order."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    age = _AGE_POINTS[rows[:, _AGE].astype(np.int64)]
    male = rows[:, _SEX].astype(np.int64)  # the test gives men 1 point
    high_bp = rows[:, _HIGH_BP].astype(np.int64)
    inactive = 1 - rows[:, _ACTIVE].astype(np.int64)
    weight = np.searchsorted(_BMI_EDGES, rows[:, _BMI], side="right")
    points: np.ndarray = age + male + high_bp + inactive + weight
    return points
