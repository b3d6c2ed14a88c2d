"""Batch scoring benchmark: `python -m ml.predict` end to end on 100k, 1M and 10M rows, rows/s and peak RSS.

The inputs are built at run time in a temporary folder, from the real file's rows repeated (its lines copied as
written), or from synthetic rows when the real file is absent; they are never kept. Each size is scored by a fresh
`python -m ml.predict` process (the command a user runs), timed from start to exit, its peak resident memory read
from the kernel when it ends (`wait4`). Beside it, the floor: LightGBM's own batch prediction of the same rows on
every core, in this process, so the ratio between the two holds whatever else the machine is doing.

Targets (issue 24): >= 60,000 rows/s end to end for the 1M-row file, within 1.5x of the model's own speed; peak RSS
<= 400 MB at 1M and at 10M rows.

    uv run python -m tests.benchmarks.batch_scoring --model artifacts/model [--sizes 100000 1000000 10000000]
        [--formats csv parquet csv.gz] [--output FILE]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ml.inference.predictor import Predictor
from ml.schema import FEATURE_NAMES, REAL_DATA_FILE
from ml.training.synthetic import make_synthetic
from tests.benchmarks.reporting import report
from tests.servers import ROOT

SIZES = (100_000, 1_000_000, 10_000_000)
MIN_ROWS_PER_SECOND = 60_000
MAX_RSS_MB = 400
MAX_SLOWDOWN = 1.5


def _source_lines() -> tuple[bytes, list[bytes], str]:
    """The header and data lines to repeat: the real file's, else 100,000 synthetic rows'."""
    real = ROOT / "data" / f"{REAL_DATA_FILE}.gz"
    if real.is_file():
        with gzip.open(real, "rb") as handle:
            lines = handle.read().splitlines(keepends=True)
        return lines[0], lines[1:], f"the real file's {len(lines) - 1:,} rows, repeated"
    text = make_synthetic(100_000, seed=1).to_csv(index=False).encode()
    lines = text.splitlines(keepends=True)
    return lines[0], lines[1:], "100,000 SYNTHETIC rows, repeated (the real file is absent)"


def build_input(folder: Path, rows: int, fmt: str, header: bytes, lines: list[bytes]) -> Path:
    """`rows` data rows: the source lines over and over, as CSV, CSV.gz or Parquet."""
    path = folder / f"input-{rows}.csv"
    if not path.exists():
        with open(path, "wb") as out:
            out.write(header)
            whole, rest = divmod(rows, len(lines))
            block = b"".join(lines)
            for _ in range(whole):
                out.write(block)
            out.write(b"".join(lines[:rest]))
    if fmt == "csv":
        return path
    if fmt == "csv.gz":
        packed = path.with_suffix(".csv.gz")
        subprocess.run(["gzip", "-k", "-1", "-f", str(path)], check=True)
        return packed
    parquet = path.with_suffix(".parquet")
    reader = pa_csv.open_csv(path)
    with pq.ParquetWriter(parquet, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    return parquet


def run_predict(model: str, data: Path, output: Path) -> dict[str, Any]:
    """One `python -m ml.predict` process: wall seconds, rows/s and peak RSS (kernel's ru_maxrss)."""
    command = [sys.executable, "-m", "ml.predict", "--model", model, "--data", str(data), "--output", str(output)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = (stream.read().decode() for stream in (process.stdout, process.stderr))  # type: ignore[union-attr]
    if process.returncode != 0:
        raise RuntimeError(f"ml.predict failed ({process.returncode}): {stderr}")
    rows = int(stdout.split()[1].replace(",", ""))
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "input_mb": round(data.stat().st_size / 2**20, 1),
        "output_mb": round(output.stat().st_size / 2**20, 1),
        "summary": stdout.strip(),
    }


def model_floor(model: str, header: bytes, lines: list[bytes], rows: int = 1_000_000) -> float:
    """LightGBM's own batch prediction, every core, on `rows` of the same rows: rows/s (best of 3)."""
    names = header.decode().strip().split(",")
    sample = np.loadtxt(lines[:100_000], delimiter=",", dtype=np.float64)
    matrix = np.ascontiguousarray(sample[:, [names.index(f) for f in FEATURE_NAMES]])
    matrix = np.ascontiguousarray(np.resize(matrix, (rows, matrix.shape[1])))
    predictor = Predictor.load(model, batch_threads=len(os.sched_getaffinity(0)))
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for start in range(0, rows, 65_536):
            predictor.predict(matrix[start : start + 65_536])
        best = min(best, time.perf_counter() - started)
    return rows / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "artifacts" / "model"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--formats", nargs="+", default=["csv"], choices=["csv", "csv.gz", "parquet"])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    header, lines, origin = _source_lines()
    load_before = os.getloadavg()
    floor = model_floor(args.model, header, lines)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        folder = Path(tmp)
        for rows in args.sizes:
            for fmt in args.formats:
                data = build_input(folder, rows, fmt, header, lines)
                out_suffix = ".parquet" if fmt == "parquet" else f".{fmt}"
                result = run_predict(args.model, data, folder / f"out-{rows}{out_suffix}")
                runs[f"{rows}/{fmt}"] = result
                print(
                    f"{rows:>10,} rows {fmt:<8} {result['rows_per_second']:>8,} rows/s  "
                    f"peak RSS {result['peak_rss_mb']:>4} MB  ({result['seconds']} s)",
                    file=sys.stderr,
                )
                for path in folder.glob("out-*"):
                    path.unlink()
    results: dict[str, Any] = {
        "input": origin,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model_floor_rows_per_second": round(floor),
        "runs": runs,
    }
    checks: dict[str, bool] = {}
    million = runs.get("1000000/csv")
    if million:
        checks[f"1M rows: >= {MIN_ROWS_PER_SECOND:,} rows/s end to end"] = (
            million["rows_per_second"] >= MIN_ROWS_PER_SECOND
        )
        checks[f"1M rows: within {MAX_SLOWDOWN}x of the model's own batch speed"] = (
            floor / million["rows_per_second"] <= MAX_SLOWDOWN
        )
    for key, run in runs.items():
        if run["rows"] >= 1_000_000:
            checks[f"{key}: peak RSS <= {MAX_RSS_MB} MB"] = run["peak_rss_mb"] <= MAX_RSS_MB
    return report(results, checks, args.output)


if __name__ == "__main__":
    raise SystemExit(main())
