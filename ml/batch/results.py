"""The result columns (`ml.contract.RESULT_COLUMNS`) of many rows at once, from the Predictor's arrays.

`PredictionResponse.result_row` defines them, one answer at a time; building a response object for each of a
million rows costs more than the model itself, so the columns are computed here from whole arrays, and a test
checks each one against `result_row`. A result column the contract gains without a rule here is still filled, from
`result_row`, row by row (correct, only slower), so the batch paths always write the contract's columns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.contract import RESULT_COLUMNS, PredictionResponse, ScreeningLevel
from ml.inference.predictor import Predictions, Predictor
from ml.manifest import Manifest
from ml.schema import CLASSES, FEATURE_NAMES

_Rule = Callable[[Predictions, Manifest], np.ndarray]


def _risk(answers: Predictions, manifest: Manifest) -> np.ndarray:
    """`Screening.of`: p(pre-diabetes) + p(diabetes), as 1 - p(healthy)."""
    risk: np.ndarray = np.clip(1.0 - answers.probabilities[:, 0], 0.0, 1.0)
    return risk


def _risk_level(answers: Predictions, manifest: Manifest) -> np.ndarray:
    """`ScreeningLevel.of`, on every row."""
    risk, rule = _risk(answers, manifest), manifest.screening
    levels = [ScreeningLevel.HIGH.value, ScreeningLevel.RAISED.value]
    chosen: np.ndarray = np.select([risk >= rule.high, risk >= rule.raised], levels, ScreeningLevel.LOWER.value)
    return chosen.astype(object)


def _probability(class_id: int) -> _Rule:
    return lambda answers, manifest: answers.probabilities[:, class_id]


#: How each result column is computed from the arrays, by name; `RESULT_COLUMNS` says which columns, in what order.
_RULES: dict[str, _Rule] = {
    "prediction": lambda answers, manifest: answers.classes.astype(np.int64),
    **{f"proba_{c.id}": _probability(c.id) for c in CLASSES},
    "risk": _risk,
    "risk_level": _risk_level,
    "model_version": lambda answers, manifest: np.full(len(answers.classes), manifest.model_version, dtype=object),
}


def result_columns(answers: Predictions, manifest: Manifest) -> dict[str, np.ndarray]:
    """Every column of `RESULT_COLUMNS`, in order, for the rows of `answers`."""
    columns = {name: _RULES[name](answers, manifest) for name in RESULT_COLUMNS if name in _RULES}
    unknown = [name for name in RESULT_COLUMNS if name not in _RULES]
    if unknown:
        rows = [
            PredictionResponse.of(
                int(k), p, manifest.screening, model_version=manifest.model_version, synthetic=manifest.data.synthetic
            ).result_row()
            for k, p in zip(answers.classes, answers.probabilities, strict=True)
        ]
        for name in unknown:
            position = RESULT_COLUMNS.index(name)
            columns[name] = np.asarray([row[position] for row in rows], dtype=object)
    return {name: columns[name] for name in RESULT_COLUMNS}


def result_frame(predictor: Predictor, features: pd.DataFrame) -> pd.DataFrame:
    """`RESULT_COLUMNS` for every row of a frame holding the 21 feature columns (the MLflow pyfunc answers this)."""
    answers = predictor.predict(features[list(FEATURE_NAMES)].to_numpy(dtype=np.float64))
    return pd.DataFrame(result_columns(answers, predictor.manifest))
