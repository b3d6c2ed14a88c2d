"""Batch CSV: file-level problems in plain words, chunks the service accepts, errors mapped to file rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from frontend.batch import CsvFileError, predict_table, read_csv, results_frame
from frontend.client import ApiClient
from ml import predict as predict_cli
from ml.contract import RESULT_COLUMNS
from ml.schema import CLASSES, DEFAULT_RECORD, FEATURE_NAMES


def csv_bytes(rows: list[dict[str, object]], columns: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def default_row(**changes: object) -> dict[str, object]:
    return {**DEFAULT_RECORD, **changes}


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that remembers the size of every batch request."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/predict/batch":
            self.batch_sizes.append(request.read().count(b'"HighBP"'))
        return super().handle_request(request)


def test_numbers_are_sent_as_numbers_and_extra_columns_kept() -> None:
    table = read_csv(csv_bytes([default_row(id="a-1", BMI="31.5", Age="9.0")]), max_rows=10)
    record = table.record(0)
    assert list(record) == list(FEATURE_NAMES)
    assert record["BMI"] == 31.5
    assert record["Age"] == 9
    assert isinstance(record["Age"], int)
    assert table.value(0, "id") == "a-1"


def test_text_and_blanks_are_passed_on_for_the_service_to_judge() -> None:
    table = read_csv(csv_bytes([default_row(Sex="male", Income="")]), max_rows=10)
    assert table.record(0)["Sex"] == "male"
    assert table.record(0)["Income"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00bad", "UTF-8"),
        (csv_bytes([{"HighBP": 1, "BMI": 20}]), "lacks 19 required column"),
        (",".join(FEATURE_NAMES).encode() + b"\n", "no rows"),
        (",".join(FEATURE_NAMES).encode() + b"\n1,2,3\n", "Row 1 has 3 values"),
        ((",".join(FEATURE_NAMES) + ",BMI").encode() + b"\n", "more than once: BMI"),
    ],
)
def test_unusable_files_are_refused_with_a_reason(content: bytes, message: str) -> None:
    with pytest.raises(CsvFileError, match=message):
        read_csv(content, max_rows=10)


def test_row_limit_is_enforced() -> None:
    with pytest.raises(CsvFileError, match="at most 2 are accepted"):
        read_csv(csv_bytes([default_row()] * 3), max_rows=2)


def test_large_file_goes_in_chunks_and_keeps_row_order(api_url: str) -> None:
    rows = [default_row(Age=1 + i % 13, BMI=18 + i % 30) for i in range(2_345)]
    table = read_csv(csv_bytes(rows), max_rows=10_000)
    transport = CountingTransport()
    client = ApiClient(api_url, timeout_seconds=30, connect_timeout_seconds=2, transport=transport)
    seen: list[int] = []
    outcome = predict_table(client, table, batch_size=1_000, progress=lambda done, _: seen.append(done))
    assert transport.batch_sizes == [1_000, 1_000, 345]
    assert seen == [1_000, 2_000, 2_345]
    assert outcome.errors == ()
    assert len(outcome.predictions) == len(rows)
    for i in (0, 999, 1_000, 2_344):  # either side of each chunk boundary
        single = client.predict(table.record(i), explain=False)
        assert outcome.predictions[i].probabilities.ordered() == pytest.approx(single.probabilities.ordered())
    frame = results_frame(table, outcome.predictions)
    assert list(frame.columns[: len(FEATURE_NAMES)]) == list(FEATURE_NAMES)
    sums = sum(frame[f"proba_{c.id}"] for c in CLASSES)
    assert sums.round(6).eq(1.0).all()


def test_invalid_values_are_reported_by_file_row_across_chunks(api_url: str) -> None:
    rows = [default_row() for _ in range(25)]
    rows[3] = default_row(GenHlth=7)
    rows[21] = default_row(Sex="male", Income="")
    table = read_csv(csv_bytes(rows), max_rows=100)
    client = ApiClient(api_url, timeout_seconds=30, connect_timeout_seconds=2)
    outcome = predict_table(client, table, batch_size=10)
    assert outcome.predictions == ()
    found = {(e.row, e.column, e.value) for e in outcome.errors}
    assert found == {(4, "GenHlth", "7"), (22, "Sex", "male"), (22, "Income", "(empty)")}
    assert all(e.reason for e in outcome.errors)


def test_the_download_has_the_same_columns_and_answers_as_the_command_line(
    api_url: str, trained_model_dir: Path, tmp_path: Path
) -> None:
    """One CSV behaviour: the UI's download and `python -m ml.predict` keep the user's columns and add the same
    result columns, with the same answers, for the same file."""
    rows = [default_row(patient_id=f"p-{i}", Age=1 + i % 13, BMI=20 + i) for i in range(12)]
    content = csv_bytes(rows, columns=["patient_id", *FEATURE_NAMES])
    (tmp_path / "people.csv").write_bytes(content)
    out = tmp_path / "cli.csv"
    args = ["--model", str(trained_model_dir), "--data", str(tmp_path / "people.csv"), "--output", str(out)]
    assert predict_cli.main(args) == 0
    from_cli = pd.read_csv(out, dtype={"patient_id": str})

    table = read_csv(content, max_rows=100)
    client = ApiClient(api_url, timeout_seconds=30, connect_timeout_seconds=2)
    download = results_frame(table, predict_table(client, table, batch_size=5).predictions).to_csv(index=False)
    from_ui = pd.read_csv(io.StringIO(download), dtype={"patient_id": str})

    assert list(from_ui.columns) == list(from_cli.columns) == ["patient_id", *FEATURE_NAMES, *RESULT_COLUMNS]
    assert list(from_cli["patient_id"]) == [f"p-{i}" for i in range(12)]
    for column in ("patient_id", "prediction", "risk_level", "model_version"):
        assert from_ui[column].tolist() == from_cli[column].tolist(), column
    probabilities = [f"proba_{c.id}" for c in CLASSES] + ["risk"]
    np.testing.assert_allclose(from_ui[probabilities].to_numpy(), from_cli[probabilities].to_numpy(), atol=1e-6)
