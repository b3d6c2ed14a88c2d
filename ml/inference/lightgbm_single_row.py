"""Raw scores of one row through LightGBM's C "FastConfig" API: the one place that uses LightGBM internals.

`Booster.predict` redoes its setup on every call (parameter parsing, predictor construction, numpy checks); in the
service, between requests, that costs about 45 us per row against about 20 us here (`tests/benchmarks/serve.py`
measures the effect end to end). The Python package exposes no public single-row API, so this module calls
`lightgbm.basic._LIB`, `_safe_call` and `Booster._handle`. `pyproject.toml` pins LightGBM to the tested minor
release and `tests/ml/test_lightgbm_single_row.py` fails loudly when an upgrade moves or changes them.
"""

from __future__ import annotations

import ctypes
import threading
import weakref

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _safe_call
from lightgbm.libpath import _LIB

# LightGBM C API constants (c_api.h).
_PREDICT_RAW_SCORE = 1
_DTYPE_FLOAT64 = 1


def _free(handle: ctypes.c_void_p, booster: lgb.Booster) -> None:
    """Free a FastConfig; `booster` is passed only to keep it alive until then (the config points into it)."""
    _LIB.LGBM_FastConfigFree(handle)


class SingleRowScorer:
    """Raw multiclass scores of one float64 row; thread-safe (a FastConfig reuses buffers, so calls take a lock)."""

    def __init__(self, booster: lgb.Booster, n_classes: int) -> None:
        self._n_features = booster.num_feature()
        self._n_classes = n_classes
        self._handle = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_RAW_SCORE),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(booster.best_iteration),  # 0: every tree, as Booster.predict
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(self._n_features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        weakref.finalize(self, _free, self._handle, booster)
        self._lock = threading.Lock()

    def __call__(self, row: np.ndarray) -> np.ndarray:
        """Scores, shape (1, n_classes), of a C-contiguous float64 row of n_features values."""
        if row.dtype != np.float64 or row.size != self._n_features or not row.flags.c_contiguous:
            raise ValueError(f"expected one C-contiguous float64 row of {self._n_features} values")
        out = np.empty((1, self._n_classes), dtype=np.float64)
        length = ctypes.c_int64(0)
        with self._lock:
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                    self._handle,
                    ctypes.c_void_p(row.ctypes.data),
                    ctypes.byref(length),
                    ctypes.c_void_p(out.ctypes.data),
                )
            )
        if length.value != self._n_classes:
            raise RuntimeError(f"LightGBM returned {length.value} scores for one row, expected {self._n_classes}")
        return out
