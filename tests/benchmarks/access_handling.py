"""How should the answers about access to care enter the screening risk? The options, measured side by side on the
real file (not collected by pytest).

    uv run python -m tests.benchmarks.access_handling [--data PATH] [--seeds 42 1 2 3 4 5 6 7 8] [--learning-rate 0.1]
        [--output FILE]

The survey's label is a doctor's diagnosis, so a model learns that people outside the care system (`CholCheck` 0,
`AnyHealthcare` 0, `NoDocbcCost` 1) are seldom diagnosed and tells them they are fine. For each grouped split (the
folds `ml.train` uses: promotion holdout out, the seed's test split, the validation fold inside its training part),
LightGBM is fitted with `ml.train`'s settings (but for the learning rate: 0.1 by default, twice `ml.train`'s, which
halves the time; every option is fitted alike) and early stopping on the validation fold, and each option's score is
measured on the test rows:

- `as_given`: the multiclass model's p(pre-diabetes) + p(diabetes) of the answers as given (the old screening risk);
- `in_care`: the same model, every access answer read as "in care" (what the service serves);
- `max_in_care`: the same model, the largest risk over the access answers at least as "in care" as the person's own;
- `left_out`: a multiclass model fitted without the three access answers;
- `monotone`: a binary model (pre-diabetes or diabetes) with LightGBM monotone constraints in the safe direction
  (multiclass constraints apply to every class's score alike, so they cannot make 1 - p(no diabetes) monotone).

For each: ROC-AUC for pre-diabetes or diabetes, specificity at the ADA risk test's sensitivity, the share of
in-care people whose score falls when one access answer is changed to "no access", and, at the threshold with the
ADA test's sensitivity on the validation fold, how often people not checked in five years are flagged (the ADA test
beside it). The served model's own figures per split are in `tests/benchmarks/model_quality.py`'s report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from ml.inference.postprocess import softmax
from ml.inference.screening import in_care, not_checked
from ml.schema import CARE_ACCESS, FEATURE_NAMES
from ml.training.ada import HIGH_RISK_POINTS, ada_risk_points
from ml.training.ada_comparison import screening_comparison
from ml.training.data import read_data_file
from ml.training.pipeline import TrainingConfig, split_folds
from ml.training.real_data import existing_file

OPTIONS = ("as_given", "in_care", "max_in_care", "left_out", "monotone")
_ACCESS = [FEATURE_NAMES.index(name) for name in CARE_ACCESS]
_KEPT = [j for j in range(len(FEATURE_NAMES)) if j not in _ACCESS]
#: The safe direction: the risk may not fall as access is lost (CholCheck and AnyHealthcare 1 -> 0, NoDocbcCost 0 -> 1).
_SAFE = {name: -1 if in_care_value == 1 else 1 for name, in_care_value in CARE_ACCESS.items()}


Pair = tuple[np.ndarray, np.ndarray]


def _fit(config: TrainingConfig, params: dict[str, Any], x: Pair, y: Pair) -> lgb.Booster:
    """Fitted on the fit fold (`x[0]`, `y[0]`), early stopping on the validation fold."""
    fit_set = lgb.Dataset(x[0], y[0], free_raw_data=False)
    val_set = lgb.Dataset(x[1], y[1], reference=fit_set)
    return lgb.train(
        params,
        fit_set,
        num_boost_round=config.max_rounds,
        valid_sets=[val_set],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )


def _multiclass_risk(booster: lgb.Booster, rows: np.ndarray) -> np.ndarray:
    risk: np.ndarray = 1.0 - softmax(np.asarray(booster.predict(rows, raw_score=True)))[:, 0]
    return risk


def _max_in_care(booster: lgb.Booster, rows: np.ndarray) -> np.ndarray:
    """Per row, the largest risk over the access answers that are each either the row's own or "in care"."""
    best = np.full(len(rows), -np.inf)
    for values in itertools.product((0.0, 1.0), repeat=len(_ACCESS)):
        allowed = np.ones(len(rows), dtype=bool)
        moved = rows.copy()
        for column, value, in_care_value in zip(_ACCESS, values, CARE_ACCESS.values(), strict=True):
            allowed &= (rows[:, column] == value) | (value == in_care_value)
            moved[:, column] = value
        best = np.where(allowed, np.maximum(best, _multiclass_risk(booster, moved)), best)
    return best


