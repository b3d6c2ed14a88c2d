"""Synthetic BRFSS-like data for tests and demos, so nothing ever needs the real survey rows.

Features come from a Gaussian copula: four latent factors (age, socio-economic status, poor health,
metabolic load) drive correlated latent normals, each cut at the quantiles of a marginal close to the real
file's published summary. The class follows an ordered-logit latent risk that increases with GenHlth, HighBP,
HighChol, BMI, Age, DiffWalk, heart disease, stroke and CholCheck and decreases with income, education and
physical activity, so P(diabetes) is monotone in each of those features and a model has something to learn.
About 8% of rows repeat an earlier feature vector, as in the real file.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from ml.inference.digest import file_sha256
from ml.schema import COLUMNS, FEATURES, TARGET, Feature
from ml.training.data import synthetic_sidecar

#: Class shares of the real 3-class file (no diabetes, pre-diabetes, diabetes).
CLASS_SHARES = (0.8424, 0.0183, 0.1393)
#: Share of rows whose feature vector copies another row's.
DUPLICATE_SHARE = 0.08


@dataclass(frozen=True)
class _Spec:
    """How one feature is generated.

    `loadings` on the latent factors (age, socio-economic status, poor health, metabolic load); `marginal`, the
    real file's rounded summary: the share of 1s of a binary feature, the probability of each code of an ordinal
    one (lowest first), the probability of each answer of a count of days, or None for BMI (log-normal); `risk`,
    the weight per unit in the ordered-logit risk (positive = more diabetes).
    """

    loadings: tuple[float, float, float, float]
    marginal: float | tuple[float, ...] | Mapping[int, float] | None
    risk: float = 0.0


#: One entry per feature of `ml.schema`, in schema order (a test checks they are exactly FEATURE_NAMES).
#: Days out of 30: most people answer 0, and answers cluster on round numbers.
SPECS: Mapping[str, _Spec] = {
    "HighBP": _Spec((0.45, -0.05, 0.2, 0.45), 0.429, risk=0.75),
    "HighChol": _Spec((0.35, 0.0, 0.1, 0.4), 0.424, risk=0.55),
    "CholCheck": _Spec((0.3, 0.1, 0.0, 0.1), 0.963, risk=1.0),
    "BMI": _Spec((0.0, -0.1, 0.2, 0.6), None, risk=0.065),
    "Smoker": _Spec((0.1, -0.2, 0.15, 0.0), 0.443),
    "Stroke": _Spec((0.35, -0.1, 0.35, 0.1), 0.041, risk=0.15),
    "HeartDiseaseorAttack": _Spec((0.4, -0.05, 0.35, 0.15), 0.094, risk=0.3),
    "PhysActivity": _Spec((-0.1, 0.25, -0.4, -0.2), 0.757, risk=-0.1),
    "Fruits": _Spec((0.05, 0.15, -0.1, 0.0), 0.634),
    "Veggies": _Spec((0.0, 0.2, -0.1, 0.0), 0.811),
    "HvyAlcoholConsump": _Spec((-0.1, 0.0, 0.05, 0.0), 0.056, risk=-0.6),
    "AnyHealthcare": _Spec((0.3, 0.35, 0.0, 0.0), 0.951),
    "NoDocbcCost": _Spec((-0.25, -0.4, 0.2, 0.0), 0.084),
    "GenHlth": _Spec((0.15, -0.25, 0.7, 0.2), (0.179, 0.351, 0.298, 0.124, 0.048), risk=0.55),
    "MentHlth": _Spec(
        (-0.2, -0.15, 0.5, 0.0),
        {0: 0.693, 1: 0.034, 2: 0.051, 3: 0.029, 4: 0.015, 5: 0.036, 6: 0.004, 7: 0.012, 8: 0.003, 10: 0.025,
         12: 0.002, 14: 0.005, 15: 0.022, 20: 0.013, 21: 0.001, 25: 0.005, 28: 0.001, 29: 0.001, 30: 0.048},
    ),
    "PhysHlth": _Spec(
        (0.1, -0.05, 0.7, 0.0),
        {0: 0.631, 1: 0.045, 2: 0.058, 3: 0.033, 4: 0.018, 5: 0.030, 6: 0.005, 7: 0.018, 8: 0.003, 9: 0.001,
         10: 0.022, 12: 0.002, 14: 0.010, 15: 0.019, 18: 0.001, 20: 0.013, 21: 0.003, 25: 0.005, 28: 0.002,
         29: 0.001, 30: 0.076},
    ),
    "DiffWalk": _Spec((0.3, -0.15, 0.6, 0.15), 0.168, risk=0.2),
    "Sex": _Spec((0.0, 0.0, 0.0, 0.0), 0.44, risk=0.25),
    "Age": _Spec(
        (1.0, 0.0, 0.0, 0.0),
        (0.022, 0.030, 0.044, 0.054, 0.064, 0.078, 0.104, 0.122, 0.131, 0.127, 0.093, 0.063, 0.068),
        risk=0.15,
    ),
    "Education": _Spec((0.0, 0.7, 0.0, 0.0), (0.001, 0.016, 0.037, 0.247, 0.276, 0.423), risk=-0.04),
    "Income": _Spec(
        (-0.05, 0.8, -0.1, 0.0), (0.039, 0.046, 0.063, 0.079, 0.102, 0.144, 0.170, 0.357), risk=-0.07
    ),
}  # fmt: skip

# BMI: log-normal around the real median (27) with a long right tail, rounded like the real file.
_BMI_LOG_MEDIAN = float(np.log(27.5))
_BMI_LOG_SD = 0.22


def _cut(latent: np.ndarray, codes: Sequence[int], probabilities: Sequence[float]) -> np.ndarray:
    """Map standard-normal latents to codes with the given probabilities (normal quantile cut points)."""
    shares = np.asarray(probabilities, dtype=np.float64)
    cumulative = np.cumsum(shares / shares.sum())[:-1]
    cuts = np.array([NormalDist().inv_cdf(float(p)) for p in cumulative])
    return np.asarray(codes, dtype=np.int64)[np.searchsorted(cuts, latent)]


def _column(feature: Feature, spec: _Spec, latent: np.ndarray) -> np.ndarray:
    """Cut a standard-normal latent to the feature's marginal."""
    marginal = spec.marginal
    if isinstance(marginal, float):  # share of 1s
        return (latent > NormalDist().inv_cdf(1.0 - marginal)).astype(np.int64)
    if isinstance(marginal, tuple):  # probability of each code
        return _cut(latent, range(feature.minimum, feature.maximum + 1), marginal)
    if marginal is not None:  # probability of each count of days
        return _cut(latent, list(marginal), list(marginal.values()))
    bmi = np.rint(np.exp(_BMI_LOG_MEDIAN + _BMI_LOG_SD * latent))
    return np.clip(bmi, feature.minimum, feature.maximum).astype(np.float64)


