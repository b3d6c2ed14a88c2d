"""Serving benchmark: one `python -m service` worker against Seldon MLServer and `mlflow models serve`, same model.

Measures, on loopback with wrk (one load thread, so the server keeps a core), side by side in one run:
  - installed size of the service's runtime environment (a fresh `uv sync --frozen --no-default-groups --extra s3`),
  - time from process start to `/ready` 200 (from that runtime environment, as in the image), and the CPU seconds
    the service used until then (what other processes on the machine cannot inflate, unlike the wall time),
  - req/s, p50 and p99 of `/predict` at concurrency 1, 8 and 32, with `/health` of the same server as the ceiling,
    and each server's CPU time per request (robust to other processes on the machine, which only slow a run down),
  - the same booster behind MLServer 1.7's LightGBM runtime (`mlserver_lightgbm`: raw `booster.predict` of the
    V2 inference protocol's tensor, no validation, no calibration), from the `bench-mlserver` dependency group
    installed alone into a venv of its own (it pins an older FastAPI; `pyproject.toml` says why), with
    `parallel_workers: 0` (one process, as the service) and `OMP_NUM_THREADS=1` (the service's booster uses one
    thread; LightGBM's default OpenMP pool made MLServer 15x slower on this shared 2-core machine),
  - the same model behind `mlflow models serve` (the project's pyfunc, `ml.training.mlflow_model`, logged to a
    temporary sqlite store),
  - the floor of idiomatic FastAPI: the same Predictor behind the smallest app answering the same `/predict`
    (`tests.benchmarks.bare_fastapi`: body and response models, no middleware, no access log, no limits) under plain
    uvicorn, with its own `/health`: its `/predict` over `/health` is what FastAPI itself leaves for that ratio;
    `bare_route_over_health` (its route's CPU over the service's `/health`; above 1, the service cannot reach 0.5x
    while its route does what the bare one does) and `bare_fastapi_over_mlserver` (2 over it: the share of the
    bare app's speed the service must keep for 2x) say how far the targets are from that floor,
  - rows/s of `/predict/batch` with 100 rows,
  - a soak at concurrency 32: errors and resident-memory growth,
  - in process (ASGI calls, no network, CPU time): the service's `/health` and `/predict`, the bare app's, and
    `Predictor.predict` of one row.
The single record is a person outside the care system (`outside_care_record`): the service scores two rows, MLServer
one.
At each concurrency the servers' runs alternate (`--rounds`, best kept), so a change in the machine's background
load falls on all alike; the ratios below compare runs of the same round.
Targets (issue 21): `/predict` >= 0.5x `/health` and >= 2x MLServer at c=8, >= 10x `mlflow models serve` at c=8
and c=32; p50 <= 1 ms at c=1; ready <= 3 s; runtime deps <= 300 MB; soak with zero errors and RSS growth <= 10%.

Needs `apt-get install -y wrk` and the dev environment (MLflow, psutil); the MLServer venv is made from `uv.lock`.
Not collected by pytest. Usage:

    uv run python -m tests.benchmarks.serve --model artifacts/model [--duration 10] [--soak 60] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from ml.schema import FEATURE_NAMES, FEATURES_BY_NAME
from ml.training.synthetic_data import make_synthetic
from tests.benchmarks.reporting import report
from tests.servers import ROOT, free_port, service_command, service_environment, uvicorn_command

CONCURRENCY = (1, 8, 32)
#: /predict must serve at least this share of /health's requests per second, at this load.
MIN_SHARE_OF_HEALTH = 0.5
#: ... and this many times MLServer's on the same booster ...
MIN_SPEEDUP_MLSERVER = 2
#: ... and this many times `mlflow models serve`'s, at these loads.
MIN_SPEEDUP_MLFLOW = 10
RATIO_CONCURRENCY = 8
MLFLOW_CONCURRENCY = (8, 32)
BATCH_ROWS = 100
MLSERVER_MODEL = "diabetes"
#: The other servers of the same model, side by side with the service (`--skip-...` leaves one out).
PEERS = ("mlserver", "mlflow", "bare_fastapi")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class Load:
    """One wrk run: throughput, latency percentiles in milliseconds, failed requests, server CPU per request."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us_per_request: float | None = None


@dataclass(frozen=True)
class Peer:
    """A server under test: where to send one prediction, in its own wire format, and its process."""

    url: str
    body: Any
    process: psutil.Process
    health_url: str | None = None  # measured beside it when the peer has one


