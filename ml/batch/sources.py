"""Where the rows come from: a CSV (`.csv`, `.csv.gz`) or Parquet file, read in chunks that know their row numbers.

A CSV file's cells stay the text written in the file (Arrow strings), so what the user gave is what is written
back. Row numbers count data rows from 1, the line under the header, as `ml.training.data` counts them: an empty
line inside the file is a row (of missing values), empty lines at the end are not. A row with more or fewer values
than the header is recorded with its number and left out, and the rows after it keep their own numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ml.training.data import MAX_ROWS_SHOWN, ColumnProblem, DataValidationError, check_columns, read_header

#: Bytes the CSV reader parses at a time; chunks are then cut to an exact number of rows.
CSV_BLOCK_BYTES = 1 << 20
#: Rows with the wrong number of values after which reading stops (a wrong delimiter, not a few bad rows).
MAX_MALFORMED_ROWS = 1_000
#: How much of a malformed row's text its problem quotes.
_QUOTED_CHARS = 60
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of the input: the user's columns as read, and each row's number in the file."""

    table: pa.Table
    rows: np.ndarray


class BatchInput(Protocol):
    """An input file: its columns, its rows in chunks, and what is known of its size."""

    source: str
    columns: list[str]

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]: ...

    def expected_rows(self, rows_done: int) -> int | None:
        """The file's rows: exact where the format records it, else estimated from the bytes read so far."""
        ...

    def row_problems(self) -> list[ColumnProblem]:
        """Rows that could not be read as rows (wrong number of values), found so far."""
        ...


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def open_input(path: Path) -> BatchInput:
    """The CSV or Parquet file at `path`, its header checked (the features, no target rule, others kept)."""
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    return ParquetInput(path) if is_parquet(path) else CsvInput(path)


@dataclass
class _MalformedRows:
    """Rows the CSV reader left out because their number of values is not the header's."""

    expected: int
    numbers: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def handle(self, row: pa_csv.InvalidRow) -> str:
        """pyarrow's invalid-row handler: note the row, skip it; stop reading when there are too many."""
        if row.number is None:  # only a multi-threaded reader leaves it out
            raise RuntimeError("the CSV reader must run on one thread to number malformed rows")
        self.numbers.append(row.number - 1)  # pyarrow counts the header as row 1
        if len(self.texts) < MAX_ROWS_SHOWN:
            self.texts.append(row.text[:_QUOTED_CHARS] + ("..." if len(row.text) > _QUOTED_CHARS else ""))
        return "error" if len(self.numbers) > MAX_MALFORMED_ROWS else "skip"

    def row_numbers(self, first: int, count: int) -> np.ndarray:
        """The file row numbers of the `count` rows read from position `first` on (0-based, malformed rows left out).

        The j-th malformed row (1-based) at row s_j has s_j - j rows read before it, so the row read at position e
        follows every malformed row with s_j - j <= e.
        """
        positions = np.arange(first, first + count, dtype=np.int64)
        if not self.numbers:
            return positions + 1
        skipped = np.asarray(self.numbers, dtype=np.int64)
        keys = skipped - np.arange(1, len(skipped) + 1)
        return positions + 1 + np.searchsorted(keys, positions, side="right")

    def problems(self) -> list[ColumnProblem]:
        if not self.numbers:
            return []
        reason = f"wrong number of values (the header has {self.expected} columns)"
        shown = tuple(self.numbers[: len(self.texts)])
        return [ColumnProblem("(whole row)", reason, shown, tuple(self.texts), len(self.numbers))]