def _features(n_rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    factors = rng.standard_normal((n_rows, 4))
    columns: dict[str, np.ndarray] = {}
    for feature in FEATURES:
        spec = SPECS[feature.name]
        weights = np.asarray(spec.loadings)
        own = np.sqrt(max(0.0, 1.0 - float(weights @ weights)))
        latent = factors @ weights + own * rng.standard_normal(n_rows)
        columns[feature.name] = _column(feature, spec, latent)
    return columns


def make_synthetic(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A frame in the real file's column order (`ml.schema.COLUMNS`); ints as int64, BMI float64."""
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
    risk = sum(spec.risk * columns[name] for name, spec in SPECS.items() if spec.risk)
    risk = np.asarray(risk, dtype=np.float64) + rng.logistic(size=n_rows)
    cuts = np.quantile(risk, np.cumsum(CLASS_SHARES)[:-1])
    columns[TARGET] = np.searchsorted(cuts, risk, side="right").astype(np.int64)
    return pd.DataFrame({name: columns[name] for name in COLUMNS})


def write_synthetic(path: str | Path, n_rows: int, seed: int = 0) -> Path:
    """Write a synthetic CSV (gzip when the name ends .gz) plus the sidecar `ml.training.data.is_synthetic` checks.

    Values are written as floats (`1.0`) like the Kaggle file; both files appear atomically.
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
