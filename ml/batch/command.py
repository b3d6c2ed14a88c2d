"""What `python -m ml.predict` does once started: its options, the scoring with a progress bar, the summary line.

`ml.predict` imports this module only after it has installed its stop signals, because importing it takes seconds
(pandas, pyarrow, LightGBM): an interrupt during that time is then a clean stop too.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from ml.batch.scoring import DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, ColumnClashError, Progress, score_file
from ml.batch.signals import Stopped, exit_code
from ml.batch.sinks import OutputError
from ml.contract import RESULT_COLUMNS
from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor
from ml.manifest import SHA256_PATTERN
from ml.schema import FEATURE_NAMES
from ml.training.data import DataValidationError


def sha256_digest(text: str) -> str:
    """An `--expect-sha256` value: 64 lowercase hex digits."""
    if not re.fullmatch(SHA256_PATTERN, text):
        raise argparse.ArgumentTypeError(f"expected 64 lowercase hex digits (as ml.train prints), got {text!r}")
    return text


def _whole_number(text: str, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or (maximum is not None and value > maximum):
        limit = f" and at most {maximum:,}" if maximum is not None else ""
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1{limit}, got {text!r}")
    return value


def _chunk_rows(text: str) -> int:
    return _whole_number(text, MAX_CHUNK_ROWS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.predict",
        description=f"Predict the diabetes status of every row of a CSV or Parquet file with the {len(FEATURE_NAMES)} "
        "indicator columns. The file is read, checked, predicted and written in chunks, so memory stays bounded "
        "whatever its size; nothing is written unless every row is valid.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="model artifact: a directory, s3://bucket/prefix, models:/name@alias or runs:/id/model",
    )
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help=f"a CSV (plain or gzip-compressed, UTF-8) or Parquet file with the {len(FEATURE_NAMES)} feature "
        "columns; other columns (an id, Diabetes_012) are copied as given",
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help=f"where to write the input's columns, then {','.join(RESULT_COLUMNS)}, one row per input row, in order; "
        "the name says the format: .csv, .csv.gz (gzip-compressed CSV) or .parquet; its folder must exist",
    )
    parser.add_argument(
        "--expect-sha256",
        type=sha256_digest,
        help="refuse the model unless its digest is this one (what ml.train prints; checked before parsing it)",
    )
    parser.add_argument(
        "--threads",
        type=_whole_number,
        default=len(os.sched_getaffinity(0)),
        help="LightGBM threads (default: every core this process may use)",
    )
    parser.add_argument(
        "--chunk-rows",
        type=_chunk_rows,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows read, checked, predicted and written at a time (default {DEFAULT_CHUNK_ROWS:,}, at most "
        f"{MAX_CHUNK_ROWS:,}; memory grows with it)",
    )
    return parser


@contextmanager
def progress_bar(stream: object = None) -> Iterator[Progress]:
    """A progress bar on stderr when it is a terminal (rows done, rows/s, time left); nothing otherwise."""
    with tqdm(unit=" rows", unit_scale=True, file=stream or sys.stderr, disable=None, smoothing=0.1) as bar:

        def update(rows: int, expected: int | None) -> None:
            if expected is not None:
                bar.total = expected
            bar.update(rows - bar.n)

        yield update


def summary_line(rows: int, output: object, seconds: float, model_version: str, synthetic: bool) -> str:
    """The one line a batch command ends with (`ml.predict`, `ml.predict_spark`); `seconds` from the start."""
    kind = "SYNTHETIC data: these predictions say nothing about real people" if synthetic else "real data"
    rate = f"{rows / seconds:,.0f}" if seconds > 0 else "-"
    return (
        f"wrote {rows:,} predictions to {output} in {seconds:.1f} s "
        f"({rate} rows/s from the start, model loading included; model {model_version}, trained on {kind})"
    )


def run(argv: Sequence[str] | None, started: float) -> int:
    """Parse, load the model, score; the exit code (0 written, 2 refused, 128 + the signal when stopped)."""
    args = _parser().parse_args(argv)
    try:
        predictor = Predictor.load(args.model, expected_sha256=args.expect_sha256, batch_threads=args.threads)
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    synthetic = predictor.manifest.data.synthetic
    if synthetic:
        print(
            f"WARNING: model {predictor.version} was trained on SYNTHETIC data; its predictions say nothing about "
            "real people.",
            file=sys.stderr,
        )
    try:
        with progress_bar() as progress:
            summary = score_file(predictor, args.data, args.output, chunk_rows=args.chunk_rows, progress=progress)
    except (DataValidationError, ColumnClashError, OutputError, OSError) as exc:  # OSError: not found, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped) as exc:
        print(f"interrupted: nothing was written to {args.output}", file=sys.stderr)
        return exit_code(exc)
    seconds = time.perf_counter() - started
    print(summary_line(summary.rows, summary.output, seconds, predictor.version, synthetic))
    return 0
