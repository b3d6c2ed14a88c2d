"""Batch predictions from a CSV file: read it, send it in chunks the service accepts, report row-level problems.

The service is the judge of every value (it validates against `ml.schema`); this module only checks the file's
shape, keeps each cell's original text (shown next to its errors, returned untouched), maps the service's record
index back to a row number of the file, and writes CSV files a spreadsheet opens as values, never as formulas.

Memory follows the size of the upload, not its content: a file larger than its row limit could need is refused
unread, rows are counted as they are read (reading stops at the first row past the limit), the cells are kept as
Arrow strings, built `CHUNK_ROWS` rows at a time (one Python string per cell took 210 MB for 100,000 rows), and
the answers as a frame of result columns, one service chunk at a time (100,000 response objects took 190 MB).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from frontend.client import ApiClient, InvalidInputError
from frontend.settings import upload_limit_bytes
from ml.contract import RESULT_COLUMNS, PredictionResponse, clashing_columns
from ml.schema import FEATURE_NAMES

#: The most columns a file may have: the features and room for the user's own (an id, a name, notes). The header
#: check is linear, but every row is as wide as the header, and 40,000 columns took a rerun 47 s.
MAX_COLUMNS = 200
#: The longest line read: 200 columns of a few hundred characters each; a longer one is refused before it is parsed.
MAX_LINE_CHARS = 100_000
#: How an empty cell is shown in the list of problems.
EMPTY = "(empty)"
#: Rows parsed into Python strings at once before they become Arrow strings.
CHUNK_ROWS = 2_000
#: Cells a spreadsheet would run as a formula start with one of these (OWASP, CSV injection)...
_FORMULA_START = r"^[=+\-@\t\r]"
#: ...unless they are a plain number, which stays as it is.
_PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


class CsvFileError(ValueError):
    """The file cannot be used at all (not CSV text, missing columns, too many rows); the message says why."""


@dataclass(frozen=True)
class CsvTable:
    """The uploaded file: every cell as its original text (Arrow strings), one row per data row, in file order."""

    frame: pd.DataFrame

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.frame.columns)

    @property
    def row_count(self) -> int:
        return len(self.frame)

    def records(self, start: int, stop: int) -> list[dict[str, float | int | str | None]]:
        """Rows `start` to `stop` as the service expects them: the features, numbers where the text is one."""
        cells = self.frame.iloc[start:stop][list(FEATURE_NAMES)].to_numpy(dtype=object)
        return [{name: _number(text) for name, text in zip(FEATURE_NAMES, row, strict=True)} for row in cells]

    def record(self, i: int) -> dict[str, float | int | str | None]:
        return self.records(i, i + 1)[0]

    def value(self, i: int, column: str) -> str:
        return str(self.frame.at[i, column]) if column in self.frame.columns else ""


@dataclass(frozen=True)
class RowError:
    """One invalid value: `row` counts data rows from 1 (the line under the header)."""

    row: int | None
    column: str
    value: str
    reason: str


@dataclass(frozen=True)
class BatchOutcome:
    """Either the result columns (`ml.contract.RESULT_COLUMNS`) of every row, or the rows that must be fixed first.

    The results are a frame, filled one service chunk at a time: 100,000 response objects took 190 MB.
    """

    predictions: pd.DataFrame
    errors: tuple[RowError, ...]


def read_csv(content: bytes, *, max_rows: int) -> CsvTable:
    """Parse an uploaded file; refuse it with a plain message when it cannot be used.

    A file with more lines than `max_rows` has its rows counted first, without keeping them.
    """
    most = upload_limit_bytes(max_rows)
    if len(content) > most:
        raise CsvFileError(
            f"The file is {len(content) / 2**20:.1f} MB; at most {most // 2**20} MB are accepted (for {max_rows:,} "
            "rows). Split it up."
        )
    try:
        rows = _rows(content)
        columns = _checked_header(next(rows, None))
        if content.count(b"\n") > max_rows:  # perhaps too many rows (a quoted cell may hold a line break)
            _count_rows(rows, max_rows)
            rows = _rows(content)
            next(rows)
        chunks = [
            pd.DataFrame(chunk, columns=list(columns), dtype="str") for chunk in _row_chunks(rows, columns, max_rows)
        ]
    except UnicodeDecodeError as exc:
        raise CsvFileError("The file is not UTF-8 text. Save it as CSV (UTF-8) and upload it again.") from exc
    except csv.Error as exc:
        raise CsvFileError(f"The file is not valid CSV: {exc}.") from exc
    if not chunks:
        raise CsvFileError("The file has a header but no rows.")
    return CsvTable(pd.concat(chunks, ignore_index=True))


def cached_read(store: MutableMapping[Any, Any], content: bytes, *, max_rows: int) -> CsvTable:
    """`read_csv`, parsed once per upload: the UI reruns its script on every click, and `store` (the session's
    state) keeps the last file's table, or its refusal, under the file's sha256."""
    digest = hashlib.sha256(content).hexdigest()
    cached = store.get(_PARSED_KEY)
    if cached is None or cached[0] != digest:
        try:
            parsed: CsvTable | CsvFileError = read_csv(content, max_rows=max_rows)
        except CsvFileError as exc:
            parsed = exc
        cached = store[_PARSED_KEY] = (digest, parsed)
    if isinstance(cached[1], CsvFileError):
        raise cached[1]
    return cached[1]


_PARSED_KEY = "batch_parsed_upload"


def _rows(content: bytes) -> Iterator[list[str]]:
    """The file's rows, decoded as they are read (a `str` of the whole file would take up to 4 bytes a character)."""
    return csv.reader(_lines(content))


