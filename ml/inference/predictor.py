"""The Predictor: a verified model loaded once, then one method that turns feature rows into decisions.

Every caller (the service, `python -m ml.predict`, the MLflow pyfunc, champion scoring, the benchmarks) goes
through `Predictor.predict`, so "raw scores, calibrate, decide" exists once. It imports only numpy and LightGBM's C
library (`ml.inference.lightgbm_capi`; plus boto3 or MLflow lazily, for `s3://` and `models:/` URIs), so the service
that embeds it stays small and starts fast.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ml.inference.artifact import LoadedArtifact
from ml.inference.explain import risk_log_odds_contributions
from ml.inference.lightgbm_capi import SingleRowScorer
from ml.inference.loader import load_artifact
from ml.inference.postprocess import calibrate, calibrate_row, decide, decide_row
from ml.inference.screening import access_columns, in_care, with_in_care_copy
from ml.manifest import Manifest
from ml.schema import FEATURE_NAMES, N_CLASSES

_N_FEATURES = len(FEATURE_NAMES)


@dataclass(frozen=True)
class Predictions:
    """Decisions for n rows: class ids (n,), calibrated probabilities (n, 3) and, on request, contributions.

    `screening_probabilities` (n, 3): the calibrated probabilities of the same rows with every access-to-care answer
    read as "in care" (`ml.inference.screening`), what the screening risk is computed from; the same array as
    `probabilities` when every row is in care. `contributions` (n, features): each answer's share of the screening
    risk's log-odds, from TreeSHAP on the calibrated scale (`ml.inference.explain`); 0 for the access answers, which
    do not move it.
    """

    classes: np.ndarray
    probabilities: np.ndarray
    screening_probabilities: np.ndarray
    contributions: np.ndarray | None = None


class Predictor:
    """A verified model ready to serve; thread-safe."""

    def __init__(self, artifact: LoadedArtifact, *, batch_threads: int = 1) -> None:
        """`batch_threads`: LightGBM threads for a call with several rows. 1 (the default) suits a server, whose
        requests already run side by side; batch scoring (`ml.batch`) gives it every core. One row not explained
        never uses more.
        """
        if batch_threads < 1:
            raise ValueError(f"batch_threads must be at least 1, got {batch_threads}")
        self._booster = artifact.booster
        self._artifact = artifact
        self._score_rows_alone = SingleRowScorer(artifact.booster)
        self._batch_threads = batch_threads

    @classmethod
    def load(cls, uri: str | Path, *, expected_sha256: str | None = None, batch_threads: int = 1) -> Predictor:
        """Load from a local directory, `s3://bucket/prefix` or MLflow (`models:/name@alias`, `runs:/id/model`).

        `expected_sha256`: refuse any artifact but the one with this digest (checked before anything is parsed).
        """
        return cls(load_artifact(uri, expected_sha256), batch_threads=batch_threads)

    @property
    def manifest(self) -> Manifest:
        return self._artifact.manifest

    @property
    def version(self) -> str:
        return self._artifact.version

    @property
    def digest(self) -> str:
        """sha256 over every file of the artifact (see `ml.inference.digest.artifact_digest`)."""
        return self._artifact.digest

    def predict(self, rows: ArrayLike, *, explain: bool = False) -> Predictions:
        """Rows of the features in schema order (one row may be a flat sequence)."""
        matrix = np.asarray(rows, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.ndim != 2 or matrix.shape[1] != _N_FEATURES:
            raise ValueError(f"expected rows of {_N_FEATURES} features in schema order, got shape {matrix.shape}")
        if len(matrix) == 1 and not explain:
            return self._predict_one(matrix)
        # The rows as given and, after them, the changed rows read as "in care": scored, then calibrated in one
        # pass (one row outside the care system is two rows of three scores, not two calibrations).
        screened, changed = in_care(matrix)
        score = functools.partial(self._booster.raw_scores, num_threads=self._batch_threads)
        raw = score(matrix)
        outside_care = screened is not matrix  # `in_care` returns the rows themselves when none changed
        if outside_care:
            raw = np.concatenate([raw, score(screened[changed])])
        calibrated = calibrate(raw, self.manifest.calibration)
        probabilities = calibrated[: len(matrix)]
        screening = probabilities
        if outside_care:
            screening = probabilities.copy()
            screening[changed] = calibrated[len(matrix) :]
        classes = decide(probabilities, self.manifest.decision_rule)
        contributions = self._contributions(screened, screening) if explain else None
        return Predictions(classes, probabilities, screening, contributions)

    def _predict_one(self, row: np.ndarray) -> Predictions:
        """`predict` of one row (1, features), the service's hot path: the row and, outside the care system, its
        in-care copy, scored alone (`SingleRowScorer`) and calibrated together; what `predict` of several rows gives
        each, bit for bit (`test_one_row_alone_answers_as_inside_a_batch`), without `in_care`'s numpy reductions
        and calibrated and decided in Python floats (`calibrate_row`, `decide_row`): numpy's calls on so few values
        cost more than the arithmetic. Outside care, warm: 70 us through `in_care` and numpy, 44-45 us here, most of
        it the trees; the service's `/predict` in process 336 -> 298-301 us with the logging switches beside it."""
        rows = with_in_care_copy(row)
        manifest = self.manifest
        calibrated = [calibrate_row(raw, manifest.calibration) for raw in self._score_rows_alone(rows)]
        probabilities = np.array(calibrated[:1])
        screening = np.array(calibrated[1:]) if len(rows) == 2 else probabilities
        classes = np.array([decide_row(calibrated[0], manifest.decision_rule)])
        return Predictions(classes, probabilities, screening)

    def _contributions(self, screened: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """TreeSHAP (LightGBM `pred_contrib`) of the in-care rows' three raw scores, as shares of the screening
        risk's log-odds; the access answers, read as "in care" for everyone, get none."""
        contrib = self._booster.contributions(screened, num_threads=1)
        shap = contrib.reshape(len(screened), N_CLASSES, _N_FEATURES + 1)[:, :, :-1]
        shares = risk_log_odds_contributions(shap, probabilities, self.manifest.calibration.temperature)
        shares[:, access_columns()] = 0.0
        return shares
