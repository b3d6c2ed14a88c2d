"""Fixtures for the ml tests: synthetic data files (never the real survey rows) and a real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from ml.training.synthetic_data import make_synthetic, write_synthetic
from tests.ml.mlflow_server import MlflowServer, running_mlflow_server

if TYPE_CHECKING:
    from mlflow import MlflowClient

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


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow tracking server (sqlite store, served artifacts) on a free loopback port, for the session."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture
def tracking(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """The server's client, with both registered models and every run removed: every test starts without a champion,
    a reference holdout (which the registered model holds) or recorded comparisons (which the runs hold)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ml.training.tracking import MODEL_NAME, SYNTHETIC_MODEL_NAME

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    client = MlflowClient(tracking_uri=mlflow_server.url)
    for name in (MODEL_NAME, SYNTHETIC_MODEL_NAME):
        try:
            client.delete_registered_model(name)
        except MlflowException:
            continue
    experiments = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(experiments, max_results=10_000):
        client.delete_run(run.info.run_id)
    return client
