"""Does the model move the way a clinician expects? One step up of a risk factor, person by person.

For each feature a clinician expects to raise the risk of diabetes (`RISK_FACTORS`), every row that can take one
step up (a yes/no answer from no to yes, a code to the next, BMI by 1) is scored as it is and one step up. The share
of those rows where p(diabetes) then falls by more than `MATERIAL_DROP` is where the model contradicts the
expectation by a material amount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.schema import FEATURE_NAMES, feature

#: Answers that should never lower the risk of diabetes (GenHlth's codes run from excellent to poor).
RISK_FACTORS = ("HighBP", "HighChol", "GenHlth", "BMI", "DiffWalk", "HeartDiseaseorAttack", "Stroke")
#: A fall of p(diabetes) larger than this (one percentage point) counts as contradicting the expectation.
MATERIAL_DROP = 0.01


@dataclass(frozen=True)
class StepUpEffect:
    """What one step up of `feature` does to p(diabetes) over the rows that can take it."""

    feature: str
    rows: int
    lowered_share: float  # p(diabetes) falls by more than MATERIAL_DROP
    raised_share: float  # p(diabetes) rises by more than MATERIAL_DROP
    mean_change: float  # mean change of p(diabetes), as a probability


def step_up_effects(
    p_diabetes: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, features: tuple[str, ...] = RISK_FACTORS
) -> list[StepUpEffect]:
    """One `StepUpEffect` per feature; `p_diabetes` maps rows (n, features) in schema order to p(diabetes), (n,)."""
    effects = []
    for name in features:
        column = FEATURE_NAMES.index(name)
        can_step = rows[:, column] + 1 <= feature(name).maximum
        before = rows[can_step]
        after = before.copy()
        after[:, column] += 1
        change = p_diabetes(after) - p_diabetes(before)
        effects.append(
            StepUpEffect(
                feature=name,
                rows=int(can_step.sum()),
                lowered_share=float((change < -MATERIAL_DROP).mean()) if change.size else 0.0,
                raised_share=float((change > MATERIAL_DROP).mean()) if change.size else 0.0,
                mean_change=float(change.mean()) if change.size else 0.0,
            )
        )
    return effects
