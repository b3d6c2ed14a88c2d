"""Score a Parquet table on Spark with the registered model: the result columns and digest pin of `ml.predict`.

How the model reaches the executors: the driver reads the artifact's files from wherever the model is (a folder,
`s3://`, `models:/name@alias`), refuses them unless their digest is the pinned one, verifies them as the service
does, and broadcasts their bytes (about 2 MB). Each executor's Python worker loads that broadcast once, through the
same `load_files` with the same pin, and keeps the `Predictor` for every batch it scores (`mapInPandas`, Arrow
batches). The executors need this package and its runtime libraries (numpy, LightGBM, pandas, pyarrow); they need
neither MLflow nor access to the model store.

Why `mapInPandas` over `Predictor` and not `mlflow.pyfunc.spark_udf`: both give the same answers (a test checks
it), but the UDF imports MLflow in every Python worker and copies the model to each executor through Spark's files,
and it scored more slowly here (see the batch-scoring page of the docs for the measurement).

Every value is checked before anything is scored, with the rules of `ml.schema`, in one Spark pass; a table with
invalid values is refused with the first rows of each problem (file and row) and counts, and nothing is written.
The feature columns must be numeric (integer, floating or decimal), as a data platform's Parquet tables are.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from py4j.protocol import Py4JJavaError
from pyspark import Broadcast
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import NumericType, StructField, StructType

from ml.batch.results import result_columns, result_frame
from ml.contract import clashing_columns
from ml.inference.artifact import load_files
from ml.inference.loader import read_artifact_files
from ml.inference.predictor import Predictor
from ml.schema import DEFAULT_RECORD, FEATURE_NAMES, FEATURES, Feature
from ml.training.data import MAX_ROWS_SHOWN, ColumnProblem, DataValidationError, check_columns, describe_problems

#: Spark's hidden file metadata: where each row comes from, for the problems a table is refused with.
_METADATA = "_metadata"
#: Timestamps written as Parquet's UTC-adjusted microseconds, not Spark's default INT96, which readers take for
#: local times without a zone (a zone-aware column would come back shifted and naive).
_TIMESTAMPS = ("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
#: Executor-side: the Predictor of each digest this Python worker has loaded.
_LOADED: dict[str, Predictor] = {}


@dataclass(frozen=True)
class SparkSummary:
    rows: int
    seconds: float
    output: str
    model_version: str
    synthetic: bool


def score_table(
    spark: SparkSession, model_uri: str, data: str, output: str, *, expected_sha256: str | None = None
) -> SparkSummary:
    """Write `data`'s columns then `ml.contract.RESULT_COLUMNS` for every row to the Parquet folder `output`.

    `data` is anything `spark.read.parquet` reads (a file, a folder, `s3://...`). An existing `output` is refused;
    invalid values raise `DataValidationError` before anything is scored or written.
    """
    started = time.perf_counter()
    files = read_artifact_files(model_uri)
    predictor = Predictor(load_files(files, model_uri, expected_sha256))
    table = read_table(spark, data)
    rows = check_table(table, data)
    scorer = _Scorer(spark.sparkContext.broadcast(dict(files)), predictor.digest, tuple(table.columns))
    positional = table.toDF(*(f"c{i}" for i in range(len(table.columns))))  # mapInPandas selects every column by
    scored = positional.mapInPandas(scorer, output_schema(table, predictor))  # name: `member.id` would not resolve
    key, value = _TIMESTAMPS
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        scored.write.mode("errorifexists").parquet(output)
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
    manifest = predictor.manifest
    return SparkSummary(rows, time.perf_counter() - started, output, manifest.model_version, manifest.data.synthetic)


@dataclass(frozen=True)
class _Scorer:
    """What each task runs: the broadcast artifact, loaded once per Python worker, then every batch scored.

    A module-level class, so Spark pickles it by reference and `_LOADED` is the worker's own module global.
    """

    model: Broadcast[dict[str, bytes]]
    digest: str
    columns: tuple[str, ...]  # the table's own names, given back to each batch

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        predictor = _LOADED.get(self.digest)
        if predictor is None:
            artifact = load_files(self.model.value, "the broadcast model", self.digest)
            predictor = _LOADED[self.digest] = Predictor(artifact)
        for batch in batches:
            batch.columns = list(self.columns)
            yield pd.concat([batch, result_frame(predictor, batch)], axis=1)


def output_schema(table: DataFrame, predictor: Predictor) -> StructType:
    """The table's columns, then the result columns with the Arrow types the local writers give them."""
    features = np.array([[DEFAULT_RECORD[name] for name in FEATURE_NAMES]], dtype=np.float64)
    results = [
        StructField(name, from_arrow_type(pa.array(values).type))
        for name, values in result_columns(features, predictor.predict(features), predictor.manifest).items()
    ]
    return StructType([*table.schema.fields, *results])


