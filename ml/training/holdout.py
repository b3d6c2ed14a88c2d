"""The permanent promotion holdout: rows that no model ever trains or tunes on, picked by the feature vector itself.

A row is in the holdout when the sha256 of its feature values (schema order, float64 little-endian, after a fixed label)
falls in the lowest `HOLDOUT_SHARE` of the hash range. BMI is hashed at the survey's precision (whole numbers):
a copy of a holdout row with BMI nudged by 1e-6 is another vector to the bytes but the same answer to a tree, so it
must land in the holdout with its original, not in training (review 2 leaked the whole holdout that way).
Nothing but the answers decides it: identical feature vectors
always land on the same side, in every data file and every version of it. So two models trained by this code, on
any data, have both never seen any holdout row of any file. Which rows and labels models are compared on is not
left to each file, though: a registered model's reference holdout (`ml.training.reference`) is pinned from one
file's holdout, and `ml.training.tracking` compares every candidate there.
Changing the label or the share defines another holdout (`HOLDOUT_DEFINITION` changes with them): models trained
under different definitions are never compared.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ml.schema import FEATURE_NAMES

#: Share of the hash range, hence of the distinct feature vectors (and, on average, of the rows) held out.
HOLDOUT_SHARE = 0.10
_LABEL = b"diabetes-status promotion holdout v1\x00"
#: What a run records; promotion compares only models whose definitions are equal.
HOLDOUT_DEFINITION = f"sha256(feature vector, BMI rounded to whole numbers) in the lowest {HOLDOUT_SHARE:.0%} (v2)"
_BMI = FEATURE_NAMES.index("BMI")


def in_holdout(features: np.ndarray) -> np.ndarray:
    """Boolean mask, one per row of (n, features) feature rows in schema order: True for the promotion holdout."""
    return hash_sample(features, _LABEL, HOLDOUT_SHARE)


def answers(features: np.ndarray) -> np.ndarray:
    """The rows as the hash sees them: float64 little-endian, -0.0 as 0.0, BMI at the survey's whole numbers."""
    rows = np.ascontiguousarray(features, dtype="<f8")
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-d array of feature rows, got shape {rows.shape}")
    rows = rows + 0.0  # -0.0 and 0.0 are the same answer; hash them alike
    rows[:, _BMI] = np.rint(rows[:, _BMI]) + 0.0
    return rows


def hash_sample(features: np.ndarray, label: bytes, share: float) -> np.ndarray:
    """True for the rows whose answers' sha256 (after `label`) falls in the lowest `share` of the hash range: equal
    answers always land on the same side."""
    threshold = int(share * 2**64)
    vectors, inverse = np.unique(answers(features), axis=0, return_inverse=True)
    chosen = np.fromiter(
        (int.from_bytes(hashlib.sha256(label + v.tobytes()).digest()[:8], "big") < threshold for v in vectors),
        dtype=bool,
        count=len(vectors),
    )
    mask: np.ndarray = chosen[inverse.reshape(-1)]
    return mask
