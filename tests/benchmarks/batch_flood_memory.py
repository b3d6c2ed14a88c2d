"""Batch-flood memory benchmark (issue 21, review 4 R4-1): does the API the stacks deploy fit its task's memory?

Starts `python -m service` with the environment a stack gives the API of a `--memory` MiB task
(`stacks.workloads.api_environment`; `--service-defaults` leaves out the limits the stacks derive from the memory,
as the stacks did before), plus any `--env NAME=VALUE` (e.g. `MALLOC_ARENA_MAX=2`). Then, for each case, on a fresh
server: C clients send 1,000-record batches back to back on keep-alive connections for D seconds, the JSON padded
with spaces to PAD bytes (0: the plain 330 KB body), as the reviewer's `s12_batch_flood_health.py` does, while a
prober sends `GET /health` every 0.2 s on a fresh connection. Reports the resident memory idle, its peak
(`VmHWM`) and 5 s after the flood, the answers by status, the batches served a second, and the `/health` latency.
Targets: the peak stays under the task's memory less the stacks' reserve (`stacks.service_limits`); with more
clients, batches of the same size are served at least `GOODPUT_SHARE` as fast as with the fewest (review 7, R7-5:
20 eager clients of 2 MB batches were served 1 a second where one client alone was served 2.5: each batch past
the budget was refused at its head and its body read to be dropped).

R7-5, `--cases 1:8:2000000,3:8:2000000,6:8:2000000,20:10:2000000,150:20:2000000 --env MALLOC_MMAP_THRESHOLD_=131072`
on 512 MiB, batches served a second, before (fda00b0) -> after, the two runs one after the other, load average
1.5-2.6: 1 client 2.38 -> 2.38; 3 clients 6.38 -> 6.12; 6 clients 4.25 -> 11.0; 20 clients 0.8 -> 12.9; 150
clients 0.4 -> 14.95 (503s 8,842 -> 105); peak RSS at 150 clients 165 -> 124 MB; `/health` worst 801 -> 365 ms.

The machine's 2 cores are shared: counts and memory are exact, latencies noisy; the load average is reported.
With `--limit-memory` the server runs in a podman container limited to `--memory` (memory and swap; the host's root
under an overlay, as root, on the host's network), so a flood past it ends in the kernel's OOM kill (reported as
`killed`); without it, the peak is only compared with the memory. Not collected by pytest. Usage:

    uv run python -m tests.benchmarks.batch_flood_memory --model artifacts/model [--memory 512] [--limit-memory]
        [--service-defaults] [--env MALLOC_MMAP_THRESHOLD_=131072] [--cases 64:15:0,64:15:2000000,150:15:2000000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml.contract import DEFAULT_BATCH_LIMIT, DEFAULT_RECORD
from stacks.config import PlatformSettings, SharedSettings
from stacks.network import subnet_cidrs
from stacks.service_limits import RESERVE_FRACTION, service_limits
from stacks.workloads import api_environment
from tests.benchmarks.hostile_requests import memory_mb
from tests.benchmarks.reporting import report
from tests.benchmarks.serve import running, wait_http
from tests.servers import ROOT, free_port, service_command, service_environment

#: The default VPC's public subnets: the proxies the deployed API trusts (not the loopback the benchmark sends from).
DEFAULT_PUBLIC_SUBNETS, _ = subnet_cidrs(SharedSettings.model_fields["vpc_cidr"].default)

DEFAULT_CASES = "64:15:0,64:15:2000000,150:15:2000000"
PROBE_INTERVAL = 0.2
#: How long after the flood the resident memory is read again (what the task keeps as its new baseline).
SETTLE_SECONDS = 5.0
#: The least share of the fewest clients' batches a second that more clients of the same batches are served.
GOODPUT_SHARE = 0.5


def batch_body(pad: int) -> bytes:
    body = json.dumps({"records": [dict(DEFAULT_RECORD)] * DEFAULT_BATCH_LIMIT}).encode()
    return body + b" " * max(0, pad - len(body))


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """One answer's status and whether it closes the connection (its body read and dropped)."""
    status = int((await reader.readuntil(b"\r\n")).split()[1])
    length, close = 0, False
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        close = close or (name.lower() == "connection" and value.strip().lower() == "close")
    await reader.readexactly(length)
    return status, close