def records(n: int) -> list[dict[str, float]]:
    frame = make_synthetic(max(n, 50), seed=99).head(n)
    return [
        {name: int(row[name]) if FEATURES_BY_NAME[name].integer else float(row[name]) for name in FEATURE_NAMES}
        for _, row in frame.iterrows()
    ]


def outside_care_record() -> dict[str, float]:
    """The single prediction's record: a person not checked in five years (`CholCheck` 0), so the service scores the
    row and its in-care copy (`ml.inference.screening`): the costlier case, 14% of the survey's rows."""
    return {**records(1)[0], "CholCheck": 0}


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU time of `process` and its children (MLflow serves from a child)."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = each.cpu_times()
            total += times.user + times.system
    return total


def wrk(url: str, concurrency: int, seconds: float, work: Path, body: Any = None, server: Any = None) -> Load:
    """Run wrk with one thread; a JSON body makes it a POST. With `server` (a psutil.Process), its CPU per request."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    if body is not None:
        script = work / f"post-{os.getpid()}-{time.monotonic_ns()}.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{json.dumps(body)}]==]\n"
        )
        command += ["-s", str(script)]
    before = cpu_seconds(server) if server is not None else 0.0
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    load = _parse_wrk(output)
    if server is not None and load.requests:
        load = replace(load, cpu_us_per_request=1e6 * (cpu_seconds(server) - before) / load.requests)
    return load


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def _parse_wrk(output: str) -> Load:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(g) for g in match.groups())
    return Load(rps, p50, p99, errors, total)


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes]) -> float:
    """Seconds until `url` answers 200; polls every 10 ms."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


@contextmanager
def running(
    command: Sequence[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(process.pid).children(recursive=True):
                child.terminate()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def runtime_environment(work: Path) -> tuple[Path, float]:
    """The service's runtime-only venv (what the image installs) and its site-packages size in MB."""
    venv = work / "runtime-venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    subprocess.run(
        ["uv", "sync", "--frozen", "--no-default-groups", "--extra", "s3", "--quiet"], cwd=ROOT, env=env, check=True
    )
    site = next((venv / "lib").glob("python3*/site-packages"))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
    return venv / "bin" / "python", size / 1e6


@contextmanager
def service_server(
    python: Path, model: Path, work: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], float, float]]:
    """`python -m service` from the runtime-only venv; yields (base URL, process, seconds to ready, CPU seconds the
    service used until then)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_environment(port, model, {"SERVICE_LOG_LEVEL": "INFO"})
    with running(service_command(python), env, work / "service.log") as process:
        ready = wait_http(f"{base}/ready", 60, process)
        yield base, process, ready, cpu_seconds(psutil.Process(process.pid))


@contextmanager
def mlserver_server(model: Path, work: Path, record: dict[str, float]) -> Iterator[tuple[Peer, float]]:
    """The artifact's booster (`model.txt`) behind MLServer's LightGBM runtime; yields (peer, seconds to ready)."""
    venv = work / "mlserver-venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    subprocess.run(
        ["uv", "sync", "--frozen", "--only-group", "bench-mlserver", "--quiet"], cwd=ROOT, env=env, check=True
    )
    folder = work / "mlserver"
    (folder / MLSERVER_MODEL).mkdir(parents=True)
    shutil.copy(model / "model.txt", folder / MLSERVER_MODEL / "model.txt")
    implementation = {"implementation": "mlserver_lightgbm.LightGBMModel", "parameters": {"uri": "./model.txt"}}
    (folder / MLSERVER_MODEL / "model-settings.json").write_text(json.dumps({"name": MLSERVER_MODEL, **implementation}))
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port, "metrics_port": metrics_port}
    (folder / "settings.json").write_text(json.dumps({**settings, "parallel_workers": 0}))
    server_env = {**os.environ, "OMP_NUM_THREADS": "1"}
    body = {"inputs": [{"name": "input-0", "shape": [1, len(FEATURE_NAMES)], "datatype": "FP64"}]}
    body["inputs"][0]["data"] = [float(record[name]) for name in FEATURE_NAMES]
    base = f"http://127.0.0.1:{port}/v2/models/{MLSERVER_MODEL}"
    with running([str(venv / "bin" / "mlserver"), "start", str(folder)], server_env, work / "mlserver.log") as process:
        ready = wait_http(f"{base}/ready", 180, process)
        yield Peer(f"{base}/infer", body, psutil.Process(process.pid)), ready


@contextmanager
def mlflow_server(model: Path, work: Path, record: dict[str, float]) -> Iterator[tuple[Peer, float]]:
    """The same artifact logged as the project's pyfunc to a throwaway sqlite store and served by MLflow; yields
    (peer, seconds to ready)."""
    import mlflow

    from ml.training.tracking import MODEL_NAME, log_pyfunc

    store = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("serve-benchmark")
    with mlflow.start_run():
        log_pyfunc(model, MODEL_NAME)
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    command = [f"{bin_dir}/mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/1", "--env-manager", "local"]
    command += ["-p", str(port), "-h", "127.0.0.1"]
    with running(command, env, work / "mlflow.log") as process:
        ready = wait_http(f"http://127.0.0.1:{port}/ping", 180, process)
        peer = Peer(
            f"http://127.0.0.1:{port}/invocations", {"dataframe_records": [record]}, psutil.Process(process.pid)
        )
        yield peer, ready


@contextmanager
def bare_fastapi_server(model: Path, work: Path, record: dict[str, float]) -> Iterator[tuple[Peer, float]]:
    """The same Predictor behind a bare FastAPI app under plain uvicorn (`tests.benchmarks.bare_fastapi`); yields
    (peer, seconds to ready)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODEL_URI": str(model)}
    command = [
        *uvicorn_command("tests.benchmarks.bare_fastapi:app_from_environment", port),
        *("--factory", "--no-access-log", "--log-level", "warning"),
    ]
    with running(command, env, work / "bare-fastapi.log") as process:
        ready = wait_http(f"{base}/health", 60, process)
        yield Peer(f"{base}/predict", record, psutil.Process(process.pid), health_url=f"{base}/health"), ready


