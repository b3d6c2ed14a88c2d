"""Where the rows come from: a CSV (plain or gzip) or Parquet file, read in chunks that know their row numbers.

The format is the file's content (Parquet's and gzip's magic bytes), not its name. A CSV file's cells stay the text
written in the file (Arrow strings), so what the user gave is what is written back. Row numbers count data rows
from 1, the row under the header, as `ml.training.data` counts them: an empty line inside the file is a row (of
missing values), empty lines at the end are not (a line of empty cells, `,,,`, is a row wherever it is). A row with
more or fewer values than the header is recorded with its number and left out, and the rows after it keep their
own numbers. A cell that is not UTF-8 text is reported by its row and column, like an invalid value.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ml.schema import FEATURE_NAMES
from ml.training.data import MAX_ROWS_SHOWN, ColumnProblem, DataValidationError, check_columns

#: Bytes the CSV reader parses at a time; chunks are then cut to an exact number of rows. One row (the header
#: included) must fit in a block: this is the longest row a CSV file may have, counted in bytes of text as written
#: (quotes included; after decompression for gzip). A Parquet file's rows have no such limit.
CSV_BLOCK_BYTES = 1 << 20
#: The most columns a CSV header may have (a member list has the features and a few more).
MAX_CSV_COLUMNS = 10_000
#: Rows with the wrong number of values after which reading stops (a wrong delimiter, not a few bad rows).
MAX_MALFORMED_ROWS = 1_000
#: How much of a malformed row's text its problem quotes.
_QUOTED_CHARS = 60
PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_MAGIC, _GZIP_MAGIC, _UTF16_MARKS = b"PAR1", b"\x1f\x8b", (b"\xff\xfe", b"\xfe\xff")
#: The reason a cell that is not UTF-8 text is reported with, and how to fix it.
NOT_UTF8 = "not UTF-8 text: re-save the file as UTF-8 (in Excel: Save As, 'CSV UTF-8')"


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
        """Rows or cells that could not be read (wrong number of values, not UTF-8 text), found so far."""
        ...

    def skipped_rows(self) -> int:
        """Rows left out of the chunks because they could not be read as rows."""
        ...


def is_parquet(path: Path) -> bool:
    """Whether an output name asks for Parquet (case does not matter)."""
    return path.suffix.lower() in PARQUET_SUFFIXES


def open_input(path: Path) -> BatchInput:
    """The CSV or Parquet file at `path`, its header checked (the features, no target rule, others kept)."""
    if path.is_dir():
        raise DataValidationError(
            f"{path} is a folder; python -m ml.predict reads one CSV or Parquet file (a folder of Parquet part "
            "files is a table: score it with python -m ml.predict_spark)."
        )
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if not path.is_file():
        raise DataValidationError(
            f"{path} is not a regular file (a pipe or a device); it is read more than once: save it to a file first."
        )
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] in _UTF16_MARKS:
        raise DataValidationError(f"{path} is UTF-16 text; save it as UTF-8 CSV (in Excel: Save As, 'CSV UTF-8').")
    return ParquetInput(path) if magic == _PARQUET_MAGIC else CsvInput(path, gzipped=magic[:2] == _GZIP_MAGIC)


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


@dataclass
class _Undecodable:
    """Cells that are not UTF-8 text, per column: the first rows with their values, and a count."""

    found: dict[str, ColumnProblem] = field(default_factory=dict)

    def decoded(self, table: pa.Table, rows: np.ndarray) -> pa.Table:
        """The table's binary columns as text; a cell that is not UTF-8 is noted and replaced (nothing is written)."""
        columns = []
        for name, column in zip(table.column_names, table.columns, strict=True):
            try:
                columns.append(pc.cast(column, pa.string()))
            except pa.ArrowInvalid:
                columns.append(self._note(name, column.to_pylist(), rows))
        return pa.Table.from_arrays(columns, names=table.column_names)

    def _note(self, name: str, cells: list[bytes], rows: np.ndarray) -> pa.Array:
        text, bad = [], []
        for i, cell in enumerate(cells):
            try:
                text.append(cell.decode())
            except UnicodeDecodeError:
                text.append(cell.decode(errors="replace"))  # shown with U+FFFD where the bytes are not UTF-8
                bad.append(i)
        old = self.found.get(name, ColumnProblem(name, NOT_UTF8, (), (), 0))
        room = MAX_ROWS_SHOWN - len(old.rows)
        shown = bad[: max(room, 0)]
        self.found[name] = ColumnProblem(
            name,
            NOT_UTF8,
            old.rows + tuple(int(rows[i]) for i in shown),
            old.values + tuple(text[i] for i in shown),
            old.count + len(bad),
        )
        return pa.array(text, pa.string())