def _lines(content: bytes) -> Iterator[str]:
    """The file's lines, none longer than `MAX_LINE_CHARS`: the csv module builds a whole row before anyone can
    count its cells (one line of 10 million commas took 4.3 s), so a line is measured before it is parsed."""
    text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")
    number = 0
    while line := text.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            if number == 1 and line.count(",") >= MAX_COLUMNS:
                _too_many_columns(f"more than {MAX_COLUMNS}")
            raise CsvFileError(
                f"Line {number:,} of the file is longer than {MAX_LINE_CHARS:,} characters; a row of the "
                f"{len(FEATURE_NAMES)} columns and your own is far shorter. Check the file's line ends and commas."
            )
        yield line


def _blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _count_rows(rows: Iterator[list[str]], max_rows: int) -> None:
    """Count the rows (blank ones too), keeping none; refuse the file at the first row past `max_rows`."""
    for count, _ in enumerate(rows, start=1):
        _within_limit(count, max_rows)


def _within_limit(count: int, max_rows: int) -> None:
    """Blank rows count too: they are skipped, but 19 million of them took 27 s to read."""
    if count > max_rows:
        raise CsvFileError(
            f"The file has more than {max_rows:,} rows; at most {max_rows:,} are accepted (blank rows count too). "
            "Split it up, or remove its blank rows."
        )


def _too_many_columns(count: str) -> None:
    raise CsvFileError(
        f"The file has {count} columns; at most {MAX_COLUMNS} are accepted (the {len(FEATURE_NAMES)} features and your "
        "own). Remove the columns you do not need and upload it again."
    )


def _checked_header(header: list[str] | None) -> tuple[str, ...]:
    if not header:
        raise CsvFileError(
            f"The file is empty. It needs a header with the {len(FEATURE_NAMES)} column names, then one row per person."
        )
    if len(header) > MAX_COLUMNS:
        _too_many_columns(f"{len(header):,}")
    columns = tuple(name.strip() for name in header)
    counts = Counter(columns)
    missing = [name for name in FEATURE_NAMES if name not in counts]
    if missing:
        raise CsvFileError(
            f"The file lacks {len(missing)} required column(s): {', '.join(missing)}. "
            f"The header must name all {len(FEATURE_NAMES)}: {', '.join(FEATURE_NAMES)}."
        )
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    if duplicated:
        raise CsvFileError(f"These columns appear more than once: {', '.join(duplicated)}. Keep one of each.")
    taken = clashing_columns(columns)
    if taken:
        raise CsvFileError(
            f"These columns have the names of the results this app adds: {', '.join(taken)}. Rename them (or "
            "remove them, if they hold the results of an earlier run) and upload the file again."
        )
    return columns


