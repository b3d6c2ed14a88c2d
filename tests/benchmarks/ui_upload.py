"""UI upload benchmark: peak resident memory of the Streamlit process for large and hostile uploads.

Each scenario runs against a fresh `streamlit run frontend/app.py` started as `make ui` starts it (with its
`--server.maxUploadSize`), driven by headless Chromium the way a user would, next to a real uvicorn service:
  - a 50 MB file (about 500,000 rows): refused,
  - a file under the upload limit holding 180,000 rows (past the row limit): refused,
  - 100,000 rows (10 MB, the row limit): read, predicted by the service, shown, `predictions.csv` downloaded,
  - 100,000 rows padded to 19 MB with a column of the user's own: the same.
Reports the process's resident memory once the page is up, its peak (`VmHWM`) and the time each step took.
Targets (the UI task has 512 MiB on Fargate): a refused upload peaks under 300 MB (reading it whole took 1.04 GB
for the 50 MB file); a session at the limits (read, predict, show, download) adds less than 200 MB to the page's own
memory.

The rows are synthetic (`ml.training.synthetic_data`). The machine's 2 cores are shared: the load average is reported.
Needs Chromium (`apt-get install -y chromium`) and the dev environment. Not collected by pytest. Usage:

    uv run python -m tests.benchmarks.ui_upload --model artifacts/model [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ml.schema import FEATURE_NAMES
from ml.training.synthetic_data import make_synthetic
from tests.benchmarks.hostile_requests import memory_mb
from tests.benchmarks.reporting import report
from tests.benchmarks.serve import running, wait_http
from tests.frontend.ui_servers import streamlit_command
from tests.servers import free_port, service_command, service_environment

MAX_REFUSED_PEAK_MB = 300.0
MAX_ACCEPTED_GROWTH_MB = 200.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
#: What the page says once it has dealt with an upload: rows read, or why not.
_READ = re.compile(r"rows read from|must be \d|are accepted")


@dataclass(frozen=True)
class Scenario:
    name: str
    rows: int
    padding: int  # characters of a "note" column of the user's own, per row
    predict: bool


SCENARIOS = (
    Scenario("50 MB, 500,000 rows", 500_000, 0, predict=False),
    Scenario("18 MB, 180,000 rows", 180_000, 0, predict=False),
    Scenario("10 MB, 100,000 rows: predict and download", 100_000, 0, predict=True),
    Scenario("19 MB, 100,000 padded rows: predict and download", 100_000, 95, predict=True),
)


@dataclass(frozen=True)
class Outcome:
    scenario: str
    file_mb: float
    answer: str
    rss_page_mb: float
    rss_peak_mb: float
    read_seconds: float
    predict_seconds: float | None


def write_file(scenario: Scenario, folder: Path) -> Path:
    """Synthetic rows in the survey file's format (`1.0`), with an id (and padding) column of the user's own."""
    base = make_synthetic(100_000, seed=5)[list(FEATURE_NAMES)].astype(float)
    frame = pd.concat([base] * -(-scenario.rows // len(base)), ignore_index=True).head(scenario.rows)
    frame.insert(0, "id", [f"person-{i:07d}" for i in range(scenario.rows)])
    if scenario.padding:
        frame["note"] = "n" * scenario.padding
    path = folder / f"upload-{scenario.rows}-{scenario.padding}.csv"
    frame.to_csv(path, index=False)
    return path


def replay(scenario: Scenario, upload: Path, api_url: str, work: Path) -> Outcome:
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    ui_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "API_URL": api_url}
    with running(streamlit_command(port), env, work / "streamlit.log") as process:
        wait_http(f"{ui_url}/_stcore/health", 60, process)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
                page.goto(ui_url)
                page.get_by_role("tab", name="Many people (CSV file)").click()
                dropzone = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
                expect(dropzone).to_be_attached(timeout=30_000)
                rss_page = memory_mb(process.pid, "VmRSS")
                started = time.perf_counter()
                dropzone.set_input_files(upload)
                answer = page.get_by_text(_READ).first
                expect(answer).to_be_visible(timeout=300_000)
                read_seconds = time.perf_counter() - started
                text = answer.inner_text()
                predict_seconds = None
                if scenario.predict:
                    started = time.perf_counter()
                    page.get_by_role("button", name="Predict all rows").click()
                    expect(page.get_by_text("rows predicted")).to_be_visible(timeout=600_000)
                    with page.expect_download(timeout=300_000) as download:
                        page.locator(".st-key-batch_download button").click()
                    download.value.save_as(work / "predictions.csv")
                    predict_seconds = round(time.perf_counter() - started, 2)
            finally:
                browser.close()
        peak = memory_mb(process.pid, "VmHWM")
    return Outcome(
        scenario=scenario.name,
        file_mb=round(upload.stat().st_size / 1e6, 1),
        answer=text.strip()[:160],
        rss_page_mb=round(rss_page, 1),
        rss_peak_mb=round(peak, 1),
        read_seconds=round(read_seconds, 2),
        predict_seconds=predict_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.ui_upload", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model artifact directory (ml.train --output)")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="ui-upload-bench-") as tmp:
        work = Path(tmp)
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        api_env = service_environment(api_port, args.model.resolve(), {"SERVICE_ACCESS_LOG": "false"})
        with running(service_command(), api_env, work / "api.log") as api:
            wait_http(f"{api_url}/ready", 60, api)
            outcomes = [replay(s, write_file(s, work), api_url, work) for s in SCENARIOS]
    results["load_average_at_end"] = os.getloadavg()
    results["scenarios"] = [asdict(outcome) for outcome in outcomes]
    checks = {}
    for scenario, outcome in zip(SCENARIOS, outcomes, strict=True):
        name, peak = outcome.scenario, outcome.rss_peak_mb
        if scenario.predict:
            checks[f"{name}: peak - page < {MAX_ACCEPTED_GROWTH_MB:g} MB"] = (
                peak - outcome.rss_page_mb < MAX_ACCEPTED_GROWTH_MB
            )
        else:
            checks[f"{name}: peak RSS < {MAX_REFUSED_PEAK_MB:g} MB"] = peak < MAX_REFUSED_PEAK_MB
            checks[f"{name}: refused"] = "rows read" not in outcome.answer
    return report(results, checks, args.output)


if __name__ == "__main__":
    raise SystemExit(main())
