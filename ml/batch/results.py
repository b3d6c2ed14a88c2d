"""The result columns (`ml.contract.RESULT_COLUMNS`) of many rows at once, from the Predictor's arrays.

`PredictionResponse.result_row` defines them, one answer at a time; building a response object for each of a
million rows costs more than the model itself, so the columns are computed here from whole arrays, and a test
checks each one against `result_row`. A result column the contract gains without a rule here is still filled, from
`result_row`, row by row (correct, only slower), so the batch paths always write the contract's columns.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import numpy as np
import pandas as pd

from ml.contract import RESULT_COLUMNS, care_access_note, responses
from ml.inference.predictor import Predictions, Predictor
from ml.inference.screening import levels, risk_of
from ml.manifest import Manifest
from ml.schema import CARE_ACCESS, CLASSES, FEATURE_NAMES

#: A column from the rows' features (n, features), the Predictor's answers for them and the model's manifest.
_Rule = Callable[[np.ndarray, Predictions, Manifest], np.ndarray]


def _risk(features: np.ndarray, answers: Predictions, manifest: Manifest) -> np.ndarray:
    """`Screening.of`: p(pre-diabetes) + p(diabetes) of the in-care answers, as 1 - p(healthy)."""
    risk: np.ndarray = np.clip(risk_of(answers.screening_probabilities), 0.0, 1.0)
    return risk


def _risk_level(features: np.ndarray, answers: Predictions, manifest: Manifest) -> np.ndarray:
    return levels(manifest.screening, _risk(features, answers, manifest), features)


def _probability(class_id: int) -> _Rule:
    return lambda features, answers, manifest: answers.probabilities[:, class_id]


def _model_version(features: np.ndarray, answers: Predictions, manifest: Manifest) -> np.ndarray:
    return np.full(len(answers.classes), manifest.model_version, dtype=object)


def _care_access(features: np.ndarray, answers: Predictions, manifest: Manifest) -> np.ndarray:
    """`CareAccess.note`: each row's access gaps as a number (first answer the highest bit), looked up among the notes
    of every combination."""
    gaps = np.stack([features[:, FEATURE_NAMES.index(name)] != value for name, value in CARE_ACCESS.items()], axis=1)
    notes = np.asarray(
        [
            care_access_note(dict(zip(CARE_ACCESS, combination, strict=True)))
            for combination in product((False, True), repeat=len(CARE_ACCESS))
        ],
        dtype=object,
    )
    code = gaps.astype(np.int64) @ (1 << np.arange(len(CARE_ACCESS))[::-1])
    chosen: np.ndarray = notes[code]
    return chosen


#: How each result column is computed from the arrays, by name; `RESULT_COLUMNS` says which columns, in what order.
_RULES: dict[str, _Rule] = {
    "prediction": lambda features, answers, manifest: answers.classes.astype(np.int64),
    **{f"proba_{c.id}": _probability(c.id) for c in CLASSES},
    "risk": _risk,
    "risk_level": _risk_level,
    "model_version": _model_version,
    "care_access": _care_access,
}


def result_columns(features: np.ndarray, answers: Predictions, manifest: Manifest) -> dict[str, np.ndarray]:
    """Every column of `RESULT_COLUMNS`, in order, for the rows `features` (n, features) the Predictor answered."""
    columns = {name: _RULES[name](features, answers, manifest) for name in RESULT_COLUMNS if name in _RULES}
    unknown = [name for name in RESULT_COLUMNS if name not in _RULES]
    if unknown:
        rows = [
            answer.result_row()
            for answer in responses(
                answers.classes, answers.probabilities, answers.screening_probabilities, features, manifest
            )
        ]
        for name in unknown:
            position = RESULT_COLUMNS.index(name)
            columns[name] = np.asarray([row[position] for row in rows], dtype=object)
    return {name: columns[name] for name in RESULT_COLUMNS}


def result_frame(predictor: Predictor, features: pd.DataFrame) -> pd.DataFrame:
    """`RESULT_COLUMNS` for every row of a frame holding the feature columns (the MLflow pyfunc answers this)."""
    matrix = features[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    return pd.DataFrame(result_columns(matrix, predictor.predict(matrix), predictor.manifest))
