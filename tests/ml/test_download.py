"""ml.download against a real local HTTP server (csv, gz, zip, 404, down, silent) and an offline kagglehub."""

from __future__ import annotations

import functools
import gzip
import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from ml.download import main
from ml.inference.digest import file_sha256
from ml.schema import BINARY_TARGET, REAL_DATA_FILE, TARGET
from ml.training.data import read_data_file
from ml.training.synthetic_data import make_synthetic, write_synthetic

ROOT = Path(__file__).resolve().parents[2]
ROWS = 400


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving synthetic mirror files; yields (base URL, folder)."""
    folder = tmp_path_factory.mktemp("mirror")
    write_synthetic(folder / "plain.csv", ROWS, seed=1)
    write_synthetic(folder / "packed.csv.gz", ROWS, seed=2)
    binary = make_synthetic(ROWS, seed=3).rename(columns={TARGET: BINARY_TARGET})
    binary[BINARY_TARGET] = (binary[BINARY_TARGET] == 2).astype(int)
    binary.to_csv(folder / "binary.csv", index=False)
    with zipfile.ZipFile(folder / "kaggle.zip", "w") as zf:  # the Kaggle archive holds all three files
        zf.writestr("diabetes_binary_health_indicators_BRFSS2015.csv", binary.to_csv(index=False))
        zf.writestr(f"nested/{REAL_DATA_FILE}", make_synthetic(ROWS, seed=4).to_csv(index=False))
    with zipfile.ZipFile(folder / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    (folder / "page.html").write_text("<html><body>Sign in to download</body></html>")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_plain_csv(served, tmp_path: Path, capsys):
    base, mirror = served
    code, out, _ = run(capsys, "--url", f"{base}/plain.csv", "--output-dir", str(tmp_path))
    assert code == 0
    target = tmp_path / REAL_DATA_FILE
    assert target.read_bytes() == (mirror / "plain.csv").read_bytes()
    assert f"rows: {ROWS:,}" in out
    assert file_sha256(target) in out
    assert "0 healthy" in out
    assert leftovers(tmp_path) == [REAL_DATA_FILE]


def test_gzipped_csv_keeps_gz_name(served, tmp_path: Path, capsys):
    base, mirror = served
    code, out, _ = run(capsys, "--url", f"{base}/packed.csv.gz", "--output-dir", str(tmp_path))
    assert code == 0
    target = tmp_path / f"{REAL_DATA_FILE}.gz"
    assert target.read_bytes() == (mirror / "packed.csv.gz").read_bytes()
    assert leftovers(tmp_path) == [target.name]
    assert file_sha256(target) in out


def test_zip_with_all_kaggle_files_extracts_the_3_class_file(served, tmp_path: Path, capsys):
    base, _ = served
    code, _, _ = run(capsys, "--url", f"{base}/kaggle.zip", "--output-dir", str(tmp_path))
    assert code == 0
    assert leftovers(tmp_path) == [REAL_DATA_FILE]
    pd.testing.assert_frame_equal(read_data_file(tmp_path / REAL_DATA_FILE), make_synthetic(ROWS, seed=4))


def test_zip_without_the_file(served, tmp_path: Path, capsys):
    base, _ = served
    code, _, err = run(capsys, "--url", f"{base}/other.zip", "--output-dir", str(tmp_path))
    assert code == 1
    assert f"the zip holds no {REAL_DATA_FILE} (it holds: readme.txt)" in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("name", "expected"), [("binary.csv", BINARY_TARGET), ("page.html", "expected columns")])
def test_wrong_content_is_not_installed(served, tmp_path: Path, capsys, name: str, expected: str):
    base, _ = served
    code, _, err = run(capsys, "--url", f"{base}/{name}", "--output-dir", str(tmp_path))
    assert code == 1
    assert "not the expected 3-class file" in err
    assert expected in err
    assert f"{base}/{name}" in err  # names the URL, not the temp file
    assert ".download-" not in err
    assert leftovers(tmp_path) == []


def test_http_404(served, tmp_path: Path, capsys):
    base, _ = served
    code, out, err = run(capsys, "--url", f"{base}/missing.csv", "--output-dir", str(tmp_path))
    assert code == 1
    assert out == ""
    assert "404" in err
    assert "--url" in err
    assert f"place the file yourself at {tmp_path / REAL_DATA_FILE}" in err
    assert leftovers(tmp_path) == []


def test_server_down(tmp_path: Path, capsys, free_port: Callable[[], int]):
    code, _, err = run(capsys, "--url", f"http://127.0.0.1:{free_port()}/x.csv", "--output-dir", str(tmp_path))
    assert code == 1
    assert "cannot reach" in err
    assert "Connection refused" in err
    assert leftovers(tmp_path) == []


def test_silent_server_times_out(tmp_path: Path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepts connections in the backlog but never answers
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x.csv"
        code, _, err = run(capsys, "--url", url, "--timeout", "0.5", "--output-dir", str(tmp_path))
    assert code == 1
    assert "no answer" in err
    assert "0.5 s" in err


def test_rejects_non_http_url(tmp_path: Path, capsys):
    code, _, err = run(capsys, "--url", f"file://{tmp_path}/x.csv", "--output-dir", str(tmp_path / "out"))
    assert code == 1
    assert "http:// or https://" in err


def test_present_file_is_kept_unless_forced(served, tmp_path: Path, capsys, free_port: Callable[[], int]):
    base, _ = served
    existing = write_synthetic(tmp_path / REAL_DATA_FILE, 50, seed=8)
    before = existing.read_bytes()
    down = f"http://127.0.0.1:{free_port()}/x.csv"  # proves nothing is fetched
    code, out, _ = run(capsys, "--url", down, "--output-dir", str(tmp_path))
    assert code == 0
    assert "already present" in out
    assert "rows: 50" in out
    assert existing.read_bytes() == before
    code, _, _ = run(capsys, "--url", f"{base}/packed.csv.gz", "--output-dir", str(tmp_path), "--force")
    assert code == 0
    assert not existing.exists()  # replaced by the gz copy, not left beside it
    assert len(read_data_file(tmp_path / f"{REAL_DATA_FILE}.gz")) == ROWS


def test_invalid_present_file_is_reported(tmp_path: Path, capsys):
    with gzip.open(tmp_path / f"{REAL_DATA_FILE}.gz", "wt") as handle:
        handle.write("a,b\n1,2\n")
    code, _, err = run(capsys, "--output-dir", str(tmp_path))
    assert code == 1
    assert "is not valid" in err
    assert "--force" in err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--output-dir", "--url", "--force", "--timeout", "--kaggle-handle"):
        assert option in text


def kaggle_env(tmp_path: Path, closed_port: int) -> dict[str, str]:
    """Environment for a kagglehub run with its own cache, no credentials, and every request sent to a
    proxy on a closed loopback port: the Kaggle API endpoint is unreachable, fast and deterministically."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("KAGGLE", "NO_PROXY"))}
    proxy = f"http://127.0.0.1:{closed_port}"
    return env | {
        "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub-cache"),
        "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config"),
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "https_proxy": proxy,
        "http_proxy": proxy,
        "PYTHONPATH": str(ROOT),
    }


