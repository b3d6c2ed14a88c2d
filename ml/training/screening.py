"""The screening rule: when a person's screening risk counts as raised, or high.

The risk is r = p(pre-diabetes) + p(diabetes), calibrated, of the answers with every access-to-care answer read as
"in care" (`ml.inference.screening`), so r itself reads as "about r of the people who answer alike have
pre-diabetes or diabetes". Every threshold is chosen on the validation fold, never on the test rows:

- raised: the highest threshold at which the model finds at least as many of the people with pre-diabetes or
  diabetes as the ADA risk test does at its own cut-off (5 points), and at least as many of the people with
  pre-diabetes alone (the combined figure is driven by diabetes, and would hide a shortfall on pre-diabetes);
- raised for people not checked in five years: at most raised, and low enough that they are flagged at least as
  often as the ADA test flags them. Their labels say little (a diagnosis needs a doctor), the ADA test needs none;
- high: the lowest threshold at which at least half of the people at or above it have pre-diabetes or diabetes.

Each "at least as many" is aimed `SAFETY_MARGIN` standard errors above the ADA test's share on the validation fold:
matched exactly, the test rows would fall short about half of the time. The test rows then say how the levels do on
people the model never saw, beside the ADA test on the same people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.inference.screening import levels, not_checked, risk_of
from ml.manifest import (
    AccessHandling,
    FlaggedShare,
    LevelOutcome,
    ScreeningCutoffs,
    ScreeningLevel,
    ScreeningPerformance,
    ScreeningRule,
)
from ml.schema import CLASSES
from ml.training.ada import HIGH_RISK_POINTS, ada_risk_points
from ml.training.ada_comparison import screening_comparison

#: Share of flagged people who must have pre-diabetes or diabetes for the level to be "high".
HIGH_PRECISION = 0.5
#: How many binomial standard errors (of the ADA test's share on the validation fold) each "at least as many as the
#: ADA test" aims above it.
SAFETY_MARGIN = 2.0
_PREDIABETES = next(c.id for c in CLASSES if c.name == "prediabetic")
_DIABETES = next(c.id for c in CLASSES if c.name == "diabetic")


@dataclass(frozen=True)
class Scored:
    """One fold: its feature rows (answers as given), true classes, and calibrated probabilities of the answers as
    given and with the access answers read as "in care"."""

    rows: np.ndarray
    y: np.ndarray
    proba: np.ndarray
    proba_in_care: np.ndarray


def ada_flags(rows: np.ndarray) -> np.ndarray:
    """Whom the ADA risk test flags: 5 points or more."""
    flagged: np.ndarray = ada_risk_points(rows) >= HIGH_RISK_POINTS
    return flagged


def reaching(score: np.ndarray, share: float) -> float:
    """The highest threshold at which at least `share` of `score` is at or above it."""
    return float(np.quantile(score, 1.0 - share, method="lower"))


def with_margin(share: float, n: int) -> float:
    """`share` plus `SAFETY_MARGIN` binomial standard errors of a share measured on `n` people, at most 1."""
    return min(1.0, share + SAFETY_MARGIN * float(np.sqrt(share * (1.0 - share) / n)))


def at_least_ada(score: np.ndarray, ada: np.ndarray) -> float:
    """The highest threshold on `score` that flags at least as many of these people as the ADA test, with margin."""
    return reaching(score, with_margin(float(ada.mean()), len(ada)))


def high_threshold(y: np.ndarray, risk: np.ndarray, floor: float) -> float:
    """The lowest threshold (not below `floor`) where at least HIGH_PRECISION of the flagged rows are positive."""
    order = np.argsort(-risk, kind="stable")
    hits = np.cumsum(y[order] > 0)
    precision = hits / np.arange(1, len(order) + 1)
    reached = np.flatnonzero(precision >= HIGH_PRECISION)
    if reached.size == 0:  # never that precise: only a certain-looking risk is high
        return 1.0
    return max(float(risk[order][reached[-1]]), floor)


def choose_cutoffs(validation: Scored, average: float, training_labels: np.ndarray) -> ScreeningCutoffs:
    """The thresholds, from the validation fold; the pre-diabetes average from every training row's label."""
    risk = risk_of(validation.proba_in_care)
    ada, y = ada_flags(validation.rows), validation.y
    raised = min(
        at_least_ada(risk[y > 0], ada[y > 0]),
        at_least_ada(risk[y == _PREDIABETES], ada[y == _PREDIABETES]),
    )
    unchecked = not_checked(validation.rows)
    raised_not_checked = min(raised, at_least_ada(risk[unchecked], ada[unchecked])) if unchecked.any() else raised
    return ScreeningCutoffs(
        average=average,
        prediabetes_average=float((training_labels == _PREDIABETES).mean()),
        raised=raised,
        raised_not_checked=raised_not_checked,
        high=high_threshold(y, risk, floor=raised),
    )


