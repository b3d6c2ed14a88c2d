"""Batch predictions from a CSV file: read it, send it in chunks the service accepts, report row-level problems.

The service is the judge of every value (it validates against `ml.schema`); this module only checks the file's
shape, keeps each row's original text to show next to its errors, and maps the service's record index back to a
row number of the file.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from frontend.client import ApiClient, InvalidInputError
from ml.contract import RESULT_COLUMNS, PredictionResponse
from ml.schema import FEATURE_NAMES

#: How an empty cell is shown in the list of problems.
EMPTY = "(empty)"


class CsvFileError(ValueError):
    """The file cannot be used at all (not CSV text, missing columns, too many rows); the message says why."""


@dataclass(frozen=True)
class CsvTable:
    """The uploaded file: its header and rows as text, in file order."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def record(self, i: int) -> dict[str, float | int | str | None]:
        """Row `i` as the service expects it: the 21 features, numbers where the text is a number."""
        row = dict(zip(self.columns, self.rows[i], strict=True))
        return {name: _number(row[name]) for name in FEATURE_NAMES}

    def value(self, i: int, column: str) -> str:
        return dict(zip(self.columns, self.rows[i], strict=True)).get(column, "")


@dataclass(frozen=True)
class RowError:
    """One invalid value: `row` counts data rows from 1 (the line under the header)."""

    row: int | None
    column: str
    value: str
    reason: str


@dataclass(frozen=True)
class BatchOutcome:
    """Either predictions for every row, or the rows that must be fixed first."""

    predictions: tuple[PredictionResponse, ...]
    errors: tuple[RowError, ...]


def read_csv(content: bytes, *, max_rows: int) -> CsvTable:
    """Parse an uploaded file; refuse it with a plain message when it cannot be used."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFileError("The file is not UTF-8 text. Save it as CSV (UTF-8) and upload it again.") from exc
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        rows = [tuple(cell.strip() for cell in row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise CsvFileError(f"The file is not valid CSV: {exc}.") from exc
    if not header:
        raise CsvFileError("The file is empty. It needs a header with the 21 column names, then one row per person.")
    columns = tuple(name.strip() for name in header)
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise CsvFileError(
            f"The file lacks {len(missing)} required column(s): {', '.join(missing)}. "
            f"The header must name all 21: {', '.join(FEATURE_NAMES)}."
        )
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise CsvFileError(f"These columns appear more than once: {', '.join(duplicated)}. Keep one of each.")
    if not rows:
        raise CsvFileError("The file has a header but no rows.")
    if len(rows) > max_rows:
        raise CsvFileError(f"The file has {len(rows):,} rows; at most {max_rows:,} are accepted. Split it up.")
    for number, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise CsvFileError(
                f"Row {number} has {len(row)} values but the header has {len(columns)} columns. "
                "Check for missing or extra commas."
            )
    return CsvTable(columns, tuple(rows))


def predict_table(
    client: ApiClient,
    table: CsvTable,
    *,
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> BatchOutcome:
    """Send every row in chunks of `batch_size`; collect all row errors before giving up on predictions.

    Service failures other than invalid input (down, slow, not ready) propagate as `ApiError` exceptions.
    """
    predictions: list[PredictionResponse] = []
    errors: list[RowError] = []
    total = len(table.rows)
    for start in range(0, total, batch_size):
        indices = range(start, min(start + batch_size, total))
        try:
            predictions.extend(client.predict_batch([table.record(i) for i in indices]))
        except InvalidInputError as exc:
            errors.extend(_row_errors(table, exc, start))
        if progress is not None:
            progress(indices.stop, total)
    if errors:
        return BatchOutcome((), tuple(errors))
    return BatchOutcome(tuple(predictions), ())


def results_frame(table: CsvTable, predictions: Sequence[PredictionResponse]) -> pd.DataFrame:
    """The uploaded columns, then `ml.contract.RESULT_COLUMNS`: the same file `python -m ml.predict` writes."""
    frame = pd.DataFrame(list(table.rows), columns=list(table.columns))
    results = pd.DataFrame([p.result_row() for p in predictions], columns=list(RESULT_COLUMNS))
    return pd.concat([frame, results], axis=1)


def errors_frame(errors: Sequence[RowError]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Row": [e.row for e in errors],
            "Column": [e.column for e in errors],
            "Value": [e.value for e in errors],
            "Problem": [e.reason for e in errors],
        }
    )


def _row_errors(table: CsvTable, exc: InvalidInputError, start: int) -> list[RowError]:
    if not exc.errors:
        return [RowError(None, "", "", exc.message)]
    errors = []
    for e in exc.errors:
        if e.index is None:
            errors.append(RowError(None, e.field, "", e.reason))
            continue
        i = start + e.index
        errors.append(RowError(i + 1, e.field, table.value(i, e.field) or EMPTY, e.reason))
    return errors


def _number(text: str) -> float | int | str | None:
    """The cell as a number when it is one; otherwise the text, for the service to explain what is wrong."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if value.is_integer() else value