def best(loads: Sequence[Load]) -> dict[str, Any]:
    """The run with the most requests per second: background load only ever slows a run down."""
    return asdict(max(loads, key=lambda load: load.requests_per_second))


def measure(
    python: Path, model: Path, work: Path, seconds: float, soak: float, *, peers: Sequence[str], rounds: int
) -> dict[str, Any]:
    """The service and its peers side by side: at each concurrency the runs alternate between them, `rounds`
    times, so a change in the machine's background load falls on all alike."""
    one = outside_care_record()
    batch = {"records": records(BATCH_ROWS)}
    results: dict[str, Any] = {"service": {}}
    service = results["service"]
    with service_server(python, model, work) as (base, process, ready, ready_cpu), contextlib.ExitStack() as stack:
        server = psutil.Process(process.pid)
        service["ready_seconds"] = ready
        service["ready_cpu_seconds"] = ready_cpu
        started: dict[str, Peer] = {}
        starters: dict[str, Callable[[Path, Path, dict[str, float]], Any]] = {
            "mlserver": mlserver_server,
            "mlflow": mlflow_server,
            "bare_fastapi": bare_fastapi_server,
        }
        for name in peers:
            peer, peer_ready = stack.enter_context(starters[name](model, work, one))
            started[name] = peer
            results[name] = {"ready_seconds": peer_ready}
            wrk(peer.url, 8, 3, work, peer.body)  # warm-up
        wrk(f"{base}/predict", 8, 3, work, one)  # warm-up
        for c in CONCURRENCY:
            runs: dict[str, list[Load]] = defaultdict(list)
            for _ in range(rounds):
                runs["health"].append(wrk(f"{base}/health", c, seconds, work, server=server))
                runs["predict"].append(wrk(f"{base}/predict", c, seconds, work, one, server=server))
                for name, peer in started.items():
                    runs[name].append(wrk(peer.url, c, seconds, work, peer.body, server=peer.process))
                    if peer.health_url is not None:
                        runs[f"{name}_health"].append(wrk(peer.health_url, c, seconds, work, server=peer.process))
            service[f"health_c{c}"] = best(runs["health"])
            service[f"predict_c{c}"] = best(runs["predict"])
            for name in started:
                results[name][f"predict_c{c}"] = best(runs[name])
                if runs[f"{name}_health"]:
                    results[name][f"health_c{c}"] = best(runs[f"{name}_health"])
        for c in (1, 8):
            load = wrk(f"{base}/predict/batch", c, seconds, work, batch, server=server)
            service[f"batch{BATCH_ROWS}_c{c}"] = {
                **asdict(load),
                "rows_per_second": load.requests_per_second * BATCH_ROWS,
            }
        rss_before = server.memory_info().rss
        service["soak"] = asdict(wrk(f"{base}/predict", 32, soak, work, one, server=server))
        rss_after = server.memory_info().rss
        service["soak"].update(
            rss_before_mb=rss_before / 1e6,
            rss_after_mb=rss_after / 1e6,
            rss_growth_percent=100 * (rss_after - rss_before) / rss_before,
        )
    return results


