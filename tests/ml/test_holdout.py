"""The promotion holdout: fixed by the feature vector alone, the same in every file, never part of any fold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.training.data import features_matrix
from ml.training.holdout import HOLDOUT_SHARE, in_holdout
from ml.training.pipeline import TrainingConfig, split_folds
from ml.training.synthetic_data import make_synthetic


def _vectors(rows: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.ascontiguousarray(rows, dtype="<f8")}


def test_holdout_is_a_fixed_share_of_feature_vectors_whatever_the_file() -> None:
    first, second = make_synthetic(6_000, seed=1), make_synthetic(6_000, seed=2)
    x_first, x_second = features_matrix(first), features_matrix(second)
    held = in_holdout(x_first)
    assert abs(held.mean() - HOLDOUT_SHARE) < 0.02
    # The same answers land on the same side in another file, in another order, among other rows.
    mixed = np.concatenate([x_second, x_first[::-1]])
    np.testing.assert_array_equal(in_holdout(mixed)[len(x_second) :], held[::-1])
    # Identical feature vectors never straddle the boundary.
    frame = pd.DataFrame(x_first).assign(held=held)
    assert frame.groupby(list(range(x_first.shape[1])))["held"].nunique().max() == 1


def test_no_fold_holds_a_holdout_vector_and_every_row_is_somewhere() -> None:
    frame = make_synthetic(6_000, seed=3)
    folds = split_folds(frame, TrainingConfig())
    held = _vectors(folds.x_holdout)
    assert held
    for rows in (folds.x_fit, folds.x_val, folds.x_test):
        assert not held & _vectors(rows)
    assert sum(len(y) for y in (folds.y_fit, folds.y_val, folds.y_test, folds.y_holdout)) == len(frame)
    np.testing.assert_array_equal(folds.x_test, features_matrix(folds.test_frame))
