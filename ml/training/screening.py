"""The screening rule: when a person's estimated risk of pre-diabetes or diabetes counts as raised, or high.

The risk is r = p(pre-diabetes) + p(diabetes), calibrated, so r itself reads as "about r of the people who answer
alike have pre-diabetes or diabetes". Both thresholds are chosen on the validation fold, never on the test rows:

- raised: the threshold at which the model finds as many of the people with pre-diabetes or diabetes as the ADA risk
  test does at its own cut-off (5 points), i.e. the model used at the sensitivity clinics accept today; above it a
  blood test is worth having, as the ADA test would say;
- high: the lowest threshold at which at least half of the people at or above it have pre-diabetes or diabetes.

The test rows then say how the raised level does on people the model never saw.
"""

from __future__ import annotations

import numpy as np

from ml.manifest import ScreeningPerformance, ScreeningRule
from ml.schema import CLASSES
from ml.training.ada import HIGH_RISK_POINTS, ada_risk_points

#: Share of flagged people who must have pre-diabetes or diabetes for the level to be "high".
HIGH_PRECISION = 0.5
_DIABETES = next(c.id for c in CLASSES if c.name == "diabetic")


def risk_of(proba: np.ndarray) -> np.ndarray:
    """p(pre-diabetes) + p(diabetes) of each row: everything but the first class."""
    risk: np.ndarray = 1.0 - proba[:, 0]
    return risk


def raised_threshold(rows: np.ndarray, y: np.ndarray, risk: np.ndarray) -> float:
    """The risk threshold with the ADA risk test's sensitivity at its cut-off, on these rows."""
    positive = y > 0
    sensitivity = float((ada_risk_points(rows[positive]) >= HIGH_RISK_POINTS).mean())
    # The largest threshold that still flags that share of the positive rows.
    return float(np.quantile(risk[positive], 1.0 - sensitivity, method="lower"))


def high_threshold(y: np.ndarray, risk: np.ndarray, floor: float) -> float:
    """The lowest threshold (not below `floor`) where at least HIGH_PRECISION of the flagged rows are positive."""
    order = np.argsort(-risk, kind="stable")
    hits = np.cumsum(y[order] > 0)
    precision = hits / np.arange(1, len(order) + 1)
    reached = np.flatnonzero(precision >= HIGH_PRECISION)
    if reached.size == 0:  # never that precise: only a certain-looking risk is high
        return 1.0
    return max(float(risk[order][reached[-1]]), floor)


def performance(y: np.ndarray, risk: np.ndarray, threshold: float) -> ScreeningPerformance:
    flagged = risk >= threshold
    positive = y > 0
    return ScreeningPerformance(
        rows=len(y),
        flagged=float(flagged.mean()),
        precision=float(positive[flagged].mean()) if flagged.any() else 0.0,
        sensitivity=float(flagged[positive].mean()) if positive.any() else 0.0,
        sensitivity_diabetes=float(flagged[y == _DIABETES].mean()) if (y == _DIABETES).any() else 0.0,
    )


def choose_screening(
    validation: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    average: float,
) -> ScreeningRule:
    """Thresholds from the validation fold (rows, labels, probabilities); the raised level's test performance."""
    x_val, y_val, proba_val = validation
    _, y_test, proba_test = test
    risk_val = risk_of(proba_val)
    raised = raised_threshold(x_val, y_val, risk_val)
    return ScreeningRule(
        average=average,
        raised=raised,
        high=high_threshold(y_val, risk_val, floor=raised),
        test=performance(y_test, risk_of(proba_test), raised),
    )
