"""The reference holdout's digest: the same rows and labels give the same digest, however the file holds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.schema import FEATURE_NAMES, TARGET
from ml.training.data import features_matrix, read_data_file
from ml.training.holdout import in_holdout
from ml.training.reference import holdout_digest
from ml.training.synthetic_data import make_synthetic


def test_the_digest_follows_rows_and_labels_not_their_order_or_spelling(tmp_path: Path) -> None:
    frame = make_synthetic(3_000, seed=4)
    held = frame[in_holdout(features_matrix(frame))]
    digest = holdout_digest(features_matrix(held), held[TARGET].to_numpy())
    shuffled = held.sample(frac=1.0, random_state=1)
    shuffled.astype(float).to_csv(tmp_path / "floats.csv.gz", index=False)  # 1.0 instead of 1, gzip
    again = read_data_file(tmp_path / "floats.csv.gz")
    assert holdout_digest(features_matrix(again), again[TARGET].to_numpy()) == digest
    labels = held[TARGET].to_numpy().copy()
    labels[0] = (labels[0] + 1) % 3
    assert holdout_digest(features_matrix(held), labels) != digest  # one label
    assert holdout_digest(features_matrix(held)[1:], held[TARGET].to_numpy()[1:]) != digest  # one row fewer
    assert holdout_digest(np.empty((0, len(FEATURE_NAMES))), np.empty(0)) != digest