def _row_chunks(rows: Iterator[list[str]], columns: tuple[str, ...], max_rows: int) -> Iterator[list[list[str]]]:
    """The non-blank rows, `CHUNK_ROWS` at a time, each checked to be as long as the header, `max_rows` at most."""
    chunk: list[list[str]] = []
    number = read = 0
    for row in rows:
        read += 1
        _within_limit(read, max_rows)
        if _blank(row):
            continue
        number += 1
        if len(row) != len(columns):
            raise CsvFileError(
                f"Row {number} has {len(row)} values but the header has {len(columns)} columns. "
                "Check for missing or extra commas."
            )
        chunk.append(row)
        if len(chunk) == CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
    parts: list[pd.DataFrame] = []
    errors: list[RowError] = []
    total = table.row_count
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        try:
            parts.append(_result_rows(client.predict_batch(table.records(start, stop))))
        except InvalidInputError as exc:
            errors.extend(_row_errors(table, exc, start))
        if progress is not None:
            progress(stop, total)
    if errors or not parts:
        return BatchOutcome(_result_rows(()), tuple(errors))
    return BatchOutcome(pd.concat(parts, ignore_index=True), ())


def _result_rows(answers: Sequence[PredictionResponse]) -> pd.DataFrame:
    return pd.DataFrame([a.result_row() for a in answers], columns=list(RESULT_COLUMNS))


def results_frame(table: CsvTable, predictions: pd.DataFrame) -> pd.DataFrame:
    """The uploaded columns, then `ml.contract.RESULT_COLUMNS`: the same file `python -m ml.predict` writes."""
    return pd.concat([table.frame, predictions], axis=1)


def errors_frame(errors: Sequence[RowError]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Row": pd.array([e.row for e in errors], dtype="Int64"),
            "Column": pd.array([e.column for e in errors], dtype="str"),
            "Value": pd.array([e.value for e in errors], dtype="str"),
            "Problem": pd.array([e.reason for e in errors], dtype="str"),
        }
    )


def csv_file(frame: pd.DataFrame) -> bytes:
    """The frame as a UTF-8 CSV file that a spreadsheet opens as values (OWASP's advice on CSV injection).

    Every text cell and column name that would start a formula gets a leading `'`; numbers, and text that is a plain
    number, stay as they are. Text is quoted, so a `;` or a carriage return inside a cell cannot start a new one.
    Written `CHUNK_ROWS` rows at a time, so only the file itself grows with the rows.
    """
    header = _neutralised(pd.Series(frame.columns, dtype="str")).tolist()
    out = io.BytesIO()
    for start in range(0, max(len(frame), 1), CHUNK_ROWS):
        part = frame.iloc[start : start + CHUNK_ROWS].copy()
        for position, dtype in enumerate(part.dtypes):
            if isinstance(dtype, pd.StringDtype):
                part.isetitem(position, _neutralised(part.iloc[:, position]).array)
        part.to_csv(out, index=False, header=header if start == 0 else False, quoting=csv.QUOTE_NONNUMERIC)
    return out.getvalue()


def _neutralised(texts: pd.Series) -> pd.Series:
    risky = texts.str.match(_FORMULA_START) & ~texts.str.fullmatch(_PLAIN_NUMBER)
    if not risky.any():
        return texts
    return texts.mask(risky, "'" + texts[risky])


def _row_errors(table: CsvTable, exc: InvalidInputError, start: int) -> list[RowError]:
    if not exc.errors:
        return [RowError(None, "", "", exc.message)]
    errors = []
    for e in exc.errors:
        if e.index is None:
            errors.append(RowError(None, e.field, "", e.reason))
            continue
        i = start + e.index
        value = table.value(i, e.field)
        errors.append(RowError(i + 1, e.field, value if value.strip() else EMPTY, e.reason))
    return errors


def _number(text: str) -> float | int | str | None:
    """The cell as a number when it is one; otherwise the text, for the service to explain what is wrong."""
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if value.is_integer() else value
