"""Data fixtures for the ml tests: synthetic files only, never the real survey rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.training.synthetic import make_synthetic, write_synthetic

SYNTHETIC_ROWS = 6_000
SYNTHETIC_SEED = 7


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 3-class file (~6,000 rows, gzipped, with its sidecar), written once per session."""
    folder = tmp_path_factory.mktemp("synthetic-data")
    return write_synthetic(folder / "synthetic.csv.gz", SYNTHETIC_ROWS, SYNTHETIC_SEED)


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    """A small synthetic frame (2,000 rows) in the real file's column order; copy before changing it."""
    return make_synthetic(2_000, seed=11)
