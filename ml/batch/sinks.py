"""Where the results go: a CSV (`.csv`, `.csv.gz`) or Parquet file, written chunk by chunk under a temporary name.

The file appears under its own name only once every row is written (`atomic_output`): a run that fails, or is
stopped, leaves no partial file that could be taken for a result, and an earlier file of that name is untouched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.batch.sources import is_parquet
from ml.contract import RESULT_COLUMNS

#: Decimals of the probabilities and the risk in a CSV file (Parquet keeps every bit).
CSV_DECIMALS = 6
#: A cell holding one of these bytes must be quoted in CSV; any other is written bare, exactly as given.
_STRUCTURAL = tuple(b'",\r\n')


class OutputFormatError(ValueError):
    """The results cannot be written in the format the output's name asks for."""


class ResultSink(Protocol):
    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, moved onto it when the block ends without an exception, else removed.

    The temporary file is created with the permissions a new file gets (0666 less the umask), not 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def open_sink(path: Path, destination: Path, columns: Sequence[str]) -> ResultSink:
    """The writer for `destination` (a temporary file) in the format `path`'s name asks for."""
    if is_parquet(path):
        return ParquetSink(destination)
    return CsvSink(destination, columns, gzip=path.name.endswith(".gz"))


class CsvSink:
    """CSV with the user's cells as given: bare where CSV allows it, quoted (RFC 4180) only where they must be.

    pyarrow's CSV writer quotes every text cell or none, so a row is joined here from its cells' text, in Arrow:
    the joined lines' bytes are the file.
    """

    def __init__(self, destination: Path, columns: Sequence[str], *, gzip: bool) -> None:
        file = pa.OSFile(str(destination), "wb")
        self._stream = pa.CompressedOutputStream(file, "gzip") if gzip else file
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow([*columns, *RESULT_COLUMNS])
        self._stream.write(header.getvalue().encode())

    def write(self, table: pa.Table) -> None:
        named = zip(table.column_names, table.columns, strict=True)
        try:
            cells = [_csv_cells(column, name in RESULT_COLUMNS) for name, column in named]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise OutputFormatError(f"a column cannot be written as CSV text ({exc}); write Parquet instead") from None
        rows = pc.binary_join_element_wise(*cells, ",", null_handling="replace", null_replacement="")
        lines = pc.binary_join_element_wise(rows, pa.scalar("\n", rows.type), "")
        for chunk in lines.chunks:
            _, offsets, data = chunk.buffers()
            kind = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
            bounds = np.frombuffer(offsets, dtype=kind)[chunk.offset : chunk.offset + len(chunk) + 1]
            self._stream.write(data[int(bounds[0]) : int(bounds[-1])])

    def close(self) -> None:
        self._stream.close()


def _csv_cells(column: pa.ChunkedArray, result: bool) -> pa.ChunkedArray:
    """The column's cells as CSV text: a result's numbers rounded to `CSV_DECIMALS`, text quoted where it must be."""
    if result and pa.types.is_floating(column.type):
        column = pc.round(column, CSV_DECIMALS)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return pc.cast(column, pa.string())  # numbers, dates, ...: their text cannot need quotes
    column = pc.cast(column, pa.string())  # large strings too: a chunk is far below 2 GB
    if not _may_need_quotes(column):
        return column
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(column, '"', '""'), '"', "")
    return pc.if_else(pc.match_substring_regex(column, r'[",\r\n]'), quoted, column)


def _may_need_quotes(column: pa.ChunkedArray) -> bool:
    """Whether a cell may hold a quote, comma or line break: a scan of the text bytes (whole buffers, so a sliced
    array may answer yes for a cell outside it, which only costs a closer look)."""
    for chunk in column.chunks:
        data = chunk.buffers()[2]
        if data is not None:
            text = np.frombuffer(data, dtype=np.uint8)
            if any((text == byte).any() for byte in _STRUCTURAL):
                return True
    return False


class ParquetSink:
    """Parquet, one row group a chunk; the schema is the first chunk's (the user's columns with their types)."""

    def __init__(self, destination: Path) -> None:
        self._destination = destination
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self._destination), table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
