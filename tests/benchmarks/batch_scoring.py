"""Batch scoring benchmark: `python -m ml.predict` end to end on 100k, 1M and 10M rows, rows/s and peak RSS.

The inputs are built at run time in a temporary folder, from the real file's rows repeated (its lines copied as
written), or from synthetic rows when the real file is absent; they are never kept. Each size is scored by a fresh
`python -m ml.predict` process (the command a user runs), timed from start to exit, with its peak resident memory
(the kernel's high-water mark for the process, VmHWM). Beside it, the floor: the model's own batch prediction of
the same rows on every core, in this process, so the ratio between the two holds whatever else the machine does.

Targets (issue 24): >= 60,000 rows/s end to end for the 1M-row file, within 1.5x of the model's own speed; peak RSS
<= 400 MB at 1M and at 10M rows.

    uv run python -m tests.benchmarks.batch_scoring --model artifacts/model [--sizes 100000 1000000 10000000]
        [--formats csv csv.gz parquet] [--rounds N] [--spark-rows 1000000] [--output FILE]

`--formats` are the input's and the output's format together (CSV in, CSV out; ...), scored one after the other on
the same rows, and `--rounds N` repeats them in turn N times (the best round of each is kept), so their rows/s
compare side by side on a loaded machine: what writing `.csv.gz` (gzip level `ml.batch.sinks.GZIP_LEVEL`) or
Parquet costs against plain CSV.

`--spark-rows N` also scores an N-row Parquet table on Spark in local mode both ways, `ml.batch.spark`
(mapInPandas over Predictor) and `mlflow.pyfunc.spark_udf` over the pyfunc, and reports the time of each.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ml.batch.sinks import GZIP_LEVEL
from ml.inference.predictor import Predictor
from ml.schema import FEATURE_NAMES, REAL_DATA_FILE
from ml.training.synthetic_data import make_synthetic
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


def _peak_rss_kib(pid: int) -> int:
    """The process's own high-water mark (VmHWM). Not `wait4`'s ru_maxrss: that keeps the peak of the parent's
    memory the child was forked from (this benchmark holds the source rows), across `exec`."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def run_predict(model: str, data: Path, output: Path) -> dict[str, Any]:
    """One `python -m ml.predict` process: wall seconds, rows/s and peak RSS (its VmHWM, read every 20 ms)."""
    command = [sys.executable, "-m", "ml.predict", "--model", model, "--data", str(data), "--output", str(output)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _peak_rss_kib(process.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"ml.predict failed ({process.returncode}): {stderr}")
    rows = int(stdout.split()[1].replace(",", ""))
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mb": round(peak / 1024),
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


def spark_comparison(model: str, folder: Path, rows: int, header: bytes, lines: list[bytes]) -> dict[str, Any]:
    """Both Spark paths on the same Parquet table in local mode: `ml.batch.spark` (mapInPandas over Predictor)
    and `mlflow.pyfunc.spark_udf` over the project's pyfunc, same digest pin; their answers must agree."""
    import mlflow
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as sf
    from pyspark.sql.types import StructType

    from ml.batch import spark as batch_spark
    from ml.training.mlflow_model import PIN_KEY
    from ml.training.tracking import PYFUNC_LOADER

    data = build_input(folder, rows, "parquet", header, lines)
    predictor = Predictor.load(model)
    pyfunc = folder / "pyfunc"
    mlflow.pyfunc.save_model(str(pyfunc), loader_module=PYFUNC_LOADER, data_path=model)
    started = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{len(os.sched_getaffinity(0))}]")
        .config("spark.ui.enabled", "false")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    session_seconds = time.perf_counter() - started
    table = spark.read.parquet(str(data))
    started = time.perf_counter()
    batch_spark.check_table(table, str(data))
    check_seconds = time.perf_counter() - started
    started = time.perf_counter()
    summary = batch_spark.score_table(spark, model, str(data), str(folder / "map_in_pandas"))
    map_seconds = time.perf_counter() - started - check_seconds  # score_table checks the table too
    results = StructType(batch_spark.output_schema(table, predictor).fields[len(table.columns) :])
    udf = mlflow.pyfunc.spark_udf(
        spark, str(pyfunc), result_type=results, env_manager="local", model_config={PIN_KEY: predictor.digest}
    )
    started = time.perf_counter()
    scored = table.withColumn("result", udf(sf.struct(*FEATURE_NAMES))).select("*", "result.*").drop("result")
    scored.write.parquet(str(folder / "spark_udf"))
    udf_seconds = time.perf_counter() - started
    spark.stop()
    one = pq.read_table(folder / "map_in_pandas").to_pandas()
    other = pq.read_table(folder / "spark_udf").to_pandas()
    agree = bool(
        (one["prediction"].to_numpy() == other["prediction"].to_numpy()).all()
        and np.allclose(one["risk"], other["risk"], rtol=0, atol=1e-12)
    )
    return {
        "rows": summary.rows,
        "session_start_seconds": round(session_seconds, 1),
        "check_seconds": round(check_seconds, 1),
        "map_in_pandas_seconds": round(map_seconds, 1),
        "map_in_pandas_rows_per_second": round(summary.rows / map_seconds),
        "spark_udf_seconds": round(udf_seconds, 1),
        "spark_udf_rows_per_second": round(summary.rows / udf_seconds),
        "answers_agree": agree,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "artifacts" / "model"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--formats", nargs="+", default=["csv"], choices=["csv", "csv.gz", "parquet"])
    parser.add_argument("--rounds", type=int, default=1, help="score each size and format this many times, in turn")
    parser.add_argument("--spark-rows", type=int, default=0, help="also compare the two Spark paths on this many rows")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    header, lines, origin = _source_lines()
    load_before = os.getloadavg()
    floor = model_floor(args.model, header, lines)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        folder = Path(tmp)
        for rows in args.sizes:
            for round_ in range(args.rounds):
                for fmt in args.formats:
                    data = build_input(folder, rows, fmt, header, lines)
                    out_suffix = ".parquet" if fmt == "parquet" else f".{fmt}"
                    result = run_predict(args.model, data, folder / f"out-{rows}{out_suffix}")
                    best = runs.get(f"{rows}/{fmt}")
                    if best is None or result["rows_per_second"] > best["rows_per_second"]:
                        runs[f"{rows}/{fmt}"] = result
                    print(
                        f"{rows:>10,} rows {fmt:<8} round {round_ + 1}: {result['rows_per_second']:>8,} rows/s  "
                        f"peak RSS {result['peak_rss_mb']:>4} MB  ({result['seconds']} s, "
                        f"{result['output_mb']} MB out)",
                        file=sys.stderr,
                    )
                    for path in folder.glob("out-*"):
                        path.unlink()
        spark = spark_comparison(args.model, folder, args.spark_rows, header, lines) if args.spark_rows else None
    results: dict[str, Any] = {
        "input": origin,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model_floor_rows_per_second": round(floor),
        "gzip_level": GZIP_LEVEL,
        "rounds": args.rounds,
        "runs": runs,
        "spark_local_mode": spark,
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
    if spark:
        checks["Spark: spark_udf and mapInPandas give the same answers"] = spark["answers_agree"]
    return report(results, checks, args.output)


if __name__ == "__main__":
    raise SystemExit(main())