def run_cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml.download", *argv],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_kaggle_offline_gives_one_clear_message(tmp_path: Path, free_port: Callable[[], int]):
    result = run_cli(kaggle_env(tmp_path, free_port()), "--output-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "could not download the Kaggle dataset 'alexteboul/diabetes-health-indicators-dataset'" in result.stderr
    assert "--url" in result.stderr
    assert "place the file yourself" in result.stderr
    assert leftovers(tmp_path / "data") == []


def test_kaggle_copies_the_3_class_file_from_kagglehub(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, free_port: Callable[[], int]
):
    """A versioned handle in kagglehub's cache resolves without network: the copy path runs for real."""
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_dataset_handle

    for name in [k for k in os.environ if k.upper().startswith("KAGGLE")]:
        monkeypatch.delenv(name)
    for name, value in kaggle_env(tmp_path, free_port()).items():
        monkeypatch.setenv(name, value)
    handle = "someone/brfss-mirror/versions/3"
    parsed = parse_dataset_handle(handle)
    cache = Cache()
    folder = Path(cache.get_path(parsed))
    write_synthetic(folder / REAL_DATA_FILE, ROWS, seed=5)
    write_synthetic(folder / "diabetes_binary_health_indicators_BRFSS2015.csv", 10, seed=6)
    cache.mark_as_complete(parsed)

    code, out, err = run(capsys, "--output-dir", str(tmp_path / "data"), "--kaggle-handle", handle)
    assert code == 0, err
    target = tmp_path / "data" / REAL_DATA_FILE
    assert leftovers(tmp_path / "data") == [REAL_DATA_FILE]
    pd.testing.assert_frame_equal(read_data_file(target), make_synthetic(ROWS, seed=5))
    assert f"sha256: {file_sha256(target)}" in out