def in_process(model: Path, repeats: int = 7, calls: int = 500) -> dict[str, float]:
    """CPU microseconds per call, in process (ASGI calls, no network; the fastest of `repeats`): the service's
    `/health` and `/predict` (access log on, as served), the bare FastAPI app's (`tests.benchmarks.bare_fastapi`:
    the same Predictor and answer), and `Predictor.predict` of one row. What the service's `/predict` costs over
    the bare app's is the service's own layers (the route's and those `/health` pays too)."""
    import numpy as np

    from ml.contract import PatientRecord
    from ml.inference.predictor import Predictor
    from service.api import create_app
    from service.observability import skip_unlogged_record_attributes
    from service.settings import Settings
    from tests.benchmarks.bare_fastapi import bare_app

    skip_unlogged_record_attributes()  # as `service.server` does in the service's process

    body = json.dumps(outside_care_record()).encode()
    predictor = Predictor.load(model)
    bare = bare_app(predictor)

    async def call(app: Any, method: str, path: str, content: bytes) -> None:
        headers = [(b"host", b"x"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers if content else headers[:1],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": content, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            return None

        await app(scope, receive, send)

    async def cpu_per_call(app: Any, method: str, path: str, content: bytes) -> float:
        fastest = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            for _ in range(calls):
                await call(app, method, path, content)
            fastest = min(fastest, (time.process_time() - started) / calls * 1e6)
        return fastest

    async def run() -> dict[str, float]:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # the access log
            app = create_app(Settings(MODEL_URI=str(model)))  # its log handler writes to stdout as it is now
            async with app.router.lifespan_context(app):
                app.state.model.wait(60)
                for _ in range(200):  # warm up
                    await call(app, "POST", "/predict", body)
                figures = {
                    "health_us": await cpu_per_call(app, "GET", "/health", b""),
                    "predict_us": await cpu_per_call(app, "POST", "/predict", body),
                    "bare_fastapi_health_us": await cpu_per_call(bare, "GET", "/health", b""),
                    "bare_fastapi_predict_us": await cpu_per_call(bare, "POST", "/predict", body),
                }
        row = np.array([PatientRecord.model_validate_json(body).as_row()])
        fastest = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            for _ in range(calls * 4):
                predictor.predict(row)
            fastest = min(fastest, (time.process_time() - started) / (calls * 4) * 1e6)
        figures["predictor_predict_us"] = fastest
        figures["predict_over_bare_us"] = figures["predict_us"] - figures["bare_fastapi_predict_us"]
        return figures

    return asyncio.run(run())


def _ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> float:
    return float(numerator["requests_per_second"] / denominator["requests_per_second"])


def _floors(service: dict[str, Any], bare: dict[str, Any], mlserver: dict[str, Any] | None, c: int) -> dict[str, float]:
    """What the bare FastAPI app leaves for the targets at concurrency `c`. `/predict` >= 0.5x `/health` means the
    route's own CPU (its `/predict` less its `/health`) at most one `/health`: `bare_route_over_health` is the bare
    app's route (body and response models, the Predictor) over the service's `/health`: above 1, out of reach
    while the service's route does at least what the bare one does. `bare_fastapi_over_mlserver`: the bare app's
    own speed-up, so the share of its throughput the service must keep for 2x is 2 over it."""
    bare_predict, bare_health, health = (
        load[f"{kind}_c{c}"].get("cpu_us_per_request")
        for load, kind in ((bare, "predict"), (bare, "health"), (service, "health"))
    )
    floors: dict[str, float] = {}
    if bare_predict is not None and bare_health is not None and health:
        floors[f"bare_route_over_health_c{c}"] = (bare_predict - bare_health) / health
    if mlserver is not None:
        floors[f"bare_fastapi_over_mlserver_c{c}"] = _ratio(bare[f"predict_c{c}"], mlserver[f"predict_c{c}"])
    return floors


def summarise(results: dict[str, Any]) -> dict[str, bool]:
    service = results["service"]
    checks = {
        "p50 <= 1 ms at c=1": service["predict_c1"]["p50_ms"] <= 1.0,
        "ready <= 3 s": service["ready_seconds"] <= 3.0,
        "runtime deps <= 300 MB": results["runtime_deps_mb"] <= 300,
        "soak: zero errors": service["soak"]["errors"] == 0,
        "soak: RSS growth <= 10%": service["soak"]["rss_growth_percent"] <= 10,
    }
    ratios: dict[str, float] = {}
    for c in CONCURRENCY:
        ratios[f"predict_over_health_c{c}"] = _ratio(service[f"predict_c{c}"], service[f"health_c{c}"])
        for peer in PEERS:
            if peer in results:
                ratios[f"speedup_over_{peer}_c{c}"] = _ratio(service[f"predict_c{c}"], results[peer][f"predict_c{c}"])
        if "bare_fastapi" in results:
            bare = results["bare_fastapi"]
            ratios[f"bare_fastapi_predict_over_health_c{c}"] = _ratio(bare[f"predict_c{c}"], bare[f"health_c{c}"])
            ratios.update(_floors(service, bare, results.get("mlserver"), c))
    results["ratios"] = ratios
    c = RATIO_CONCURRENCY
    checks[f"/predict >= {MIN_SHARE_OF_HEALTH}x /health at c={c}"] = (
        ratios[f"predict_over_health_c{c}"] >= MIN_SHARE_OF_HEALTH
    )
    if "mlserver" in results:
        checks[f">= {MIN_SPEEDUP_MLSERVER}x MLServer at c={c}"] = (
            ratios[f"speedup_over_mlserver_c{c}"] >= MIN_SPEEDUP_MLSERVER
        )
    if "mlflow" in results:
        for c in MLFLOW_CONCURRENCY:
            checks[f">= {MIN_SPEEDUP_MLFLOW}x mlflow serve at c={c}"] = (
                ratios[f"speedup_over_mlflow_c{c}"] >= MIN_SPEEDUP_MLFLOW
            )
    return checks


def print_table(results: dict[str, Any]) -> None:
    """Every figure and ratio the issue names, one line each (the JSON above has them all too)."""
    service = results["service"]
    print(f"\nload average at start {results['load_average_at_start']}, at end {results['load_average_at_end']}")
    print(
        f"runtime deps {results['runtime_deps_mb']:.0f} MB; ready: service {service['ready_seconds']:.2f} s "
        f"({service['ready_cpu_seconds']:.2f} s CPU)",
        end="",
    )
    for peer in PEERS:
        if peer in results:
            print(f", {peer} {results[peer]['ready_seconds']:.2f} s", end="")
    print()
    for c in CONCURRENCY:
        for name, load in [
            ("/health", service[f"health_c{c}"]),
            ("/predict", service[f"predict_c{c}"]),
            *[(peer, results[peer][f"predict_c{c}"]) for peer in PEERS if peer in results],
            *[("bare /health", results["bare_fastapi"][f"health_c{c}"]) for _ in range("bare_fastapi" in results)],
        ]:
            cpu = load.get("cpu_us_per_request")
            cpu_text = f"{cpu:7.0f} us CPU/req" if cpu is not None else ""
            print(
                f"c={c:<3} {name:13} {load['requests_per_second']:9.0f} req/s  p50 {load['p50_ms']:7.2f} ms  "
                f"p99 {load['p99_ms']:7.2f} ms  {cpu_text}"
            )
    for name, ratio in results["ratios"].items():
        print(f"{name:32} {ratio:6.2f}")
    if "in_process" in results:
        figures = results["in_process"]
        print("in process (CPU us per call): " + ", ".join(f"{k} {v:.0f}" for k, v in figures.items()))
    soak = service["soak"]
    print(
        f"soak c=32: {soak['requests']} requests, {soak['errors']} errors, RSS {soak['rss_before_mb']:.0f} -> "
        f"{soak['rss_after_mb']:.0f} MB ({soak['rss_growth_percent']:+.1f}%)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model artifact directory (ml.train --output)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--soak", type=float, default=60, help="seconds of the c=32 soak (default 60)")
    parser.add_argument("--skip-mlflow", action="store_true", help="do not measure the mlflow serve peer")
    parser.add_argument("--skip-mlserver", action="store_true", help="do not measure the MLServer peer")
    parser.add_argument("--skip-bare", action="store_true", help="do not measure the bare FastAPI floor")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per concurrency, best kept (default 2)")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    model = args.model.resolve()
    skipped = {"mlserver": args.skip_mlserver, "mlflow": args.skip_mlflow, "bare_fastapi": args.skip_bare}
    peers = [name for name in PEERS if not skipped[name]]
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        python, size_mb = runtime_environment(work)
        results: dict[str, Any] = {"runtime_deps_mb": size_mb, "load_average_at_start": os.getloadavg()}
        results.update(measure(python, model, work, args.duration, args.soak, peers=peers, rounds=args.rounds))
        results["in_process"] = in_process(model)
        results["load_average_at_end"] = os.getloadavg()
        checks = summarise(results)
    code = report(results, checks, args.output)
    print_table(results)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
