"""Fixtures shared by every test package; keep this file small and generic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import free_port as _find_free_port


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Return a function giving a TCP port on 127.0.0.1 that was free a moment ago."""
    return _find_free_port


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model artifact trained once per session on synthetic data (no MLflow), shared by every test package."""
    from ml.synthetic import write_synthetic
    from ml.train import TrainingConfig, train

    folder = tmp_path_factory.mktemp("trained-model")
    data = write_synthetic(folder / "synthetic.csv.gz", 4_000, seed=3)
    train(data, folder / "model", TrainingConfig(max_rounds=300))
    return folder / "model"