def read_table(spark: SparkSession, data: str) -> DataFrame:
    """The Parquet table at `data`; anything else (a CSV file, a missing path) is a `DataValidationError`."""
    try:
        return spark.read.parquet(data)
    except (PySparkException, Py4JJavaError) as exc:
        raise DataValidationError(
            f"{data} cannot be read as a Parquet table ({spark_reason(exc)}). The Spark path reads Parquet (a file, "
            "a folder of part files, s3://...); score a CSV file with python -m ml.predict, or convert it to Parquet."
        ) from None


def spark_reason(exc: Exception) -> str:
    """Spark's own message in one line, without the Java stack trace a `Py4JJavaError` carries."""
    if isinstance(exc, Py4JJavaError):
        cause = exc.java_exception
        while cause.getCause() is not None:
            cause = cause.getCause()
        text = str(cause.getMessage() or cause.toString())
    else:
        text = str(exc)
    text = text.split("\n\tat ")[0].split("\nJVM stacktrace:")[0]
    if "Traceback (most recent call last)" in text:  # a Python worker's error: its last line says what it was
        last = [line for line in text.splitlines() if line.strip() and not line[0].isspace()][-1]
        text = f"a Python worker failed: {last}"
    return " ".join(text.split())


def check_table(table: DataFrame, source: str) -> int:
    """The table's rows, once every column and value is known to be valid (else `DataValidationError`)."""
    check_columns(table.columns, "ignore", source, "keep")
    clashes = clashing_columns(table.columns)
    if clashes:
        raise DataValidationError(
            f"{source} has column(s) {', '.join(clashes)}, which the output writes; rename them and run again"
        )
    types = {field.name: field.dataType for field in table.schema.fields}
    not_numbers = [name for name in FEATURE_NAMES if not isinstance(types[name], NumericType)]
    if not_numbers:
        raise DataValidationError(
            f"{source}: the Spark path reads numeric feature columns; {', '.join(not_numbers)} "
            f"{'is' if len(not_numbers) == 1 else 'are'} {types[not_numbers[0]].simpleString()}. Cast them "
            "(e.g. CAST(BMI AS DOUBLE)) or score the file with `python -m ml.predict`."
        )
    checks = {(f.name, reason): condition for f in FEATURES for reason, condition in _problems(f).items()}
    counts = table.agg(
        sf.count(sf.lit(1)).alias("rows"),
        *(sf.count_if(condition).alias(f"c{i}") for i, condition in enumerate(checks.values())),
    ).first()
    assert counts is not None  # an aggregate always has one row
    found = [
        _first_rows(table, condition, column, reason, counts[f"c{i}"])
        for i, ((column, reason), condition) in enumerate(checks.items())
        if counts[f"c{i}"]
    ]
    if found:
        scope = f"in {counts['rows']:,} rows (row 1 is each file's first row)"
        raise DataValidationError(describe_problems(source, found, scope, outcome="scored or written"), found)
    if not counts["rows"]:
        raise DataValidationError(f"{source} has no rows; it needs at least one. Nothing was written.")
    rows: int = counts["rows"]
    return rows


def _problems(feature: Feature) -> dict[str, Column]:
    """Spark conditions for what `ml.training.data` refuses in a numeric column, by its reason, in its order."""
    value = sf.col(feature.name).cast("double")
    missing = value.isNull() | sf.isnan(value)
    not_number = ~missing & ((value == float("inf")) | (value == float("-inf")))
    finite = ~missing & ~not_number
    problems = {"missing value": missing, "not a number": not_number}
    if feature.integer:
        problems["not a whole number"] = finite & (value != sf.floor(value))
    problems[f"out of range: allowed {feature.allowed_values()}"] = finite & (
        (value < feature.minimum) | (value > feature.maximum)
    )
    return problems


def _first_rows(table: DataFrame, condition: Column, column: str, reason: str, count: int) -> ColumnProblem:
    """The problem with its first rows (by file and row), the value of each and, past one file, the file's name."""
    metadata = table.metadataColumn(_METADATA)  # the hidden column, even where a user column has its name
    first = (
        table.filter(condition)
        .select(
            metadata.getField("file_name").alias("file"),
            metadata.getField("row_index").alias("row"),
            table[f"`{column}`"].cast("string").alias("value"),
        )
        .orderBy("file", "row")
        .limit(MAX_ROWS_SHOWN)
        .collect()
    )
    several_files = len({r["file"] for r in first}) > 1
    values = tuple((r["value"] or "") + (f" in {r['file']}" if several_files else "") for r in first)
    return ColumnProblem(column, reason, tuple(r["row"] + 1 for r in first), values, count)
