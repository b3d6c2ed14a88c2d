"""Near-copies of holdout rows in the training rows: the holdout's labels must not reach training through them.

A copy of a holdout row with one answer changed (a flipped `AnyHealthcare`, BMI nudged past the rounding the
holdout hashes at) is another feature vector, so it lands on the training side with the holdout row's label, and a
tree barely tells the two apart: review 2 trained on every holdout row that way and "won" by +0.14 weighted F1.
Refusing every training row within one changed answer of a holdout row is not an option: on the real file that is
55,850 of its 228,213 training rows (24.5%, measured with BMI rounded), honest neighbours in a dense answer space.

So the check is statistical and uses the holdout's own definition: the holdout is a hash sample of the answers,
so an honest file's holdout rows have a same-label near-copy among the training rows exactly as often as a second
hash sample of the training rows (the "control", of the holdout's size) has among the same remaining rows. A file
that carries near-copies of holdout rows raises the first rate only. The file is refused when the holdout's rate
exceeds the control's by more than `MAX_Z` standard errors (two-proportion z). On the real file the honest z was
between -0.4 and +1.8 over 8 control samples (43.5% vs 42.7-43.7%); near-copies of 4% of the holdout rows raise
it by about 5. Not counted: copies with two or more answers changed (the check looks one answer away), an attacker
who also pads the control (every training row) with near-copies, and a leak of under ~4% of the holdout; the
second dilutes training, and what any of them can gain is bounded by the plausibility limit on a promotion's gain
(`ml.training.comparison.MAX_PLAUSIBLE_GAIN`), which bounds one promotion, not a chain of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.schema import FEATURE_NAMES
from ml.training.data import DataValidationError
from ml.training.holdout import answers, hash_sample

#: Standard errors by which the holdout's near-copy rate may exceed the control's before the file is refused.
MAX_Z = 5.0
#: Fewer rows on either side and the rates say nothing: the check is not made.
MIN_ROWS = 200
_CONTROL_LABEL = b"diabetes-status near-copy control v1\x00"
_SHOWN = 10


class NearCopyError(DataValidationError):
    """The training rows hold near-copies of holdout rows beyond what an honest file shows; the message names them."""


@dataclass(frozen=True)
class NearCopyCheck:
    holdout_rate: float
    control_rate: float
    z: float


def check_near_copies(
    x_holdout: np.ndarray,
    y_holdout: np.ndarray,
    x_rest: np.ndarray,
    y_rest: np.ndarray,
    *,
    file: str = "the file",
    holdout_rows: np.ndarray | None = None,
    rest_rows: np.ndarray | None = None,
) -> NearCopyCheck | None:
    """Refuse (`NearCopyError`) training rows that copy holdout rows, answers and label, but for one answer.

    `holdout_rows` and `rest_rows` are the rows' 1-based numbers in the file, for the message. None when a side
    has fewer than `MIN_ROWS` rows."""
    control = _control(x_rest)
    if min(len(y_holdout), int(control.sum())) < MIN_ROWS:
        return None
    # Both samples against the same remaining rows in one pass: the remaining rows (most of the file) are hashed once.
    found = _has_near_copy(
        np.concatenate([x_holdout, x_rest[control]]),
        np.concatenate([y_holdout, y_rest[control]]),
        x_rest[~control],
        y_rest[~control],
    )
    held, controlled = found[: len(y_holdout)], found[len(y_holdout) :]
    n1, n2 = len(held), len(controlled)
    p1, p2 = held.mean(), controlled.mean()
    pooled = (held.sum() + controlled.sum()) / (n1 + n2)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = float((p1 - p2) / spread) if spread > 0 else 0.0
    check = NearCopyCheck(float(p1), float(p2), z)
    if z > MAX_Z:
        raise NearCopyError(_message(check, x_holdout, y_holdout, x_rest, y_rest, file, holdout_rows, rest_rows))
    return check


def _keys(x: np.ndarray, y: np.ndarray, drop: int | None) -> np.ndarray:
    """One 64-bit hash per row of its label and its answers (BMI rounded), without column `drop`."""
    rows = answers(x)
    if drop is not None:
        rows = np.delete(rows, drop, axis=1)
    frame = pd.DataFrame(rows)
    frame["label"] = np.asarray(y, dtype=np.float64)
    keys: np.ndarray = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return keys


def _has_near_copy(x: np.ndarray, y: np.ndarray, x_pool: np.ndarray, y_pool: np.ndarray) -> np.ndarray:
    """Per row of `x`: is there a row of the pool with its label and all its answers but at most one?"""
    found = np.zeros(len(y), dtype=bool)
    for drop in (None, *range(x.shape[1])):
        found |= np.isin(_keys(x, y, drop), _keys(x_pool, y_pool, drop))
    return found


def _control(x_rest: np.ndarray) -> np.ndarray:
    """A hash sample of the training rows' answers as large as the holdout (1/9 of the other 90%)."""
    return hash_sample(x_rest, _CONTROL_LABEL, 1 / 9)


def _message(
    check: NearCopyCheck,
    x_holdout: np.ndarray,
    y_holdout: np.ndarray,
    x_rest: np.ndarray,
    y_rest: np.ndarray,
    file: str,
    holdout_rows: np.ndarray | None,
    rest_rows: np.ndarray | None,
) -> str:
    pairs: list[str] = []
    drops: list[int | None] = [None, *range(x_holdout.shape[1])]
    rest_keys = {drop: _keys(x_rest, y_rest, drop) for drop in drops}
    held_keys = {drop: _keys(x_holdout, y_holdout, drop) for drop in drops}
    # The answer whose change makes the most copies first: that is where the copies are, not the honest neighbours.
    drops.sort(key=lambda drop: -int(np.isin(held_keys[drop], rest_keys[drop]).sum()))
    for drop in drops:
        first_in_rest = dict(zip(rest_keys[drop].tolist(), range(len(y_rest)), strict=False))
        for h, key in enumerate(held_keys[drop].tolist()):
            r = first_in_rest.get(key)
            if r is not None and len(pairs) < _SHOWN:
                what = "BMI within rounding" if drop is None else f"{FEATURE_NAMES[drop]} differs"
                row = int(rest_rows[r]) if rest_rows is not None else r + 1
                of = int(holdout_rows[h]) if holdout_rows is not None else h + 1
                pairs.append(f"row {row:,} copies holdout row {of:,} ({what})")
        if len(pairs) >= _SHOWN:
            break
    return (
        f"{file}: its training rows hold near-copies of promotion-holdout rows (the same answers and label but for "
        f"one answer) far more often than an honest file does: {check.holdout_rate:.1%} of the holdout rows have "
        f"one, against {check.control_rate:.1%} of a control sample of the training rows (z = {check.z:.1f}, the "
        f"limit is {MAX_Z:g}). A model trained on them would be judged on rows it has seen. For example: "
        f"{'; '.join(pairs)}. How to fix: remove the copied rows (or train on the survey file as published)."
    )
