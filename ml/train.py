"""`python -m ml.train`: train, write the artifact, log the run to MLflow, print the test metrics."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ml.inference.artifact import DEFAULT_MODEL_DIR, ArtifactError
from ml.training.data import DataValidationError
from ml.training.pipeline import TrainingConfig, format_report, train


def _parser() -> argparse.ArgumentParser:
    defaults = TrainingConfig()
    parser = argparse.ArgumentParser(
        prog="python -m ml.train",
        description="Train the diabetes-status model, write the artifact, log the run to MLflow, print test metrics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,  # every default in --help
    )
    parser.add_argument("--data", required=True, type=Path, help="CSV or CSV.gz in the Kaggle 3-class format")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help="artifact directory",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for the splits and LightGBM")
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction, help="held-out test share")
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=defaults.validation_fraction,
        help="share of the training part used for early stopping, calibration and the decision rule",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="LightGBM learning rate",
    )
    parser.add_argument("--num-leaves", type=int, default=defaults.num_leaves, help="LightGBM leaves per tree")
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=defaults.max_rounds,
        help="most boosting rounds; early stopping usually ends sooner",
    )
    parser.add_argument(
        "--experiment",
        default="diabetes-status",
        help="MLflow experiment name; MLFLOW_TRACKING_URI sets the store",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow logging (artifact and metrics only)")
    parser.add_argument("--metrics-json", type=Path, help="also write the test metrics as JSON to this path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TrainingConfig(
        seed=args.seed,
        test_fraction=args.test_fraction,
        validation_fraction=args.validation_fraction,
        learning_rate=args.learning_rate,
        num_leaves=args.num_leaves,
        max_rounds=args.max_rounds,
    )
    try:
        result = train(args.data, args.output, config)
    except (DataValidationError, ArtifactError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.metrics_json:
        args.metrics_json.write_text(json.dumps(result.test_metrics, indent=2))
    if not args.no_mlflow:
        from ml.training.tracking import log_training_run

        outcome = log_training_run(result, experiment=args.experiment)
        print(outcome.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
