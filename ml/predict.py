"""`python -m ml.predict`: predict every row of a CSV file with a trained model (the batch command line)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ml.contract import RESULT_COLUMNS, PredictionResponse, Screening, clashing_columns
from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor
from ml.manifest import SHA256_PATTERN
from ml.schema import FEATURE_NAMES


class ColumnClashError(ValueError):
    """A column of the input file has the name of a result column; it would be overwritten."""


def _sha256(text: str) -> str:
    if not re.fullmatch(SHA256_PATTERN, text):
        raise argparse.ArgumentTypeError(f"expected 64 lowercase hex digits (as ml.train prints), got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.predict",
        description="Predict the diabetes status of every row of a CSV with the 21 indicator columns.",
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
        help="CSV or CSV.gz with the 21 feature columns; other columns (an id, Diabetes_012) are copied unchanged",
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help=f"where to write the input's columns, then {','.join(RESULT_COLUMNS)} (one row per input row, in order)",
    )
    parser.add_argument(
        "--expect-sha256",
        type=_sha256,
        help="refuse the model unless its digest is this one (what ml.train prints; checked before parsing it)",
    )
    return parser


def result_frame(predictor: Predictor, features: pd.DataFrame) -> pd.DataFrame:
    """`RESULT_COLUMNS` for every row of a frame holding the 21 feature columns (the MLflow pyfunc answers this)."""
    matrix = features[list(FEATURE_NAMES)].to_numpy(dtype="float64")
    answers = predictor.predict(matrix)
    manifest = predictor.manifest
    rows = [
        PredictionResponse.of(
            int(k),
            p,
            Screening.of(screened, manifest.screening, row),
            model_version=manifest.model_version,
            synthetic=manifest.data.synthetic,
        ).result_row()
        for k, p, screened, row in zip(
            answers.classes, answers.probabilities, answers.screening_probabilities, matrix.tolist(), strict=True
        )
    ]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def predictions_frame(predictor: Predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """Every input column, then `RESULT_COLUMNS` for every row (the UI's download has the same shape)."""
    clashes = clashing_columns(frame.columns)
    if clashes:
        raise ColumnClashError(
            f"the input has column(s) {', '.join(clashes)}, which the output writes; rename them and run again"
        )
    return pd.concat([frame.reset_index(drop=True), result_frame(predictor, frame)], axis=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ml.training.data import DataValidationError, read_csv

    try:
        predictor = Predictor.load(args.model, expected_sha256=args.expect_sha256)
        frame = read_csv(args.data, target="ignore", others="keep")
        output = predictions_frame(predictor, frame)
    except (ArtifactError, DataValidationError, FileNotFoundError, ColumnClashError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    output.to_csv(args.output, index=False, float_format="%.6f")
    print(f"wrote {len(output)} predictions to {args.output} (model {predictor.version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
