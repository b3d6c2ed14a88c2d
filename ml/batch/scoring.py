"""Score a file of any size in bounded memory: read, validate, predict and write one chunk of rows at a time.

Memory follows the chunk, not the file: about `DEFAULT_CHUNK_ROWS` rows are held at once, as Arrow strings (CSV)
or typed columns (Parquet), with their (n, features) feature matrix and result columns. The promises of the whole-file
command hold: rows in input order, the user's columns as given, every invalid value found and reported by its row
number in the file, and no output unless every row was valid (the results go to a temporary file, moved into place
at the end).

A file with invalid values is read to its end, so that one run lists every kind of problem: each (column, reason)
keeps its first `ml.training.data.MAX_ROWS_SHOWN` rows with their values and counts the rest, so the report stays
small whatever the file. Nothing is predicted or written after the first invalid value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.batch.results import result_columns
from ml.batch.sinks import atomic_output, check_output, open_sink
from ml.batch.sources import Chunk, open_input
from ml.contract import clashing_columns
from ml.inference.predictor import Predictor
from ml.schema import FEATURES, Feature
from ml.training.data import (
    MAX_ROWS_SHOWN,
    ColumnProblem,
    DataValidationError,
    describe_problems,
    features_matrix,
    validate_frame,
)

#: Rows validated, predicted and written at a time (about 12 MB of features; LightGBM is as fast as on 1M rows).
DEFAULT_CHUNK_ROWS = 65_536
#: The most rows a chunk may have: 16 times the default. It counts rows, not bytes: a 1M-row CSV of the
#: features held in one chunk peaked at 1.1 GB, and long extra columns make each row, so each chunk, larger.
MAX_CHUNK_ROWS = 1_048_576
#: Called after each chunk with the rows done and the rows expected in all (None while unknown).
Progress = Callable[[int, int | None], None]


class ColumnClashError(ValueError):
    """A column of the input file has the name of a result column; it would be overwritten."""


@dataclass(frozen=True)
class ScoringSummary:
    rows: int
    seconds: float
    output: Path


def score_file(
    predictor: Predictor,
    data: Path,
    output: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> ScoringSummary:
    """Write the input's columns then `ml.contract.RESULT_COLUMNS` for every row of `data` to `output`.

    The input's format is its content (CSV, gzip-compressed CSV or Parquet); the output's is its name: `.csv`,
    `.csv.gz`, `.parquet` or `.pq`, in any case (any other name is an `OutputError`, before any work). Invalid values
    raise one `DataValidationError` listing them all, and `output` is not written.
    """
    if not 1 <= chunk_rows <= MAX_CHUNK_ROWS:
        raise ValueError(f"chunk_rows must be from 1 to {MAX_CHUNK_ROWS:,}, got {chunk_rows:,}")
    started = time.perf_counter()
    check_output(output, data)
    source = open_input(data)
    clashes = clashing_columns(source.columns)
    if clashes:
        raise ColumnClashError(
            f"the input has column(s) {', '.join(clashes)}, which the output writes; rename them and run again"
        )
    problems = _ProblemLog()
    rows = 0
    with atomic_output(output) as temporary:
        sink = open_sink(output, temporary, source.columns)
        try:
            for chunk in source.chunks(chunk_rows):
                features = _validated_features(chunk, problems)
                if features is not None and not problems and not source.row_problems():
                    sink.write(_with_results(chunk.table, predictor, features))
                rows += chunk.table.num_rows
                if progress is not None:
                    progress(rows, source.expected_rows(rows))
        finally:
            sink.close()
        found = [*source.row_problems(), *problems.problems()]
        if found:
            read = rows + source.skipped_rows()
            scope = f"in {read:,} data rows (row 1 is the first data row, under the header in CSV)"
            raise DataValidationError(describe_problems(source.source, found, scope, outcome="written"), found)
        if not rows:
            raise DataValidationError(
                f"{source.source} has a header but no data rows; it needs at least one row under the header. "
                "Nothing was written."
            )
    return ScoringSummary(rows, time.perf_counter() - started, output)


def _with_results(table: pa.Table, predictor: Predictor, features: np.ndarray) -> pa.Table:
    for name, values in result_columns(features, predictor.predict(features), predictor.manifest).items():
        table = table.append_column(name, pa.array(values))
    return table


def _validated_features(chunk: Chunk, problems: _ProblemLog) -> np.ndarray | None:
    """The chunk's (n, features) float64 features, or None after noting every invalid value in `problems`.

    Clean numbers pass a fast check in Arrow; a column that fails it goes through `ml.training.data`'s validation,
    the one definition of a valid value, which names each problem (and accepts what it accepts, e.g. " 7 ").
    """
    fast = {f.name: _clean_numbers(chunk.table.column(f.name), f) for f in FEATURES}
    clean = [values for values in fast.values() if values is not None]
    if len(clean) == len(fast):
        return np.column_stack(clean)
    frame = pd.DataFrame(
        {name: values if values is not None else chunk.table.column(name).to_pandas() for name, values in fast.items()}
    )
    try:
        return features_matrix(validate_frame(frame, target="ignore"))
    except DataValidationError as exc:
        problems.add(exc.problems, chunk.rows)
        return None


def _clean_numbers(column: pa.ChunkedArray, feature: Feature) -> np.ndarray | None:
    """The column as float64 when every cell is a finite number the feature allows, else None (look closer)."""
    kind = column.type
    if column.null_count or not (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
    ):
        return None
    try:
        values: np.ndarray = pc.cast(column, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    with np.errstate(invalid="ignore"):
        fine = (
            np.isfinite(values).all()
            and values.min(initial=np.inf) >= feature.minimum
            and values.max(initial=-np.inf) <= feature.maximum
            and (not feature.integer or bool((values == np.floor(values)).all()))
        )
    return values if fine else None


@dataclass
class _Found:
    rows: list[int]
    values: list[str]
    count: int = 0


class _ProblemLog:
    """Every invalid value of the file, kept small: per (column, reason), the first rows and how many in all."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], _Found] = {}

    def __bool__(self) -> bool:
        return bool(self._found)

    def add(self, problems: Sequence[ColumnProblem], rows: np.ndarray) -> None:
        """Problems of one chunk, whose row numbers count from the chunk's first row; `rows` maps them to the file."""
        for problem in problems:
            found = self._found.setdefault((problem.column, problem.reason), _Found([], []))
            room = MAX_ROWS_SHOWN - len(found.rows)
            found.rows += [int(rows[r - 1]) for r in problem.rows[:room]]
            found.values += problem.values[:room]
            found.count += problem.count

    def problems(self) -> list[ColumnProblem]:
        return [
            ColumnProblem(column, reason, tuple(found.rows), tuple(found.values), found.count)
            for (column, reason), found in self._found.items()
        ]
