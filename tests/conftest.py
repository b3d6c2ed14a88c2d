"""Fixtures shared by every test package; keep this file small and generic."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from tests.servers import MMAP_THRESHOLD, running_server
from tests.servers import free_port as _find_free_port

# Before anything loads OpenMP (LightGBM, scikit-learn), in this process and every server it starts: threads that
# wait for work sleep instead of spinning. On a 2-core machine shared with other work, spinning made each LightGBM
# training round ~20 times slower (9.9 s instead of 0.5 s for 150 rounds at load 3.5); results are the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# As the image and the Makefile: glibc gives large freed blocks back (the servers' memory is measured).
os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))

#: Tasks never run on moto; this makes its ECS services report this many running tasks.
MOTO_RUNNING_TASKS = 2


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Return a function giving a TCP port on 127.0.0.1 that was free a moment ago."""
    return _find_free_port


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model artifact trained once per run on synthetic data (no MLflow), shared by every test package and, under
    pytest-xdist, by every worker (the first to take the lock trains; the others wait and read it)."""
    from ml.training.pipeline import TrainingConfig, train
    from ml.training.synthetic_data import write_synthetic

    # Each worker's base temp is a folder of the run's own (pytest-N/popen-gwK): its parent is shared by the run.
    run_folder = tmp_path_factory.getbasetemp()
    folder = (run_folder.parent if "PYTEST_XDIST_WORKER" in os.environ else run_folder) / "trained-model"
    with FileLock(f"{folder}.lock"):
        if not (folder / "model" / "manifest.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half-way left it
            folder.mkdir()
            data = write_synthetic(folder / "synthetic.csv.gz", 4_000, seed=3)
            train(data, folder / "model", TrainingConfig(max_rounds=300, num_threads=1))
    return folder / "model"


@pytest.fixture
def model_copy(trained_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the trained artifact that a test may damage."""
    return Path(shutil.copytree(trained_model_dir, tmp_path / "model"))


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto server on 127.0.0.1 (ECR, ECS, ELBv2, EKS, S3), one for the whole session and every package."""
    port = _find_free_port()
    executable = Path(sys.executable).parent / "moto_server"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    # AWS's managed policies exist (as in any account), so attaching one by a wrong name fails.
    env = {**os.environ, "MOTO_ECS_SERVICE_RUNNING": str(MOTO_RUNNING_TASKS), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    endpoint = f"http://127.0.0.1:{port}"
    command = [str(executable), "-H", "127.0.0.1", "-p", str(port)]
    with running_server(command, f"{endpoint}/moto-api/", log, env=env, timeout=30):
        yield endpoint
