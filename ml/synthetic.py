"""Synthetic BRFSS-like data for tests and demos, so nothing ever needs the real survey rows.

Features come from a Gaussian copula: four latent factors (age, socio-economic status, poor health,
metabolic load) drive correlated latent normals, each cut at the quantiles of a marginal close to the real
file's published summary. The class follows an ordered-logit latent risk that increases with GenHlth, HighBP,
HighChol, BMI, Age, DiffWalk, heart disease, stroke and CholCheck and decreases with income, education and
physical activity, so P(diabetes) is monotone in each of those features and a model has something to learn.
About 8% of rows repeat an earlier feature vector, as in the real file.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from ml.data import synthetic_sidecar
from ml.digest import file_sha256
from ml.schema import COLUMNS, FEATURES_BY_NAME, TARGET

#: Class shares of the real 3-class file (no diabetes, pre-diabetes, diabetes).
CLASS_SHARES = (0.8424, 0.0183, 0.1393)
#: Share of rows whose feature vector copies another row's.
DUPLICATE_SHARE = 0.08

# Latent factor loadings per feature: (age, socio-economic status, poor health, metabolic load).
_LOADINGS: Mapping[str, tuple[float, float, float, float]] = {
    "HighBP": (0.45, -0.05, 0.2, 0.45),
    "HighChol": (0.35, 0.0, 0.1, 0.4),
    "CholCheck": (0.3, 0.1, 0.0, 0.1),
    "BMI": (0.0, -0.1, 0.2, 0.6),
    "Smoker": (0.1, -0.2, 0.15, 0.0),
    "Stroke": (0.35, -0.1, 0.35, 0.1),
    "HeartDiseaseorAttack": (0.4, -0.05, 0.35, 0.15),
    "PhysActivity": (-0.1, 0.25, -0.4, -0.2),
    "Fruits": (0.05, 0.15, -0.1, 0.0),
    "Veggies": (0.0, 0.2, -0.1, 0.0),
    "HvyAlcoholConsump": (-0.1, 0.0, 0.05, 0.0),
    "AnyHealthcare": (0.3, 0.35, 0.0, 0.0),
    "NoDocbcCost": (-0.25, -0.4, 0.2, 0.0),
    "GenHlth": (0.15, -0.25, 0.7, 0.2),
    "MentHlth": (-0.2, -0.15, 0.5, 0.0),
    "PhysHlth": (0.1, -0.05, 0.7, 0.0),
    "DiffWalk": (0.3, -0.15, 0.6, 0.15),
    "Sex": (0.0, 0.0, 0.0, 0.0),
    "Age": (1.0, 0.0, 0.0, 0.0),
    "Education": (0.0, 0.7, 0.0, 0.0),
    "Income": (-0.05, 0.8, -0.1, 0.0),
}

# Share of 1s of the binary features (rounded summary statistics of the real file).
_PREVALENCE: Mapping[str, float] = {
    "HighBP": 0.429,
    "HighChol": 0.424,
    "CholCheck": 0.963,
    "Smoker": 0.443,
    "Stroke": 0.041,
    "HeartDiseaseorAttack": 0.094,
    "PhysActivity": 0.757,
    "Fruits": 0.634,
    "Veggies": 0.811,
    "HvyAlcoholConsump": 0.056,
    "AnyHealthcare": 0.951,
    "NoDocbcCost": 0.084,
    "DiffWalk": 0.168,
    "Sex": 0.44,
}

# Probability of each code, lowest code first (rounded summary statistics of the real file).
_ORDINAL_PMF: Mapping[str, tuple[float, ...]] = {
    "GenHlth": (0.179, 0.351, 0.298, 0.124, 0.048),
    "Age": (0.022, 0.030, 0.044, 0.054, 0.064, 0.078, 0.104, 0.122, 0.131, 0.127, 0.093, 0.063, 0.068),
    "Education": (0.001, 0.016, 0.037, 0.247, 0.276, 0.423),
    "Income": (0.039, 0.046, 0.063, 0.079, 0.102, 0.144, 0.170, 0.357),
}

# Days out of 30: most people answer 0; answers cluster on round numbers.
_DAYS_PMF: Mapping[str, Mapping[int, float]] = {
    "MentHlth": {0: 0.693, 1: 0.034, 2: 0.051, 3: 0.029, 4: 0.015, 5: 0.036, 6: 0.004, 7: 0.012, 8: 0.003,
                 10: 0.025, 12: 0.002, 14: 0.005, 15: 0.022, 20: 0.013, 21: 0.001, 25: 0.005, 28: 0.001,
                 29: 0.001, 30: 0.048},
    "PhysHlth": {0: 0.631, 1: 0.045, 2: 0.058, 3: 0.033, 4: 0.018, 5: 0.030, 6: 0.005, 7: 0.018, 8: 0.003,
                 9: 0.001, 10: 0.022, 12: 0.002, 14: 0.010, 15: 0.019, 18: 0.001, 20: 0.013, 21: 0.003,
                 25: 0.005, 28: 0.002, 29: 0.001, 30: 0.076},
}  # fmt: skip

# BMI: log-normal around the real median (27) with a long right tail, rounded like the real file.
_BMI_LOG_MEDIAN = float(np.log(27.5))
_BMI_LOG_SD = 0.22

# Ordered-logit risk: weight per unit of each feature (positive = more diabetes).
RISK_WEIGHTS: Mapping[str, float] = {
    "GenHlth": 0.55,
    "HighBP": 0.75,
    "HighChol": 0.55,
    "BMI": 0.065,
    "Age": 0.15,
    "DiffWalk": 0.2,
    "HeartDiseaseorAttack": 0.3,
    "Stroke": 0.15,
    "CholCheck": 1.0,
    "Sex": 0.25,
    "HvyAlcoholConsump": -0.6,
    "PhysActivity": -0.1,
    "Income": -0.07,
    "Education": -0.04,
}


def _cut(latent: np.ndarray, codes: Sequence[int], probabilities: Sequence[float]) -> np.ndarray:
    """Map standard-normal latents to codes with the given probabilities (normal quantile cut points)."""
    shares = np.asarray(probabilities, dtype=np.float64)
    cumulative = np.cumsum(shares / shares.sum())[:-1]
    cuts = np.array([NormalDist().inv_cdf(float(p)) for p in cumulative])
    return np.asarray(codes, dtype=np.int64)[np.searchsorted(cuts, latent)]


def _features(n_rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    factors = rng.standard_normal((n_rows, 4))
    columns: dict[str, np.ndarray] = {}
    for name, loadings in _LOADINGS.items():
        weights = np.asarray(loadings)
        own = np.sqrt(max(0.0, 1.0 - float(weights @ weights)))
        latent = factors @ weights + own * rng.standard_normal(n_rows)
        spec = FEATURES_BY_NAME[name]
        if name in _PREVALENCE:
            columns[name] = (latent > NormalDist().inv_cdf(1.0 - _PREVALENCE[name])).astype(np.int64)
        elif name in _ORDINAL_PMF:
            columns[name] = _cut(latent, range(spec.minimum, spec.maximum + 1), _ORDINAL_PMF[name])
        elif name in _DAYS_PMF:
            pmf = _DAYS_PMF[name]
            columns[name] = _cut(latent, list(pmf), list(pmf.values()))
        else:  # BMI
            bmi = np.rint(np.exp(_BMI_LOG_MEDIAN + _BMI_LOG_SD * latent))
            columns[name] = np.clip(bmi, spec.minimum, spec.maximum).astype(np.float64)
    return columns


def make_synthetic(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A frame in the real file's column order (``ml.schema.COLUMNS``); ints as int64, BMI float64."""
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    rng = np.random.default_rng(seed)
    columns = _features(n_rows, rng)
    n_copies = round(DUPLICATE_SHARE * n_rows)
    if n_copies:
        copies = rng.choice(n_rows, size=n_copies, replace=False)
        sources = rng.choice(np.setdiff1d(np.arange(n_rows), copies), size=n_copies)
        for values in columns.values():
            values[copies] = values[sources]
    risk = sum(weight * columns[name] for name, weight in RISK_WEIGHTS.items())
    risk = np.asarray(risk, dtype=np.float64) + rng.logistic(size=n_rows)
    cuts = np.quantile(risk, np.cumsum(CLASS_SHARES)[:-1])
    columns[TARGET] = np.searchsorted(cuts, risk, side="right").astype(np.int64)
    return pd.DataFrame({name: columns[name] for name in COLUMNS})


def write_synthetic(path: str | Path, n_rows: int, seed: int = 0) -> Path:
    """Write a synthetic CSV (gzip when the name ends .gz) plus the sidecar ``ml.data.is_synthetic`` checks.

    Values are written as floats (``1.0``) like the Kaggle file; both files appear atomically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = make_synthetic(n_rows, seed).astype(np.float64)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    sidecar, sidecar_tmp = synthetic_sidecar(path), tmp.with_suffix(".json.tmp")
    try:
        data = frame.to_csv(index=False).encode("utf-8")
        # gzip.compress stores no file name and, with mtime=0, no time: same seed, same bytes.
        tmp.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
        meta = {
            "synthetic": True,
            "generator": "ml.synthetic",
            "seed": seed,
            "rows": n_rows,
            "sha256": file_sha256(tmp),
        }
        sidecar_tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        os.replace(sidecar_tmp, sidecar)
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_tmp.unlink(missing_ok=True)
    return path


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