async def _client(port: int, body: bytes, until: float, outcomes: collections.Counter[str]) -> None:
    request = (
        f"POST /predict/batch HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < until:
        try:
            if streams is None:
                streams = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = streams
            writer.write(request)
            await writer.drain()
            status, close = await asyncio.wait_for(_answer(reader), 60)
            outcomes[str(status)] += 1
            if close:
                writer.close()
                streams = None
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            outcomes[type(error).__name__] += 1
            streams = None
            await asyncio.sleep(0.1)
    if streams is not None:
        streams[1].close()


async def _prober(port: int, until: float, latencies: list[float], failures: list[str]) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            status, _ = await asyncio.wait_for(_answer(reader), 10)
            writer.close()
            latencies.append(time.perf_counter() - started)
            if status != 200:
                failures.append(str(status))
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            failures.append(type(error).__name__)
        await asyncio.sleep(PROBE_INTERVAL)


async def _flood(port: int, clients: int, seconds: float, body: bytes) -> dict[str, Any]:
    until = time.monotonic() + seconds
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    failures: list[str] = []
    await asyncio.gather(
        _prober(port, until, latencies, failures), *(_client(port, body, until, outcomes) for _ in range(clients))
    )
    return {
        "answers": dict(outcomes),
        "served_per_second": round(outcomes["200"] / seconds, 2),
        "health_probes": len(latencies),
        "health_failures": failures,
        "health_max_ms": round(1000 * max(latencies), 1) if latencies else None,
    }


def podman_command(env: dict[str, str], memory_mib: int, name: str) -> list[str]:
    """`python -m service` from this checkout in a container limited to `memory_mib` (memory and swap), with the
    host's root as its file system under an overlay (nothing is written to it), on the host's network."""
    limits = ["--memory", f"{memory_mib}m", "--memory-swap", f"{memory_mib}m"]
    files = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
    variables = [item for name_value in env.items() for item in ("-e", "=".join(name_value))]
    return [
        *("podman", "--runtime", "runc", "run", "--rm", "--name", name, "--network", "host", *limits, *files),
        *("-w", str(ROOT), *variables, "--rootfs", "/:O", sys.executable, "-m", "service"),
    ]


def _podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False).stdout.strip()


def run_case(
    env: dict[str, str], clients: int, seconds: float, pad: int, work: Path, limit_mib: int | None
) -> dict[str, Any]:
    port = free_port()
    server_env = service_environment(port, env["MODEL_URI"], env)
    name = f"flood-bench-{port}"
    # In the container only the service's own variables (and the image's OpenMP setting), not this shell's.
    own = env | {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port), "OMP_WAIT_POLICY": "PASSIVE"}
    command = service_command() if limit_mib is None else podman_command(own, limit_mib, name)
    with running(command, server_env, work / "service.log") as process:
        wait_http(f"http://127.0.0.1:{port}/ready", 120, process)
        pid = process.pid if limit_mib is None else int(_podman("inspect", "-f", "{{.State.Pid}}", name))
        idle = memory_mb(pid, "VmRSS")
        flood = asyncio.run(_flood(port, clients, seconds, batch_body(pad)))
        time.sleep(SETTLE_SECONDS)
        alive = Path(f"/proc/{pid}").exists()
        after = memory_mb(pid, "VmRSS") if alive else None
        peak = memory_mb(pid, "VmHWM") if alive else None
        if limit_mib is not None:
            _podman("rm", "-f", name)
    return {
        "clients": clients,
        "seconds": seconds,
        "body_bytes": len(batch_body(pad)),
        "memory_limit_mib": limit_mib,
        "killed": not alive,
        "rss_idle_mb": round(idle, 1),
        "rss_peak_mb": None if peak is None else round(peak, 1),
        f"rss_{SETTLE_SECONDS:g}s_after_mb": None if after is None else round(after, 1),
        **flood,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.batch_flood_memory", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", type=Path, required=True, help="model artifact directory (ml.train --output)")
    parser.add_argument("--memory", type=int, default=512, help="the task's memory in MiB (a Fargate size)")
    parser.add_argument("--service-defaults", action="store_true", help="without the limits the stacks derive")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE added to the server's environment")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="CLIENTS:SECONDS:PAD,... (PAD 0: the plain body)")
    parser.add_argument(
        "--limit-memory",
        action="store_true",
        help="run the server in a podman container limited to --memory (memory and swap); its OOM kill is reported",
    )
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    platform = PlatformSettings(
        environment="bench", region="eu-west-1", image_tag="bench", api={"cpu": 256, "memory": args.memory}
    )
    env = api_environment(platform, DEFAULT_PUBLIC_SUBNETS) | {
        "MODEL_URI": str(args.model.resolve()),
        "SERVICE_ACCESS_LOG": "false",
    }
    if args.service_defaults:
        env = {name: value for name, value in env.items() if name not in service_limits(args.memory).environment()}
    env |= dict(item.split("=", 1) for item in args.env)
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "memory_mib": args.memory}
    results["server_environment"] = {name: value for name, value in env.items() if name != "MODEL_URI"}
    cases = [tuple(case.split(":")) for case in args.cases.split(",")]
    with tempfile.TemporaryDirectory(prefix="flood-bench-") as tmp:
        limit = args.memory if args.limit_memory else None
        results["cases"] = [run_case(env, int(c), float(s), int(p), Path(tmp), limit) for c, s, p in cases]
    results["load_average_at_end"] = os.getloadavg()
    ceiling_mb = args.memory * (1 - RESERVE_FRACTION) * 1024 * 1024 / 1e6
    checks = {
        f"{case['clients']} clients, {case['body_bytes']:,} B: alive, peak RSS < {ceiling_mb:.0f} MB": (
            not case["killed"] and case["rss_peak_mb"] < ceiling_mb
        )
        for case in results["cases"]
    }
    fewest: dict[int, dict[str, Any]] = {}
    for case in results["cases"]:
        base = fewest.setdefault(case["body_bytes"], case)
        if case is not base:
            share = f"served >= {GOODPUT_SHARE:.0%} of {base['clients']} clients' rate"
            name = f"{case['clients']} clients, {case['body_bytes']:,} B: {share}"
            checks[name] = case["served_per_second"] >= GOODPUT_SHARE * base["served_per_second"]
    return report(results, checks, args.output)


if __name__ == "__main__":
    sys.exit(main())
