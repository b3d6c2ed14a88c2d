"""Where the results go: a CSV (`.csv`, `.csv.gz`) or Parquet file, written chunk by chunk under a temporary name.

The file appears under its own name only once every row is written (`atomic_output`): a run that fails, or is
stopped, leaves no partial file that could be taken for a result, and an earlier file of that name is untouched.
Whatever can be known about the output before the work starts (its name, its folder, that it is not the input) is
checked first (`check_output`), so a long run does not end in a refusal.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
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

from ml.batch.sources import PARQUET_SUFFIXES, is_parquet
from ml.contract import RESULT_COLUMNS

#: Decimals of the probabilities and the risk in a CSV file (Parquet keeps every bit).
CSV_DECIMALS = 6
#: zlib's fastest level for `.csv.gz`: about 450,000 rows/s on one loaded core, 3.8x smaller than CSV; level 6
#: compresses 5.1x at a quarter of that speed, and level 9 (Arrow's default) 5.8x at a fortieth.
GZIP_LEVEL = 1
#: Output names by what they ask for (the case of the suffix does not matter).
_FORMATS = {".csv": "CSV", ".csv.gz": "gzip-compressed CSV", **dict.fromkeys(PARQUET_SUFFIXES, "Parquet")}
#: A cell holding one of these bytes must be quoted in CSV; any other is written bare, exactly as given.
_STRUCTURAL = tuple(b'",\r\n')


class OutputError(ValueError):
    """The results cannot be written where, or in the format, the output's name asks for; nothing was written."""


class ResultSink(Protocol):
    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


def check_output(output: Path, data: Path) -> None:
    """Refuse, before any work, an output name of no known format, a folder, a missing folder or the input itself."""
    name = output.name.lower()
    if not any(name.endswith(suffix) for suffix in _FORMATS):
        known = ", ".join(f"{suffix} ({kind})" for suffix, kind in _FORMATS.items())
        raise OutputError(f"--output {output}: the name must end in {known}")
    if output.is_dir():
        raise OutputError(f"--output {output} is a folder; give a file name (for example {output / 'scored.csv'})")
    if not output.parent.is_dir():
        raise OutputError(f"--output {output}: the folder {output.parent} does not exist; create it first")
    if output.exists() and data.exists() and os.path.samefile(output, data):
        raise OutputError(
            f"--output {output} is the input file {data} (or a link to it); writing it would replace the input. "
            "Give another name."
        )


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, moved onto it when the block ends without an exception, else removed.

    The file gets an existing output's permissions (a results file set to 0600 stays 0600); a new one, those a
    new file gets (0666 less the umask). An error writing it is an `OutputError` naming `path`.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    existing = path.stat().st_mode & 0o7777 if path.exists() else None
    try:  # created inside the `finally`'s reach: a stop signal just after the creation left the file behind
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as exc:
            reason = f"cannot write in {path.parent} ({_reason(exc)})"
            raise OutputError(f"{reason}: nothing was written to {path}") from None
        yield temporary
        if existing is not None:
            os.chmod(temporary, existing)
        os.replace(temporary, path)
    except OSError as exc:
        kept = "; the earlier file is unchanged" if existing is not None else ""
        raise OutputError(f"could not write {path} ({_reason(exc)}): nothing was written{kept}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def open_sink(path: Path, destination: Path, columns: Sequence[str]) -> ResultSink:
    """The writer for `destination` (a temporary file) in the format `path`'s name asks for."""
    if is_parquet(path):
        return ParquetSink(destination)
    return CsvSink(destination, columns, gzipped=path.name.lower().endswith(".gz"))


class CsvSink:
    """CSV with the user's cells as given: bare where CSV allows it, quoted (RFC 4180) only where they must be.

    pyarrow's CSV writer quotes every text cell or none, so a row is joined here from its cells' text, in Arrow:
    the joined lines' bytes are the file.
    """

    def __init__(self, destination: Path, columns: Sequence[str], *, gzipped: bool) -> None:
        self._file = open(destination, "wb")  # noqa: SIM115 (closed by close())
        self._stream: io.BufferedIOBase = self._file
        if gzipped:  # not Arrow's gzip stream: it compresses at level 9 and takes no level
            self._stream = gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=self._file)
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow([*columns, *RESULT_COLUMNS])
        self._stream.write(header.getvalue().encode())

    def write(self, table: pa.Table) -> None:
        cells = []
        for name, column in zip(table.column_names, table.columns, strict=True):
            try:
                cells.append(_csv_cells(column, name in RESULT_COLUMNS))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise OutputError(
                    f"the column {name!r} ({column.type}) cannot be written as CSV text ({exc}); write Parquet "
                    "(an output name ending in .parquet) instead"
                ) from None
        rows = pc.binary_join_element_wise(*cells, ",", null_handling="replace", null_replacement="")
        lines = pc.binary_join_element_wise(rows, pa.scalar("\n", rows.type), "")
        for chunk in lines.chunks:
            _, offsets, data = chunk.buffers()
            kind = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
            bounds = np.frombuffer(offsets, dtype=kind)[chunk.offset : chunk.offset + len(chunk) + 1]
            self._stream.write(data[int(bounds[0]) : int(bounds[-1])])

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._file.close()


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
