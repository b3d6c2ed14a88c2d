"""MLflow pyfunc wrapper, logged as "models from code": MLflow stores this file, not a pickle.

`mlflow models serve` and `mlflow.pyfunc.load_model` run it; it loads the verified artifact that was logged
next to it and answers with the same result columns as `python -m ml.predict` (`ml.contract.RESULT_COLUMNS`).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

from ml.inference.predictor import Predictor
from ml.predict import result_frame
from ml.schema import FEATURE_NAMES


class DiabetesStatusModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def load_context(self, context: Any) -> None:
        self._predictor = Predictor.load(context.artifacts["model_dir"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        missing = [name for name in FEATURE_NAMES if name not in model_input.columns]
        if missing:
            raise ValueError(f"missing feature columns: {', '.join(missing)}")
        return result_frame(self._predictor, model_input)


mlflow.models.set_model(DiabetesStatusModel())
