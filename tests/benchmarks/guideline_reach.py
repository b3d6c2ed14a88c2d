"""How many people the 'lower' level reaches whom the US screening guideline advises a blood test (not collected by
pytest). The card tells them the guideline advises a test at their age and weight instead of "no blood test".

    uv run python -m tests.benchmarks.guideline_reach [--data PATH] [--model DIR]

On the promotion holdout (rows no model was fitted, tuned or chosen on): people whose screening level is 'lower',
those of them the guideline covers (`ml.contract.guideline_advises_test`: Age bands 35-39 to 65-69, BMI 25 or more),
split by whether they are in care, and how many of those carry a diagnosis of pre-diabetes or diabetes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ml.batch.results import result_columns
from ml.contract import guideline_advises_test
from ml.inference.predictor import Predictor
from ml.schema import TARGET
from ml.training.data import features_matrix, read_data_file
from ml.training.holdout import in_holdout
from ml.training.real_data import existing_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the real 3-class file (default: data/)")
    parser.add_argument("--model", type=Path, default=Path("artifacts/model"))
    args = parser.parse_args(argv)
    data = args.data or existing_file(Path("data"))
    if data is None:
        print("real data file not found; run `uv run python -m ml.download` or pass --data", file=sys.stderr)
        return 2
    frame = read_data_file(data)
    rows = features_matrix(frame)
    holdout = in_holdout(rows)
    rows, affected = rows[holdout], frame[TARGET].to_numpy()[holdout] > 0
    predictor = Predictor.load(args.model)
    columns = result_columns(rows, predictor.predict(rows), predictor.manifest)
    lower = columns["risk_level"] == "lower"
    covered = np.array([guideline_advises_test(row) for row in rows])
    in_care = columns["care_access"] == ""
    reached = lower & covered
    print(f"promotion holdout: {len(rows):,} people; the guideline covers {covered.sum():,}")
    print(
        f"'lower': {lower.sum():,}; of them the guideline covers {reached.sum():,} ({reached.sum() / lower.sum():.1%})"
    )
    print(f"  in care (the card's 'advised at your age and weight'): {(reached & in_care).sum():,}")
    print(f"  outside care (the card's 'worth having' already): {(reached & ~in_care).sum():,}")
    print(f"  of the covered at 'lower', with pre-diabetes or diabetes: {(reached & affected).sum():,}")
    print(f"the guideline's people told 'lower': {reached.sum() / covered.sum():.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