class CsvInput:
    """A `.csv` or `.csv.gz` file read with pyarrow's streaming reader, every cell as text."""

    def __init__(self, path: Path) -> None:
        self.source = str(path)
        self.columns = read_header(path)
        check_columns(self.columns, "ignore", self.source, "keep")
        self._path = path
        self._size = path.stat().st_size
        self._file: IO[bytes] | None = None
        self._malformed = _MalformedRows(len(self.columns))

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        read = 0
        with open(self._path, "rb") as self._file:
            try:
                for table in _rechunked(_without_trailing_blank_rows(self._reader(), self.columns), chunk_rows):
                    yield Chunk(table, self._malformed.row_numbers(read, table.num_rows))
                    read += table.num_rows
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                raise DataValidationError(self._unreadable(exc, read)) from None

    def _reader(self) -> pa_csv.CSVStreamingReader:
        """pyarrow's reader on one thread (so it numbers malformed rows), every cell as text, empty lines as rows."""
        assert self._file is not None
        stream = pa.CompressedInputStream(self._file, "gzip") if self._path.name.endswith(".gz") else self._file
        return pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(
                use_threads=False, block_size=CSV_BLOCK_BYTES, skip_rows=1, column_names=self.columns
            ),
            parse_options=pa_csv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=self._malformed.handle
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(self.columns, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def _unreadable(self, exc: Exception, read: int) -> str:
        if len(self._malformed.numbers) > MAX_MALFORMED_ROWS:
            return (
                f"{self.source}: more than {MAX_MALFORMED_ROWS:,} rows do not have the header's "
                f"{len(self.columns)} values (the first at row {self._malformed.numbers[0]:,}); stopped reading at "
                f"row {self._malformed.numbers[-1]:,}. Is the file comma-separated, with one header line? "
                "Nothing was written."
            )
        return (
            f"{self.source} cannot be read as a UTF-8 CSV file past data row {read:,} ({' '.join(str(exc).split())}). "
            "Give a plain .csv or a gzip-compressed .csv.gz file. Nothing was written."
        )

    def expected_rows(self, rows_done: int) -> int | None:
        position = self._file.tell() if self._file is not None and not self._file.closed else 0
        if position <= 0 or rows_done <= 0:
            return None
        return max(rows_done, round(rows_done * self._size / position))

    def row_problems(self) -> list[ColumnProblem]:
        return self._malformed.problems()


class ParquetInput:
    """A Parquet file read a batch at a time; its columns keep their types."""

    def __init__(self, path: Path) -> None:
        self.source = str(path)
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataValidationError(f"{path} cannot be read as a Parquet file ({exc}).") from None
        self.columns = list(self._file.schema_arrow.names)
        check_columns(self.columns, "ignore", self.source, "keep")

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        read = 0
        try:
            batches = self._file.iter_batches(batch_size=chunk_rows, use_threads=False)
            for table in _rechunked(batches, chunk_rows):
                yield Chunk(table, np.arange(read + 1, read + table.num_rows + 1, dtype=np.int64))
                read += table.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataValidationError(f"{self.source} cannot be read after row {read:,} ({exc}).") from None

    def expected_rows(self, rows_done: int) -> int | None:
        rows: int = self._file.metadata.num_rows
        return rows

    def row_problems(self) -> list[ColumnProblem]:
        return []


def _trailing_blank_rows(batch: pa.RecordBatch) -> int:
    """How many rows at the end of the batch have every cell empty (an empty line reads as one)."""
    count = 0
    while count < batch.num_rows:
        step = min(max(count, 1), batch.num_rows - count)  # look back 1, 1, 2, 4, ... rows
        tail = batch.slice(batch.num_rows - count - step, step)
        blank = np.ones(step, dtype=bool)
        for column in tail.columns:
            blank &= pc.equal(column, "").to_numpy(zero_copy_only=False)
        if not blank.all():
            return count + int(np.argmin(blank[::-1]))
        count += step
    return count


def _without_trailing_blank_rows(batches: Iterable[pa.RecordBatch], columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The batches with empty rows at the very end left out (editors add them); empty rows inside are kept."""
    held = 0  # empty rows last seen: they are rows only if a row with data follows
    for batch in batches:
        blank = _trailing_blank_rows(batch)
        if blank == batch.num_rows:
            held += blank
            continue
        while held:
            count = min(held, CSV_BLOCK_BYTES)
            yield pa.RecordBatch.from_arrays([pa.array([""] * count, pa.string())] * len(columns), names=columns)
            held -= count
        yield batch.slice(0, batch.num_rows - blank)
        held = blank


def _rechunked(batches: Iterable[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.Table]:
    """The rows of `batches` as tables of exactly `chunk_rows` rows, the last one shorter."""
    waiting: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        waiting.append(batch)
        count += batch.num_rows
        while count >= chunk_rows:
            table = pa.Table.from_batches(waiting)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            waiting, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(waiting)