def _share(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else 0.0


def performance(y: np.ndarray, flagged: np.ndarray, ada: np.ndarray) -> ScreeningPerformance:
    """The raised level (raised or high) on these rows, beside the ADA test's flags on the same rows."""
    positive = y > 0
    return ScreeningPerformance(
        rows=len(y),
        flagged=_share(flagged),
        precision=_share(positive[flagged]),
        sensitivity=_share(flagged[positive]),
        sensitivity_diabetes=_share(flagged[y == _DIABETES]),
        sensitivity_prediabetes=_share(flagged[y == _PREDIABETES]),
        specificity=_share(~flagged[~positive]),
        ada_flagged=_share(ada),
        ada_sensitivity=_share(ada[positive]),
        ada_sensitivity_prediabetes=_share(ada[y == _PREDIABETES]),
        ada_specificity=_share(~ada[~positive]),
    )


def access_handling(test: Scored) -> AccessHandling:
    """What reading the access answers as "in care" costs the screening risk on the test rows."""
    positive, points = test.y > 0, ada_risk_points(test.rows)
    as_given = screening_comparison(positive, risk_of(test.proba), points)
    in_care = screening_comparison(positive, risk_of(test.proba_in_care), points)
    return AccessHandling(
        roc_auc_as_given=as_given.model_roc_auc,
        roc_auc_in_care=in_care.model_roc_auc,
        specificity_at_ada_sensitivity_as_given=as_given.model_specificity,
        specificity_at_ada_sensitivity_in_care=in_care.model_specificity,
    )


def raised_flags(cutoffs: ScreeningCutoffs, scored: Scored) -> tuple[np.ndarray, np.ndarray]:
    """Whom the raised level (raised or high) flags among these rows, and whom the ADA test flags."""
    flagged: np.ndarray = levels(cutoffs, risk_of(scored.proba_in_care), scored.rows) != ScreeningLevel.LOWER
    return flagged, ada_flags(scored.rows)


def choose_screening(validation: Scored, test: Scored, average: float, training_labels: np.ndarray) -> ScreeningRule:
    """Thresholds from the validation fold; how the levels did on the test split, beside the ADA test."""
    cutoffs = choose_cutoffs(validation, average, training_labels)
    given = levels(cutoffs, risk_of(test.proba_in_care), test.rows)
    flagged, ada, unchecked = given != ScreeningLevel.LOWER, ada_flags(test.rows), not_checked(test.rows)
    positive = test.y > 0
    return ScreeningRule(
        **cutoffs.model_dump(),
        access=access_handling(test),
        test=performance(test.y, flagged, ada),
        test_not_checked=FlaggedShare(
            rows=int(unchecked.sum()), flagged=_share(flagged[unchecked]), ada_flagged=_share(ada[unchecked])
        ),
        test_levels={
            level: LevelOutcome(
                people=_share(given == level),
                affected=_share(positive[given == level]) if (given == level).any() else None,
            )
            for level in ScreeningLevel
        },
    )