class CsvInput:
    """A CSV file, plain or gzip-compressed, read with pyarrow's streaming reader, every cell as text.

    The header is read by the same parser as the rows (a quoted line break in a name is one name), in a first pass
    over the first block; the rows are then read as bytes and checked to be UTF-8 cell by cell.
    """

    def __init__(self, path: Path, *, gzipped: bool) -> None:
        self.source = str(path)
        self._path = path
        self._gzipped = gzipped
        self._size = path.stat().st_size
        self._file: pa.NativeFile | None = None
        self._raw_columns = self._read_header()
        self.columns = [name.strip() for name in self._raw_columns]
        self._check_delimiter()
        check_columns(self.columns, "ignore", self.source, "keep")
        self._malformed = _MalformedRows(len(self.columns))
        self._undecodable = _Undecodable()
        self._parsed = 0  # rows the reader has given so far (malformed rows not included)

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        read = 0
        with pa.OSFile(str(self._path)) as self._file:
            try:
                rows = _without_trailing_blank_rows(
                    self._counted(self._reader()), self._raw_columns, self._empty_lines_at_end
                )
                for table in _rechunked(rows, chunk_rows):
                    numbers = self._malformed.row_numbers(read, table.num_rows)
                    yield Chunk(self._undecodable.decoded(table.rename_columns(self.columns), numbers), numbers)
                    read += table.num_rows
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                raise DataValidationError(self._unreadable(exc)) from None

    def _open(self, file: pa.NativeFile) -> pa.NativeFile:
        """The file as pyarrow reads it. A native file, never a Python one: the reader reads ahead on pyarrow's I/O
        thread, which for a Python file takes the GIL; a stop signal (`ml.batch.signals`) ending the command while
        a read was pending then had that thread take the GIL during the interpreter's exit, and the process aborted
        (SIGABRT, `terminate called without an active exception`) instead of exiting 128 + the signal."""
        return pa.CompressedInputStream(file, "gzip") if self._gzipped else file

    def _read_header(self) -> list[str]:
        """The header's names as written, from the first row the CSV parser gives (quotes and a BOM understood)."""
        try:
            with pa.OSFile(str(self._path)) as file:
                reader = pa_csv.open_csv(
                    self._open(file),
                    read_options=pa_csv.ReadOptions(
                        use_threads=False, block_size=CSV_BLOCK_BYTES, autogenerate_column_names=True
                    ),
                    parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
                    convert_options=pa_csv.ConvertOptions(
                        column_types={f"f{i}": pa.binary() for i in range(MAX_CSV_COLUMNS)},
                        strings_can_be_null=False,
                        quoted_strings_can_be_null=False,
                    ),
                )
                first = reader.read_next_batch().slice(0, 1).to_pylist()[0]
        except (pa.ArrowInvalid, OSError, EOFError, StopIteration) as exc:
            if isinstance(exc, StopIteration) or "Empty CSV" in str(exc) or "straddl" in str(exc):
                if _text(self._path, self._gzipped, CSV_BLOCK_BYTES).strip():  # no row end in the first block
                    raise DataValidationError(self._too_long("the header")) from None
                first = {}
            else:
                raise DataValidationError(
                    f"{self.source} cannot be read as a CSV file ({' '.join(str(exc).split())}). Give a CSV file, "
                    "plain or gzip-compressed, or a Parquet file."
                ) from None
        cells: list[bytes] = list(first.values())
        if len(cells) > MAX_CSV_COLUMNS:
            raise DataValidationError(f"{self.source}: the header has more than {MAX_CSV_COLUMNS:,} columns.")
        names = [cell.decode(errors="replace") for cell in cells]
        bad = [name for name, cell in zip(names, cells, strict=True) if name.encode() != cell]
        if bad:
            raise DataValidationError(
                f"{self.source}: the header is not UTF-8 text (the column name {bad[0]!r}); re-save the file as "
                "UTF-8 (in Excel: Save As, 'CSV UTF-8'). A file in another encoding (UTF-16, ...) too."
            )
        if not any(name.strip() for name in names):
            raise DataValidationError(
                f"{self.source} is empty: expected a header line with the columns {','.join(FEATURE_NAMES)} (any "
                "order, others kept) followed by data rows."
            )
        return names

    def _check_delimiter(self) -> None:
        """A header that is one column holding the feature names with another separator: say so, not each name."""
        if len(self.columns) >= len(FEATURE_NAMES):
            return
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            names = {part.strip() for column in self.columns for part in column.split(delimiter)}
            if len(names & set(FEATURE_NAMES)) > len(self.columns):
                raise DataValidationError(
                    f"{self.source}: the columns are separated by {name}, not commas. Save the file as "
                    "comma-separated CSV (in Excel: Save As, 'CSV UTF-8 (Comma delimited)') and run again."
                )

    def _reader(self) -> pa_csv.CSVStreamingReader:
        """pyarrow's reader on one thread (so it numbers malformed rows), every cell as bytes, empty lines as rows."""
        assert self._file is not None
        return pa_csv.open_csv(
            self._open(self._file),
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=self._malformed.handle
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(self._raw_columns, pa.binary()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def _counted(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self._parsed += batch.num_rows
            yield batch

    def _empty_lines_at_end(self) -> int:
        """How many lines at the very end of the file are empty (not even a comma): rows of those are ignored.

        Arrow reads an empty line and a line of empty cells (`,,,`) alike, so the file's last bytes tell them apart.
        Only the last `CSV_BLOCK_BYTES` are looked at: if they are all line breaks, every empty row at the end is.
        """
        tail = _tail(self._path, self._gzipped, CSV_BLOCK_BYTES)
        body = tail.rstrip(b"\r\n")
        breaks = len(re.findall(rb"\r\n|\r|\n", tail[len(body) :]))
        return breaks - 1 if body else breaks

    def _too_long(self, where: str) -> str:
        return (
            f"{self.source}: {where} is longer than {CSV_BLOCK_BYTES // 2**20} MiB, the most one CSV row may hold "
            'here. Either a cell is that long, or a quote (") opens a cell that is never closed, so the rest of the '
            "file reads as one cell: check that row. Nothing was written."
        )

    def _unreadable(self, exc: Exception) -> str:
        if len(self._malformed.numbers) > MAX_MALFORMED_ROWS:
            return (
                f"{self.source}: more than {MAX_MALFORMED_ROWS:,} rows do not have the header's "
                f"{len(self.columns)} values (the first at row {self._malformed.numbers[0]:,}); stopped reading at "
                f"row {self._malformed.numbers[-1]:,}. Is the file comma-separated, with one header line? "
                "Nothing was written."
            )
        row = self._parsed + len(self._malformed.numbers) + 1  # the row the reader could not finish
        if "straddl" in str(exc):
            return self._too_long(f"data row {row:,}")
        return (
            f"{self.source} cannot be read as a CSV file at data row {row:,} ({' '.join(str(exc).split())}). "
            "Give a CSV file, plain or gzip-compressed, or a Parquet file. Nothing was written."
        )

    def expected_rows(self, rows_done: int) -> int | None:
        position = self._file.tell() if self._file is not None and not self._file.closed else 0
        if position <= 0 or rows_done <= 0:
            return None
        return max(rows_done, round(rows_done * self._size / position))

    def row_problems(self) -> list[ColumnProblem]:
        return [*self._malformed.problems(), *self._undecodable.found.values()]

    def skipped_rows(self) -> int:
        return len(self._malformed.numbers)


def _text(path: Path, gzipped: bool, size: int) -> bytes:
    """The first `size` bytes of the file's text (decompressed; nothing from a gzip file that cannot be)."""
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as file:
            return file.read(size)
    except (OSError, EOFError):
        return b""


def _tail(path: Path, gzipped: bool, size: int) -> bytes:
    """The last `size` bytes of the file's text (decompressed: a gzip file is read through once more)."""
    if not gzipped:
        with open(path, "rb") as file:
            file.seek(max(0, path.stat().st_size - size))
            return file.read()
    last = b""
    with gzip.open(path, "rb") as file:
        while block := file.read(size):
            last = (last + block)[-size:]
    return last


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
        schema = self._file.schema_arrow
        flags = [name for name in FEATURE_NAMES if pa.types.is_boolean(schema.field(name).type)]
        if flags:
            raise DataValidationError(
                f"{path}: {', '.join(flags)} {'is' if len(flags) == 1 else 'are'} true/false (boolean); "
                "the indicators are numbers (0 = no, 1 = yes). Cast them to integers when writing the file "
                "(e.g. CAST(HighBP AS INT)) and run again."
            )

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

    def skipped_rows(self) -> int:
        return 0


def _trailing_blank_rows(batch: pa.RecordBatch) -> int:
    """How many rows at the end of the batch have every cell empty (an empty line reads as one)."""
    count = 0
    while count < batch.num_rows:
        step = min(max(count, 1), batch.num_rows - count)  # look back 1, 1, 2, 4, ... rows
        tail = batch.slice(batch.num_rows - count - step, step)
        blank = np.ones(step, dtype=bool)
        for column in tail.columns:
            blank &= pc.equal(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
        if not blank.all():
            return count + int(np.argmin(blank[::-1]))
        count += step
    return count


def _without_trailing_blank_rows(
    batches: Iterable[pa.RecordBatch], columns: list[str], empty_lines_at_end: Callable[[], int]
) -> Iterator[pa.RecordBatch]:
    """The batches with empty lines at the very end left out (editors add them); empty rows inside are kept, and so
    are rows of empty cells (`,,,`) at the end: `empty_lines_at_end` says how many of the last empty rows are lines."""
    held = 0  # empty rows last seen: they are rows only if a row with data follows

    def blank_rows(count: int) -> Iterator[pa.RecordBatch]:
        while count:
            step = min(count, CSV_BLOCK_BYTES)
            yield pa.RecordBatch.from_arrays([pa.array([b""] * step, pa.binary())] * len(columns), names=columns)
            count -= step

    for batch in batches:
        blank = _trailing_blank_rows(batch)
        if blank == batch.num_rows:
            held += blank
            continue
        yield from blank_rows(held)
        yield batch.slice(0, batch.num_rows - blank)
        held = blank
    if held:
        yield from blank_rows(held - min(held, max(empty_lines_at_end(), 0)))


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
