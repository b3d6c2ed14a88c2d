"""Hostile-request benchmark (issue 15): what the refused bodies cost a real uvicorn worker of the service.

Replays, each scenario against a fresh server (so its peak resident memory is the scenario's own):
  - one `POST /predict/batch` of 1,000 records with 293 unknown keys each (2,017,013 bytes, under the 2 MiB limit),
  - one `POST /predict` of one record with 216,699 unknown keys (1,902,304 bytes),
  - the worst bodies that still get parsed and validated, just under the key budget of `service.json_body`: a batch
    of 1,000 records of 31 unknown keys (52 problems each), and one record of 31,000 unknown keys,
  - four of each at once,
while a prober sends `GET /health` every 10 ms on its own connection. Reports each request's time to its answer,
the server's resident memory before and its peak (`VmHWM`), and the `/health` latency percentiles meanwhile.
Targets (one 1,024 MiB Fargate task must survive): each single request answered in < 0.5 s; RSS growth < 100 MB;
`/health` p99 < 100 ms, in every scenario.

The machine's 2 cores are shared: the load average is reported with the figures. Not collected by pytest. Usage:

    uv run python -m tests.benchmarks.hostile_requests --model artifacts/model [--output FILE]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ml.contract import DEFAULT_BATCH_LIMIT, MAX_KEYS_PER_RECORD
from tests.benchmarks.reporting import report
from tests.benchmarks.serve import running, wait_http
from tests.servers import SERVICE_APP, free_port, uvicorn_command
from tests.service.hostile import compact, hostile_batch, hostile_record, unknown_keys

#: Targets of issue 15.
MAX_SECONDS = 0.5
MAX_RSS_GROWTH_MB = 100.0
MAX_HEALTH_P99_MS = 100.0
PROBE_INTERVAL = 0.01


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: Callable[[], bytes]
    copies: int


def batch_under_budget() -> bytes:
    return compact({"records": [unknown_keys(MAX_KEYS_PER_RECORD)] * DEFAULT_BATCH_LIMIT})


def record_under_budget() -> bytes:
    return compact(unknown_keys(DEFAULT_BATCH_LIMIT * MAX_KEYS_PER_RECORD))


SCENARIOS = (
    Scenario("batch: 1,000 records x 293 unknown keys", "/predict/batch", hostile_batch, 1),
    Scenario("single: 216,699 unknown keys", "/predict", hostile_record, 1),
    Scenario("4 batches at once", "/predict/batch", hostile_batch, 4),
    Scenario("4 singles at once", "/predict", hostile_record, 4),
    Scenario("under the key budget: batch of 1,000 records x 31 unknown keys", "/predict/batch", batch_under_budget, 1),
    Scenario("under the key budget: single of 31,000 unknown keys", "/predict", record_under_budget, 1),
    Scenario("under the key budget: 4 batches at once", "/predict/batch", batch_under_budget, 4),
    Scenario("under the key budget: 4 singles at once", "/predict", record_under_budget, 4),
)


@dataclass(frozen=True)
class Outcome:
    scenario: str
    body_bytes: int
    statuses: list[int]
    seconds: list[float]
    rss_before_mb: float
    rss_peak_mb: float
    rss_growth_mb: float
    health_probes: int
    health_p50_ms: float
    health_p99_ms: float
    health_max_ms: float


def memory_mb(pid: int, field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (the peak since the process started) from /proc, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _post(port: int, path: str, body: bytes) -> tuple[int, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    return response.status, elapsed


class HealthProber(threading.Thread):
    """`GET /health` every `PROBE_INTERVAL` seconds on one keep-alive connection, recording each latency."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.latencies: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stopped.is_set():
            started = time.perf_counter()
            connection.request("GET", "/health")
            connection.getresponse().read()
            self.latencies.append(time.perf_counter() - started)
            self.stopped.wait(PROBE_INTERVAL)
        connection.close()


def _percentile(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def replay(scenario: Scenario, model: Path, work: Path) -> Outcome:
    port = free_port()
    env = {**os.environ, "MODEL_URI": str(model), "SERVICE_ACCESS_LOG": "false"}
    body = scenario.body()
    with running(uvicorn_command(SERVICE_APP, port), env, work / "service.log") as process:
        wait_http(f"http://127.0.0.1:{port}/ready", 60, process)
        _post(port, "/predict/batch", b'{"records": [{}]}')  # warm the validation and error paths
        time.sleep(0.5)
        rss_before = memory_mb(process.pid, "VmRSS")
        prober = HealthProber(port)
        prober.start()
        time.sleep(0.2)
        with ThreadPoolExecutor(scenario.copies) as pool:
            answers = list(pool.map(lambda _: _post(port, scenario.path, body), range(scenario.copies)))
        time.sleep(0.2)
        prober.stopped.set()
        prober.join()
        peak = memory_mb(process.pid, "VmHWM")
    latencies_ms = [1000 * s for s in prober.latencies]
    return Outcome(
        scenario=scenario.name,
        body_bytes=len(body),
        statuses=[status for status, _ in answers],
        seconds=[round(seconds, 3) for _, seconds in answers],
        rss_before_mb=round(rss_before, 1),
        rss_peak_mb=round(peak, 1),
        rss_growth_mb=round(peak - rss_before, 1),
        health_probes=len(latencies_ms),
        health_p50_ms=round(_percentile(latencies_ms, 50), 2),
        health_p99_ms=round(_percentile(latencies_ms, 99), 2),
        health_max_ms=round(max(latencies_ms), 2),
    )


def targets(outcomes: Sequence[Outcome]) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    for outcome in outcomes:
        if len(outcome.seconds) == 1:
            checks[f"{outcome.scenario}: answered in < {MAX_SECONDS} s"] = outcome.seconds[0] < MAX_SECONDS
        checks[f"{outcome.scenario}: refused (422)"] = set(outcome.statuses) == {422}
        checks[f"{outcome.scenario}: RSS growth < {MAX_RSS_GROWTH_MB:g} MB"] = outcome.rss_growth_mb < MAX_RSS_GROWTH_MB
        checks[f"{outcome.scenario}: /health p99 < {MAX_HEALTH_P99_MS:g} ms"] = (
            outcome.health_p99_ms < MAX_HEALTH_P99_MS
        )
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.hostile_requests", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", type=Path, required=True, help="model artifact directory (ml.train --output)")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="hostile-bench-") as tmp:
        outcomes = [replay(scenario, args.model.resolve(), Path(tmp)) for scenario in SCENARIOS]
    results["load_average_at_end"] = os.getloadavg()
    results["scenarios"] = [asdict(outcome) for outcome in outcomes]
    return report(results, targets(outcomes), args.output)


if __name__ == "__main__":
    sys.exit(main())
