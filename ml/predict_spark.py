"""`python -m ml.predict_spark`: score a Parquet table on Spark with a registered model (`ml.batch.spark`).

Run directly, it starts a local Spark session on this machine's cores; under `spark-submit` (EMR, Databricks, any
cluster) it joins the session the cluster gives it. See the docs' batch-scoring page for the cluster command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ml.batch.command import sha256_digest, summary_line
from ml.contract import RESULT_COLUMNS
from ml.inference.artifact import ArtifactError
from ml.training.data import DataValidationError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.predict_spark",
        description="Score every row of a Parquet table on Spark with the model; the same result columns and "
        "digest pin as python -m ml.predict. Nothing is written unless every row is valid.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="model artifact, read by the driver and broadcast to the executors: a directory, s3://bucket/prefix, "
        "models:/name@alias or runs:/id/model",
    )
    parser.add_argument(
        "--data", required=True, help="Parquet file or folder with the numeric feature columns (any Spark path)"
    )
    parser.add_argument(
        "--output",
        required=True,
        help=f"Parquet folder to create: the table's columns, then {','.join(RESULT_COLUMNS)} (refused if it exists)",
    )
    parser.add_argument(
        "--expect-sha256",
        type=sha256_digest,
        help="refuse the model unless its digest is this one (what ml.train prints; checked before parsing it)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    from ml.batch.spark import score_table, spark_reason

    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit: this process starts a local Spark, whose
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers would run `python3` from PATH otherwise
    spark = SparkSession.builder.appName("diabetes-status-scoring").getOrCreate()  # spark-submit's, or local
    try:
        summary = score_table(spark, args.model, args.data, args.output, expected_sha256=args.expect_sha256)
    except (ArtifactError, DataValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PySparkException, Py4JJavaError) as exc:  # an output that exists, a worker that failed, ...
        print(f"error: Spark: {spark_reason(exc)}", file=sys.stderr)
        return 2
    print(summary_line(summary.rows, summary.output, summary.seconds, summary.model_version, summary.synthetic))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
