"""Data files for the promotion tests, made from the project's synthetic data: the attacks of issue 20 and a model
that learnt nothing. Nothing here is real survey data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ml.inference.digest import file_sha256
from ml.schema import TARGET
from ml.training.data import features_matrix, read_data_file, synthetic_sidecar
from ml.training.holdout import in_holdout


def write_frame(frame: pd.DataFrame, path: Path, *, synthetic: bool) -> Path:
    """Write `frame` as a data file; with `synthetic`, with the sidecar `ml.synthetic` writes (hash included)."""
    frame.to_csv(path, index=False)
    if synthetic:
        meta = {"synthetic": True, "generator": "ml.synthetic", "sha256": file_sha256(path)}
        synthetic_sidecar(path).write_text(json.dumps(meta))
    return path


def without_signal(source: Path, path: Path, *, synthetic: bool, seed: int = 0) -> Path:
    """`source` with every label outside the promotion holdout shuffled: a model trained on it learns nothing,
    and its holdout (rows and labels) is still `source`'s."""
    frame = read_data_file(source)
    rest = ~in_holdout(features_matrix(frame))
    frame.loc[rest, TARGET] = np.random.default_rng(seed).permutation(frame.loc[rest, TARGET].to_numpy())
    return write_frame(frame, path, synthetic=synthetic)


def subsample(source: Path, path: Path, share: float, *, seed: int = 0) -> Path:
    """A share of `source`'s rows, without a sidecar (treated as real data)."""
    return write_frame(read_data_file(source).sample(frac=share, random_state=seed), path, synthetic=False)


def relabel_holdout(source: Path, path: Path, labels: np.ndarray) -> Path:
    """`source` with its promotion holdout's labels replaced by `labels` (in file order), without a sidecar."""
    frame = read_data_file(source)
    frame.loc[in_holdout(features_matrix(frame)), TARGET] = labels
    return write_frame(frame, path, synthetic=False)


def with_near_copies(source: Path, path: Path, column: str, change: float) -> Path:
    """`source` plus a copy of each of its holdout rows, labels kept, with `column` changed: to 1 - value for a
    binary answer (`change` 0), else by `change` (review 2's BMI + 1e-6)."""
    frame = read_data_file(source)
    held = frame.loc[in_holdout(features_matrix(frame))]
    copies = held.copy()
    copies[column] = 1 - copies[column] if change == 0 else copies[column] + change
    return write_frame(pd.concat([frame, copies], ignore_index=True), path, synthetic=False)
