"""The rows the screening risk is computed on: every answer about access to care read as "in care".

The survey's label is a doctor's diagnosis ("Has a doctor ever told you..."), so the model learnt that people who
have not been checked, have no coverage or could not afford a doctor are seldom diagnosed, and it would tell exactly
those people that they are fine. The screening risk is therefore the model's risk for the same answers with each
access answer (`ml.schema.CARE_ACCESS`) set to its "in care" value: no access answer can lower it. The class and its
probabilities stay the model's for the answers as given. People not checked in five years also get their own, lower
raised threshold (`ml.manifest.ScreeningRule.raised_not_checked`), so an access answer can only raise the level.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ml.manifest import ScreeningCutoffs, ScreeningLevel
from ml.schema import CARE_ACCESS, FEATURE_NAMES

_IN_CARE = tuple((FEATURE_NAMES.index(name), float(value)) for name, value in CARE_ACCESS.items())
#: The same as arrays, so rows are checked and rewritten in one numpy call each.
_IN_CARE_COLUMNS = np.array([column for column, _ in _IN_CARE])
_IN_CARE_VALUES = np.array([value for _, value in _IN_CARE])
_CHOL_CHECK = FEATURE_NAMES.index("CholCheck")


def in_care(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows (n, features) with every access answer set to "in care", and which rows that changed, shape (n,).

    When no row changes, the first result is `rows` itself (no copy).
    """
    changed: np.ndarray = (rows[:, _IN_CARE_COLUMNS] != _IN_CARE_VALUES).any(axis=1)
    if not changed.any():
        return rows, changed
    screened = rows.copy()
    screened[:, _IN_CARE_COLUMNS] = _IN_CARE_VALUES
    return screened, changed


def with_in_care_copy(row: np.ndarray) -> np.ndarray:
    """One row (1, features) as `in_care` sees it, for the service's hot path: the row itself when every access
    answer is "in care", else the row and its in-care copy, shape (2, features): 2.6 us where `in_care`'s numpy
    reductions and the concatenation after them cost 10 on one row. A value `in_care` does not read as "in care"
    (NaN included) is not read so here either (`test_one_row_s_in_care_copy_agrees_with_in_care`)."""
    if row.ndim != 2 or len(row) != 1:
        raise ValueError(f"expected one row of shape (1, features), got shape {row.shape}")
    values = row[0]
    if all(values[column] == value for column, value in _IN_CARE):
        return row
    pair = np.repeat(row, 2, axis=0)
    pair[1, _IN_CARE_COLUMNS] = _IN_CARE_VALUES
    return pair


def in_care_probabilities(
    rows: np.ndarray, probabilities: np.ndarray, score: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The calibrated probabilities of `rows` with the access answers read as "in care": `probabilities` (of the rows
    as given) where nothing changes, `score` (rows -> calibrated probabilities) of the changed rows elsewhere; the
    same array when no row changes."""
    screened, changed = in_care(rows)
    if not changed.any():
        return probabilities
    result = probabilities.copy()
    result[changed] = score(screened[changed])
    return result


def risk_of(proba: np.ndarray) -> np.ndarray:
    """The screening risk p(pre-diabetes) + p(diabetes) of each row of calibrated probabilities (n, 3)."""
    risk: np.ndarray = 1.0 - proba[:, 0]
    return risk


def not_checked(rows: np.ndarray) -> np.ndarray:
    """Whose cholesterol was not checked in the past five years, shape (n,): they get the lower raised threshold."""
    result: np.ndarray = rows[:, _CHOL_CHECK] != CARE_ACCESS["CholCheck"]
    return result


def levels(cutoffs: ScreeningCutoffs, risk: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`ScreeningCutoffs.level` of every row at once, as level names (object array, shape (n,)): `risk` (n,) of the
    rows (answers as given, which say who was not checked)."""
    raised = np.where(not_checked(rows), cutoffs.raised_for(True), cutoffs.raised_for(False))
    names = [ScreeningLevel.HIGH.value, ScreeningLevel.RAISED.value]
    chosen: np.ndarray = np.select([risk >= cutoffs.high, risk >= raised], names, ScreeningLevel.LOWER.value)
    return chosen.astype(object)


def access_columns() -> tuple[int, ...]:
    """Schema positions of the access answers (their explanation shares are left out: they do not move the risk)."""
    return tuple(column for column, _ in _IN_CARE)
