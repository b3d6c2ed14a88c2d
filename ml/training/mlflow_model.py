"""The MLflow pyfunc flavour of an artifact: MLflow stores data only, the code is this installed package.

`ml.training.tracking` logs the artifact folder as the model's `data_path` with this module as its
`loader_module`, and nothing else: no `code_paths`, no models-from-code file, no pickle. `mlflow.pyfunc.load_model`
then imports this module from the environment and calls `_load_pyfunc`, which loads the artifact through
`Predictor` (every file verified against the manifest; pinned when `MODEL_SHA256` or the model config's
`model_sha256` is set) and answers with the same result columns as `python -m ml.predict`
(`ml.contract.RESULT_COLUMNS`).

An MLmodel file is still read from the store, and a tampered one could name code of its own (a `code` folder put
first on `sys.path`, another loader module, a models-from-code file). `load_pinned` is the verified path: it
downloads the model, checks that its MLmodel names this loader and no code, and that the artifact's digest is the
pinned one, before MLflow reads any of it. (`mlflow models serve` reads the MLmodel itself: there, set
`MODEL_SHA256` and trust the store's MLmodel, or serve with the project's service, which imports nothing from it.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow.pyfunc import PyFuncModel

from ml.batch.results import result_frame
from ml.inference.artifact import ArtifactError, check_pin
from ml.inference.digest import artifact_digest
from ml.inference.loader import download_from_mlflow, read_folder
from ml.inference.predictor import Predictor
from ml.schema import FEATURE_NAMES

#: The pyfunc flavour keys this module's models carry (MLflow writes them all); any other is refused.
_PYFUNC_KEYS = frozenset({"loader_module", "data", "code", "env", "python_version", "streamable"})
#: The model config key that pins the artifact's digest.
PIN_KEY = "model_sha256"


class DiabetesStatusPyfunc:
    """What `mlflow.pyfunc.load_model` wraps: the verified `Predictor`, answering a DataFrame of the feature columns."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        missing = [name for name in FEATURE_NAMES if name not in model_input.columns]
        if missing:
            raise ValueError(f"missing feature columns: {', '.join(missing)}")
        return result_frame(self.predictor, model_input)


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> DiabetesStatusPyfunc:
    """MLflow's entry point: the artifact folder, pinned by every pin given (they must agree)."""
    pins = {pin for pin in ((model_config or {}).get(PIN_KEY), os.environ.get("MODEL_SHA256")) if pin}
    if len(pins) > 1:
        raise ArtifactError(f"two different digests pin this model ({', '.join(sorted(pins))}); set one")
    return DiabetesStatusPyfunc(Predictor.load(data_path, expected_sha256=pins.pop() if pins else None))


def pyfunc_data_folder(model_dir: Path, source: str) -> Path:
    """The artifact folder of a downloaded MLflow model, once its MLmodel is known to load nothing but this module."""
    try:
        meta = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read the MLmodel file of {source}: {exc}") from None
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    if not isinstance(flavors, dict) or set(flavors) != {"python_function"}:
        raise ArtifactError(f"{source} is not a model logged by ml.train: its flavours are {flavors!r}")
    conf = flavors["python_function"]
    problems = []
    if not isinstance(conf, dict):
        conf = {}
        problems.append("no python_function settings")
    if conf.get("loader_module") != __name__:
        problems.append(f"loader_module {conf.get('loader_module')!r} (expected {__name__!r})")
    if conf.get("code"):
        problems.append(f"code from the store ({conf['code']!r})")
    if set(conf) - _PYFUNC_KEYS:
        problems.append(f"unexpected settings {sorted(set(conf) - _PYFUNC_KEYS)}")
    data = (model_dir / str(conf.get("data", ""))).resolve()
    if not data.is_dir() or not data.is_relative_to(model_dir.resolve()) or data == model_dir.resolve():
        problems.append(f"data {conf.get('data')!r} is not a folder inside the model")
    if problems:
        raise ArtifactError(f"refusing to load {source}: its MLmodel names {'; '.join(problems)}")
    return data


def load_pinned(model_uri: str, expected_sha256: str) -> PyFuncModel:
    """`mlflow.pyfunc.load_model`, after checking the downloaded model: MLmodel and artifact digest.

    Nothing from the store is imported or parsed (beyond the MLmodel's YAML) until both checks pass; a different
    artifact raises `ArtifactError` naming both digests.
    """
    with tempfile.TemporaryDirectory(prefix="pyfunc-") as tmp:
        local = download_from_mlflow(model_uri, tmp)
        data = pyfunc_data_folder(local, model_uri)
        check_pin(artifact_digest(read_folder(data)), expected_sha256, model_uri)
        model: PyFuncModel = mlflow.pyfunc.load_model(str(local), model_config={PIN_KEY: expected_sha256})
        return model
