"""Scoring a Parquet table on Spark (`ml.batch.spark`, `python -m ml.predict_spark`), in local mode.

One local Spark session serves the module (starting one costs seconds of JVM start-up). Its answers must equal
`python -m ml.predict`'s, row for row, for the same table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from ml import predict_spark
from ml.batch.scoring import score_file
from ml.batch.spark import score_table
from ml.contract import RESULT_COLUMNS
from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor
from ml.training.data import DataValidationError
from ml.training.synthetic_data import make_synthetic
from tests.servers import ROOT

#: Trains models, runs MLflow, Spark or `make demo`: the whole suite runs it, `make test-quick` leaves it out.
pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table of two Parquet files (two partitions), an id and the label with the features."""
    folder = tmp_path_factory.mktemp("spark") / "members"
    folder.mkdir()
    frame = make_synthetic(3_000, seed=12)
    frame.insert(0, "member_id", [f"m{i:05d}" for i in range(len(frame))])
    frame.iloc[:1_800].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[1_800:].to_parquet(folder / "part-1.parquet", index=False)
    return folder


def test_spark_answers_equal_the_local_command_row_for_row(
    spark: SparkSession, trained_model_dir: Path, table: Path, tmp_path: Path
) -> None:
    predictor = Predictor.load(trained_model_dir)
    summary = score_table(spark, str(trained_model_dir), str(table), str(tmp_path / "scored"))
    assert summary.rows == 3_000
    on_spark = pq.read_table(tmp_path / "scored")

    local = pq.read_table(table).to_pandas()
    local.to_parquet(tmp_path / "all.parquet", index=False)
    score_file(predictor, tmp_path / "all.parquet", tmp_path / "local.parquet")
    expected = pq.read_table(tmp_path / "local.parquet")

    assert on_spark.schema.names == expected.schema.names == [*local.columns, *RESULT_COLUMNS]
    for name in RESULT_COLUMNS:
        assert on_spark.schema.field(name).type == expected.schema.field(name).type, name
    got = on_spark.to_pandas().sort_values("member_id", ignore_index=True)
    want = expected.to_pandas()
    assert got["member_id"].tolist() == want["member_id"].tolist()
    for name in RESULT_COLUMNS:
        if got[name].dtype.kind == "f":
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-12, err_msg=name)
        else:
            assert got[name].tolist() == want[name].tolist(), name


def test_another_model_than_the_pinned_one_is_refused_before_anything_is_read(
    spark: SparkSession, trained_model_dir: Path, table: Path, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=r"the pinned digest is 0{64}"):
        score_table(spark, str(trained_model_dir), str(table), str(tmp_path / "out"), expected_sha256="0" * 64)
    assert not (tmp_path / "out").exists()


def test_invalid_values_are_reported_by_file_and_row_and_nothing_is_written(
    spark: SparkSession, trained_model_dir: Path, tmp_path: Path
) -> None:
    frame = make_synthetic(500, seed=3)
    frame["BMI"] = frame["BMI"].astype(float)
    frame.loc[[10, 400], "BMI"] = [np.nan, 250.0]
    frame.loc[7, "Age"] = 14
    data = tmp_path / "bad.parquet"
    frame.to_parquet(data, index=False)
    with pytest.raises(DataValidationError) as caught:
        score_table(spark, str(trained_model_dir), str(data), str(tmp_path / "out"))
    found = {(p.column, p.reason.split(":")[0]): (p.rows, p.values, p.count) for p in caught.value.problems}
    assert found == {
        ("BMI", "missing value"): ((11,), ("",), 1),
        ("BMI", "out of range"): ((401,), ("250.0",), 1),
        ("Age", "out of range"): ((8,), ("14",), 1),
    }
    assert not (tmp_path / "out").exists()


def test_text_feature_columns_are_refused_with_what_to_do(
    spark: SparkSession, trained_model_dir: Path, tmp_path: Path
) -> None:
    frame = make_synthetic(20, seed=3).astype({"BMI": str})
    frame.to_parquet(tmp_path / "text.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"BMI is string\. Cast them"):
        score_table(spark, str(trained_model_dir), str(tmp_path / "text.parquet"), str(tmp_path / "out"))


def test_the_command_line_scores_and_sums_up(
    spark: SparkSession, trained_model_dir: Path, table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(trained_model_dir), "--data", str(table), "--output", str(tmp_path / "cli")]
    assert predict_spark.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote 3,000 predictions to {tmp_path / 'cli'}")
    assert "SYNTHETIC" in out
    assert pd.read_parquet(tmp_path / "cli").shape[0] == 3_000
    assert predict_spark.main(args) == 2  # the output exists now: refused, not overwritten
    assert "error: " in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- review 2, finding 3 and 6


def test_the_command_runs_its_python_workers_with_its_own_interpreter(
    trained_model_dir: Path, table: Path, tmp_path: Path
) -> None:
    """Run by the venv's python outside `uv run` (cron, systemd), the workers ran `python3` from PATH, which has
    no pandas: the run failed after the whole check pass."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin"}  # no .venv/bin
    command = [sys.executable, "-m", "ml.predict_spark", "--model", str(trained_model_dir), "--data", str(table)]
    done = subprocess.run(
        [*command, "--output", str(tmp_path / "out")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert pq.read_table(tmp_path / "out").num_rows == 3_000


def test_a_file_that_is_not_parquet_is_refused_without_a_java_trace(
    spark: SparkSession, trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "members.csv"
    make_synthetic(20, seed=3).to_csv(data, index=False)
    with pytest.raises(DataValidationError, match=r"cannot be read as a Parquet table \(.*is not a Parquet file"):
        score_table(spark, str(trained_model_dir), str(data), str(tmp_path / "out"))  # was a Py4JJavaError
    args = ["--model", str(trained_model_dir), "--data", str(data), "--output", str(tmp_path / "out")]
    assert predict_spark.main(args) == 2
    err = capsys.readouterr().err
    assert "score a CSV file with python -m ml.predict" in err
    assert "\tat " not in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_odd_column_names_and_zoned_timestamps_are_kept(
    spark: SparkSession, trained_model_dir: Path, tmp_path: Path
) -> None:
    """A column named `member.id` could not be selected, one named `_metadata` hid Spark's file metadata, and a
    zone-aware timestamp came back as naive INT96 in UTC (01:30 New York read as 06:30)."""
    frame = make_synthetic(200, seed=5)
    frame.insert(0, "member.id", [f"m{i:04d}" for i in range(len(frame))])
    frame["when"] = pd.date_range("2020-03-08 01:30", periods=len(frame), freq="min", tz="America/New_York")
    frame["_metadata"] = "kept"
    frame.to_parquet(tmp_path / "odd.parquet", index=False)
    summary = score_table(spark, str(trained_model_dir), str(tmp_path / "odd.parquet"), str(tmp_path / "scored"))
    assert summary.rows == 200
    scored = pq.read_table(tmp_path / "scored")
    assert scored.column_names == [*frame.columns, *RESULT_COLUMNS]
    assert scored.schema.field("when").type == pa.timestamp("us", tz="UTC")  # the instant, marked as UTC
    got = scored.to_pandas().sort_values("member.id", ignore_index=True)
    assert (got["when"] == frame["when"]).all()
    assert got["_metadata"].eq("kept").all()

    frame.loc[150, "Age"] = 14
    frame.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(DataValidationError) as caught:
        score_table(spark, str(trained_model_dir), str(tmp_path / "bad.parquet"), str(tmp_path / "out"))
    assert [(p.column, p.rows, p.values) for p in caught.value.problems] == [("Age", (151,), ("14",))]
