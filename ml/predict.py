"""`python -m ml.predict`: predict every row of a CSV file with a trained model (the batch command line)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor
from ml.manifest import SHA256_PATTERN
from ml.schema import CLASSES

#: Columns of the output file and of the MLflow pyfunc's answer; other tools read them, keep them stable.
PREDICTION_COLUMNS = ("prediction", *(f"proba_{c.id}" for c in CLASSES))


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
        help="CSV or CSV.gz with the 21 feature columns (Diabetes_012 is ignored)",
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help=f"where to write {','.join(PREDICTION_COLUMNS)} (one row per input row, input order)",
    )
    parser.add_argument(
        "--expect-sha256",
        type=_sha256,
        help="refuse the model unless its digest is this one (what ml.train prints; checked before parsing it)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ml.training.data import DataValidationError, features_matrix, read_csv

    try:
        predictor = Predictor.load(args.model, expected_sha256=args.expect_sha256)
        frame = read_csv(args.data, target="ignore")
    except (ArtifactError, DataValidationError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predictions = predictor.predict(features_matrix(frame))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w") as out:
        out.write(",".join(PREDICTION_COLUMNS) + "\n")
        for k, p in zip(predictions.classes, predictions.probabilities, strict=True):
            out.write(f"{k}," + ",".join(f"{v:.6f}" for v in p) + "\n")
    print(f"wrote {len(predictions.classes)} predictions to {args.output} (model {predictor.version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
