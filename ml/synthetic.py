"""`python -m ml.synthetic`: write a synthetic data file with the real columns (see `ml.training.synthetic_data`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ml.training.synthetic_data import write_synthetic


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml.synthetic",
        description="Write a synthetic dataset with the columns of the Kaggle 3-class BRFSS 2015 file "
        "(for tests and demos; no real survey rows).",
    )
    parser.add_argument("--rows", type=int, default=10_000, help="number of data rows (default: 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same file (default: 0)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("data/synthetic.csv.gz"),
        help="CSV file to write, gzip-compressed when it ends in .gz; a <output>.synthetic.json sidecar "
        "marks it as synthetic (default: data/synthetic.csv.gz)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    try:
        path = write_synthetic(args.output, args.rows, args.seed)
    except OSError as err:
        print(f"error: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"wrote {args.rows:,} synthetic rows (seed {args.seed}) to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
