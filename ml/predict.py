"""`python -m ml.predict`: predict every row of a CSV or Parquet file with a trained model (the batch command line).

The work is `ml.batch.scoring.score_file` (chunked, bounded memory, all cores); this module parses the options,
shows a progress bar on a terminal and says what happened in one line.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from ml.batch.scoring import DEFAULT_CHUNK_ROWS, ColumnClashError, Progress, score_file
from ml.batch.sinks import OutputFormatError
from ml.contract import RESULT_COLUMNS
from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor
from ml.manifest import SHA256_PATTERN
from ml.training.data import DataValidationError


def sha256_digest(text: str) -> str:
    """An `--expect-sha256` value: 64 lowercase hex digits."""
    if not re.fullmatch(SHA256_PATTERN, text):
        raise argparse.ArgumentTypeError(f"expected 64 lowercase hex digits (as ml.train prints), got {text!r}")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.predict",
        description="Predict the diabetes status of every row of a CSV or Parquet file with the health indicator "
        "columns. The file is read, checked, predicted and written in chunks, so memory stays bounded whatever "
        "its size; nothing is written unless every row is valid.",
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
        help="CSV, CSV.gz or Parquet (.parquet) with the feature columns; other columns (an id, Diabetes_012) "
        "are copied as given",
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help=f"where to write the input's columns, then {','.join(RESULT_COLUMNS)}, one row per input row, in order; "
        ".parquet writes Parquet, .csv.gz gzip-compressed CSV, any other name CSV",
    )
    parser.add_argument(
        "--expect-sha256",
        type=sha256_digest,
        help="refuse the model unless its digest is this one (what ml.train prints; checked before parsing it)",
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        default=len(os.sched_getaffinity(0)),
        help="LightGBM threads (default: every core this process may use)",
    )
    parser.add_argument(
        "--chunk-rows",
        type=_positive,
        default=DEFAULT_CHUNK_ROWS,
        help="rows read, checked, predicted and written at a time (memory grows with it)",
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
    """The one line a batch command ends with (`ml.predict`, `ml.predict_spark`)."""
    kind = "SYNTHETIC data: these predictions say nothing about real people" if synthetic else "real data"
    rate = f"{rows / seconds:,.0f}" if seconds > 0 else "-"
    return (
        f"wrote {rows:,} predictions to {output} in {seconds:.1f} s "
        f"({rate} rows/s; model {model_version}, trained on {kind})"
    )


class _TerminatedError(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt, so no handler of errors catches it)."""


def _stop(signum: int, frame: object) -> None:
    raise _TerminatedError


def main(argv: Sequence[str] | None = None) -> int:
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
    previous = signal.signal(signal.SIGTERM, _stop)  # a scheduler's stop unwinds like Ctrl-C: no file is left
    try:
        with progress_bar() as progress:
            summary = score_file(predictor, args.data, args.output, chunk_rows=args.chunk_rows, progress=progress)
    except (DataValidationError, ColumnClashError, OutputFormatError, OSError) as exc:  # OSError: not found, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _TerminatedError) as exc:
        print(f"interrupted: nothing was written to {args.output}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, _TerminatedError) else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary_line(summary.rows, summary.output, summary.seconds, predictor.version, synthetic))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
