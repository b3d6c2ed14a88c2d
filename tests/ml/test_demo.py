"""`make demo`'s model: the real file when it can be had, synthetic data said loudly otherwise, retrained when the
real file arrives; and `make demo` itself stops cleanly on Ctrl-C."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ml.demo import banner, main, prepare
from ml.schema import REAL_DATA_FILE
from ml.training.synthetic_data import make_synthetic
from tests.servers import ROOT, free_port

#: Trains models, runs MLflow, Spark or `make demo`: the whole suite runs it, `make test-quick` leaves it out.
pytestmark = pytest.mark.end_to_end

ROWS = 3_000


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local HTTP server holding a stand-in for the real file (synthetic rows, no synthetic sidecar)."""
    folder = tmp_path_factory.mktemp("mirror")
    make_synthetic(ROWS, seed=8).astype(float).to_csv(folder / REAL_DATA_FILE, index=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _stand_in_real_file(folder: Path) -> Path:
    path = folder / REAL_DATA_FILE
    make_synthetic(ROWS, seed=9).astype(float).to_csv(path, index=False)
    return path


def test_without_the_real_file_it_trains_on_synthetic_data_and_says_why(mirror: str, tmp_path: Path) -> None:
    model = prepare(tmp_path / "data", tmp_path / "model", url=f"{mirror}/missing.csv", mlflow=False)
    assert model.trained
    assert model.manifest.data.synthetic
    assert model.download_problem is not None
    assert "404" in model.download_problem
    text = banner(model)
    assert "SYNTHETIC DATA" in text
    assert "could not be downloaded" in text
    assert all(len(line) == len(text.splitlines()[0]) for line in text.splitlines())  # the frame is not broken


def test_it_downloads_the_real_file_first_and_trains_on_it(mirror: str, tmp_path: Path) -> None:
    model = prepare(tmp_path / "data", tmp_path / "model", url=f"{mirror}/{REAL_DATA_FILE}", mlflow=False)
    assert (tmp_path / "data" / REAL_DATA_FILE).is_file()
    assert model.trained
    assert not model.manifest.data.synthetic
    assert "Real data" in banner(model)


def test_a_synthetic_model_is_retrained_once_the_real_file_appears(tmp_path: Path) -> None:
    data, models = tmp_path / "data", tmp_path / "model"
    first = prepare(data, models, download=False, mlflow=False)
    assert first.manifest.data.synthetic
    again = prepare(data, models, download=False, mlflow=False)
    assert not again.trained  # nothing changed: the same model is served
    _stand_in_real_file(data)
    real = prepare(data, models, download=False, mlflow=False)
    assert real.trained
    assert not real.manifest.data.synthetic
    assert real.manifest.data.file == REAL_DATA_FILE


def test_the_banner_is_the_last_thing_printed_and_mlflow_stays_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    code = main(["--data-dir", str(tmp_path / "data"), "--model-dir", str(tmp_path / "model"), "--no-download"])
    assert code == 0
    out, err = capfd.readouterr()
    assert out.rstrip().splitlines()[-1] == "#" * 78
    assert "SYNTHETIC DATA" in out
    for noise in ("Successfully registered", "Created version", "WARNING", "Downloading artifacts"):
        assert noise not in out + err, noise


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def test_make_demo_serves_both_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground group, as a terminal sends it: both servers stop, nothing crashes."""
    api, ui = free_port(), free_port()
    command = [
        "make",
        "demo",
        f"DATA_DIR={tmp_path / 'data'}",
        f"MODEL_DIR={tmp_path / 'model'}",
        "DATA_URL=http://127.0.0.1:9/unreachable.csv",
        f"API_PORT={api}",
        f"UI_PORT={ui}",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as process:
        try:
            deadline = time.monotonic() + 600
            while not (_answers(f"http://127.0.0.1:{api}/ready") and _answers(f"http://127.0.0.1:{ui}/_stcore/health")):
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "make demo did not bring both servers up"
                time.sleep(1)
            os.killpg(process.pid, signal.SIGINT)
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert "Segmentation fault" not in output
    assert process.returncode in (0, 130, -signal.SIGINT), output[-2000:]
    assert not _answers(f"http://127.0.0.1:{api}/health")
    assert not _answers(f"http://127.0.0.1:{ui}/_stcore/health")
    lines = [line for line in output.splitlines() if not line.startswith("{")]
    urls = next(i for i, line in enumerate(lines) if line.startswith("API: http://127.0.0.1:"))
    assert lines[urls - 1] == "#" * 78, lines[: urls + 1]  # the banner is the last thing before the two URLs
