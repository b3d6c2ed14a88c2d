"""A LightGBM text model through LightGBM's C API (`c_api.h`), without importing its Python package.

`import lightgbm` imports scipy and narwhals, which serving never uses: about a quarter of the service's CPU from
process start to `/ready` (`tests/benchmarks/serve.py`). This module loads the same `lib_lightgbm` the wheel ships
with ctypes and calls the C functions `lightgbm.Booster` itself calls to load a model from a string and to predict
raw scores and TreeSHAP contributions, plus the single-row "FastConfig" functions, which the Python package does not
expose: `Booster.predict` redoes its setup on every call, about twice the cost of scoring one row. Training keeps
the Python package. `pyproject.toml` pins LightGBM to the minor release checked, and
`tests/ml/test_lightgbm_capi.py` checks every call against the Python package's answers.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import platform
import threading
import weakref
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

# c_api.h constants.
_DTYPE_FLOAT64 = 1
_ROW_MAJOR = 1
_PREDICT_RAW_SCORE = 1
_PREDICT_CONTRIB = 3
_ALL_ITERATIONS = -1
_LIBRARY_NAMES = {"Windows": "lib_lightgbm.dll", "Darwin": "lib_lightgbm.dylib"}


class LightGBMError(RuntimeError):
    """A call into LightGBM failed (the message is LightGBM's own), or it loaded a model it cannot describe."""


def version() -> str:
    """The installed LightGBM's version (from its metadata: importing the package is what this module avoids)."""
    return metadata.version("lightgbm")


@cache
def _library() -> ctypes.CDLL:
    """`lib_lightgbm` from the installed wheel, where `lightgbm.libpath` finds it (found without running the
    package's `__init__`)."""
    spec = importlib.util.find_spec("lightgbm")
    folders = [Path(folder) for folder in (spec.submodule_search_locations or [])] if spec else []
    name = _LIBRARY_NAMES.get(platform.system(), "lib_lightgbm.so")
    candidates = [path for folder in folders for path in (folder / "lib" / name, folder / "bin" / name)]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise LightGBMError(f"LightGBM's library {name} is not installed (looked in {', '.join(map(str, folders))})")
    library = ctypes.cdll.LoadLibrary(str(found))
    library.LGBM_GetLastError.restype = ctypes.c_char_p
    return library


def _call(status: int) -> None:
    if status != 0:
        raise LightGBMError(_library().LGBM_GetLastError().decode("utf-8", "replace"))


class Booster:
    """A loaded model: raw multiclass scores and TreeSHAP contributions of float64 rows; thread-safe."""

    def __init__(self, model_text: str) -> None:
        """Parse `model_text` (`Booster.model_to_string`'s form). LightGBM's parser trusts its input: check it first
        (`ml.inference.model_text`)."""
        library = _library()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        _call(
            library.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(model_text.encode()), ctypes.byref(iterations), ctypes.byref(self._handle)
            )
        )
        weakref.finalize(self, library.LGBM_BoosterFree, self._handle)
        self.n_features = self._int(library.LGBM_BoosterGetNumFeature)
        self.n_classes = self._int(library.LGBM_BoosterGetNumClasses)
        self.parameters = self._loaded_parameters()

    def _int(self, function: Callable[..., int]) -> int:
        out = ctypes.c_int()
        _call(function(self._handle, ctypes.byref(out)))
        return out.value

    def _loaded_parameters(self) -> dict[str, object]:
        """The training parameters the model text records, as JSON (read as `lightgbm.Booster` reads them, so a
        parameters section it refuses is refused here too)."""
        size = 1 << 16
        for _ in range(2):  # a second time with the size LightGBM asked for
            buffer = ctypes.create_string_buffer(size)
            needed = ctypes.c_int64()
            _call(
                _library().LGBM_BoosterGetLoadedParam(self._handle, ctypes.c_int64(size), ctypes.byref(needed), buffer)
            )
            if needed.value <= size:
                break
            size = needed.value
        try:
            parameters = json.loads(buffer.value.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LightGBMError(f"its parameters are not valid JSON ({type(exc).__name__}: {exc})") from None
        if not isinstance(parameters, dict):
            raise LightGBMError("its parameters are not a JSON object")
        return parameters

    def raw_scores(self, rows: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Raw scores, shape (n, classes), as `lightgbm.Booster.predict(rows, raw_score=True)`."""
        return self._predict(rows, _PREDICT_RAW_SCORE, self.n_classes, num_threads)

    def contributions(self, rows: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """TreeSHAP values, shape (n, classes * (features + 1)): each class's per-feature values, then its bias;
        as `lightgbm.Booster.predict(rows, pred_contrib=True)`."""
        return self._predict(rows, _PREDICT_CONTRIB, self.n_classes * (self.n_features + 1), num_threads)

    def _predict(self, rows: np.ndarray, kind: int, width: int, num_threads: int) -> np.ndarray:
        matrix = np.ascontiguousarray(rows, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {matrix.shape}")
        out = np.empty((len(matrix), width), dtype=np.float64)
        length = ctypes.c_int64()
        _call(
            _library().LGBM_BoosterPredictForMat(
                self._handle,
                matrix.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(len(matrix)),
                ctypes.c_int32(self.n_features),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(kind),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(_ALL_ITERATIONS),
                ctypes.c_char_p(f"num_threads={num_threads}".encode()),
                ctypes.byref(length),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        if length.value != out.size:
            raise LightGBMError(f"LightGBM returned {length.value} values for {out.shape}")
        return out


class SingleRowScorer:
    """Raw scores of a few rows, one at a time through a FastConfig, which keeps the prediction's setup between
    calls; thread-safe.

    Each row is copied into a buffer set up once, with the output and the pointers LightGBM is given, so a row costs
    the copy and the trees (LightGBM's batch call sets its prediction up anew each time: 25-30 us more than the trees
    of one row); calls take a lock, as the FastConfig and the buffers are shared.
    """

    def __init__(self, booster: Booster) -> None:
        library = _library()
        self._handle = ctypes.c_void_p()
        _call(
            library.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_RAW_SCORE),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(_ALL_ITERATIONS),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(booster.n_features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        # The FastConfig points into the booster: the finalizer holds it until the config is freed.
        weakref.finalize(self, _free_fast_config, self._handle, booster)
        self._row = np.empty(booster.n_features, dtype=np.float64)
        self._out = np.empty(booster.n_classes, dtype=np.float64)
        self._length = ctypes.c_int64()
        self._arguments = (
            self._handle,
            self._row.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(self._length),
            self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        self._score = library.LGBM_BoosterPredictForMatSingleRowFast
        self._lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> list[list[float]]:
        """Scores of rows (n, `n_features`), each scored alone, as Python floats, one list of the classes' per row:
        for a few rows (the batch call is cheaper past a handful), read as floats by the one-row path
        (`ml.inference.postprocess.calibrate_row`) without an array made only to be read back."""
        if rows.ndim != 2 or rows.shape[1] != self._row.size:
            raise ValueError(f"expected a 2-D array of rows of {self._row.size} values, got shape {rows.shape}")
        scores = []
        with self._lock:
            for row in rows:
                self._row[:] = row
                _call(self._score(*self._arguments))
                if self._length.value != self._out.size:
                    raise LightGBMError(f"LightGBM returned {self._length.value} scores for one row")
                scores.append(self._out.tolist())
        return scores


def _free_fast_config(handle: ctypes.c_void_p, booster: Booster) -> None:
    _library().LGBM_FastConfigFree(handle)
