"""The one module on LightGBM internals: it agrees with the public API, and fails loudly when an upgrade breaks it."""

from __future__ import annotations

import ctypes
from importlib import metadata
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from packaging.requirements import Requirement

from ml.inference.lightgbm_single_row import SingleRowScorer
from ml.inference.loader import load_artifact
from ml.schema import FEATURE_NAMES, N_CLASSES
from ml.training.data import features_matrix
from ml.training.synthetic_data import make_synthetic

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_lightgbm_is_within_the_pinned_range() -> None:
    """The private calls were checked against this range; a release outside it must be checked again first."""
    import tomllib

    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [pin] = [Requirement(d) for d in dependencies if Requirement(d).name == "lightgbm"]
    assert pin.specifier.contains(metadata.version("lightgbm")), (
        f"lightgbm {metadata.version('lightgbm')} is outside the tested range {pin.specifier}: check "
        "ml/inference/lightgbm_single_row.py against its C API, then widen the pin"
    )
    assert not pin.specifier.contains("99.0"), "the pin must have an upper bound"


def test_the_private_symbols_it_uses_exist() -> None:
    from lightgbm.basic import _safe_call
    from lightgbm.libpath import _LIB

    assert callable(_safe_call)
    for symbol in ("LGBM_BoosterPredictForMatSingleRowFastInit", "LGBM_BoosterPredictForMatSingleRowFast"):
        assert hasattr(_LIB, symbol), f"LightGBM's C library no longer exports {symbol}"
    assert isinstance(lgb.Booster(model_str=_tiny_model())._handle, ctypes.c_void_p)


def test_scores_equal_the_public_api_row_by_row(trained_model_dir: Path) -> None:
    booster = load_artifact(trained_model_dir).booster
    rows = features_matrix(make_synthetic(300, seed=8))
    expected = np.asarray(booster.predict(rows, raw_score=True)).reshape(-1, N_CLASSES)
    score = SingleRowScorer(booster, N_CLASSES)
    actual = np.vstack([score(np.ascontiguousarray(row)) for row in rows])
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def test_a_row_of_the_wrong_shape_or_type_is_refused(trained_model_dir: Path) -> None:
    score = SingleRowScorer(load_artifact(trained_model_dir).booster, N_CLASSES)
    width = len(FEATURE_NAMES)
    for bad in (np.zeros(width - 1), np.zeros(width, dtype=np.float32), np.zeros((2, width))[:, 0]):
        with pytest.raises(ValueError, match=f"one C-contiguous float64 row of {width} values"):
            score(bad)


def _tiny_model() -> str:
    data = lgb.Dataset(np.arange(40, dtype=np.float64).reshape(20, 2), label=np.arange(20) % 2)
    return str(lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 2}, data, 1).model_to_string())