def scorers(config: TrainingConfig, folds: Any) -> dict[str, Any]:
    """Each option as a function of feature rows (answers as given)."""
    params = config.lightgbm_params()
    x, y = (folds.x_fit, folds.x_val), (folds.y_fit, folds.y_val)
    full = _fit(config, params, x, y)
    left_out = _fit(config, params, (x[0][:, _KEPT], x[1][:, _KEPT]), y)
    constraints = [_SAFE.get(name, 0) for name in FEATURE_NAMES]
    binary = {**params, "objective": "binary", "monotone_constraints": constraints}
    binary.pop("num_class")
    monotone = _fit(config, binary, x, ((y[0] > 0).astype(np.int64), (y[1] > 0).astype(np.int64)))
    return {
        "as_given": lambda rows: _multiclass_risk(full, rows),
        "in_care": lambda rows: _multiclass_risk(full, in_care(rows)[0]),
        "max_in_care": lambda rows: _max_in_care(full, rows),
        "left_out": lambda rows: _multiclass_risk(left_out, rows[:, _KEPT]),
        "monotone": lambda rows: np.asarray(monotone.predict(rows)),
    }


def measure(score: Any, folds: Any) -> dict[str, float]:
    """One option on one split's test rows (thresholds from the validation fold)."""
    x_val, y_val, x_test, y_test = folds.x_val, folds.y_val, folds.x_test, folds.y_test
    test_score = score(x_test)
    points = ada_risk_points(x_test)
    compared = screening_comparison(y_test > 0, test_score, points)
    val_positive = y_val > 0
    ada_val = ada_risk_points(x_val)[val_positive] >= HIGH_RISK_POINTS
    threshold = float(np.quantile(score(x_val)[val_positive], 1.0 - ada_val.mean(), method="lower"))
    unchecked = not_checked(x_test)
    in_care_rows = x_test[~in_care(x_test)[1]]
    base = score(in_care_rows)
    lowered = []
    for column, in_care_value in zip(_ACCESS, CARE_ACCESS.values(), strict=True):
        flipped = in_care_rows.copy()
        flipped[:, column] = 1 - in_care_value
        lowered.append(float((score(flipped) < base - 1e-12).mean()))
    return {
        "roc_auc": compared.model_roc_auc,
        "specificity_at_ada_sensitivity": compared.model_specificity,
        "lowered_by_one_access_answer": max(lowered),
        "not_checked_flagged": float((test_score[unchecked] >= threshold).mean()),
        "not_checked_ada_flagged": float((points[unchecked] >= HIGH_RISK_POINTS).mean()),
    }


def _spread(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 4), "sd": round(sd, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the real 3-class file (default: data/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4, 5, 6, 7, 8])
    parser.add_argument("--learning-rate", type=float, default=0.1, help="LightGBM learning rate of every option")
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    args = parser.parse_args()
    data = args.data or existing_file(Path("data"))
    if data is None:
        print("real data file not found; run `uv run python -m ml.download` or pass --data", file=sys.stderr)
        return 2
    frame = read_data_file(data)
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    for seed in args.seeds:
        started = time.perf_counter()
        config = TrainingConfig(seed=seed, learning_rate=args.learning_rate)
        folds = split_folds(frame, config)
        per_seed[str(seed)] = {
            name: {k: round(v, 4) for k, v in measure(score, folds).items()}
            for name, score in scorers(config, folds).items()
        }
        print(f"seed {seed} ({time.perf_counter() - started:.0f} s): {per_seed[str(seed)]}", file=sys.stderr)
    summary = {
        option: {
            figure: {
                "mean": round(statistics.fmean(s[option][figure] for s in per_seed.values()), 4),
                "sd": round(statistics.stdev(s[option][figure] for s in per_seed.values()), 4)
                if len(per_seed) > 1
                else 0.0,
            }
            for figure in next(iter(per_seed.values()))[option]
        }
        for option in OPTIONS
    }
    report = {
        "command": "uv run python -m tests.benchmarks.access_handling --seeds "
        + " ".join(map(str, args.seeds))
        + f" --learning-rate {args.learning_rate:g}",
        "per_seed": per_seed,
        "summary": summary,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
