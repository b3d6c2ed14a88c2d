"""Fitting the post-processing on the validation fold: calibration by log loss, decision rule by weighted F1."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ml.inference.postprocess import decide, softmax
from ml.manifest import Calibration, DecisionRule
from ml.schema import N_CLASSES


def fit_calibration(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Vector scaling: minimise the multinomial log loss over log-temperature and per-class bias."""
    onehot = np.eye(N_CLASSES)[y]

    def loss(theta: np.ndarray) -> float:
        proba = softmax(raw * np.exp(-theta[0]) + theta[1:])
        return float(-np.mean(np.log(np.clip((proba * onehot).sum(axis=1), 1e-15, None))))

    result = minimize(loss, np.zeros(1 + N_CLASSES), method="L-BFGS-B")
    bias = result.x[1:] - result.x[1]  # only differences matter; anchor class 0 at 0
    return Calibration(temperature=float(np.exp(result.x[0])), bias=tuple(float(b) for b in bias))


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and support of each class from a confusion matrix (fast enough to call thousands of times)."""
    cm = np.bincount(y_true * N_CLASSES + y_pred, minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0), cm.sum(axis=1)


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Support-weighted F1, the metric the decision rule is tuned for."""
    f1, support = per_class_f1(y_true, y_pred)
    return float((f1 * support).sum() / support.sum())


def tune_decision_rule(proba: np.ndarray, y: np.ndarray) -> tuple[DecisionRule, float]:
    """Grid-search the weights of classes 1 and 2 (class 0 fixed at 1) that maximise weighted F1.

    A coarse log-spaced grid, then a finer one around the best point; ties go to the weights closest to the
    plain argmax, so the rule only moves away from it when the validation fold says it pays.
    """
    best = (weighted_f1(y, proba.argmax(axis=1)), 0.0, (1.0, 1.0))
    w1_grid, w2_grid = np.geomspace(0.5, 16, 41), np.geomspace(0.5, 8, 41)
    for _ in range(2):
        for w1 in w1_grid:
            for w2 in w2_grid:
                score = weighted_f1(y, np.argmax(proba * np.array([1.0, w1, w2]), axis=1))
                distance = abs(np.log(w1)) + abs(np.log(w2))
                if score > best[0] + 1e-12 or (abs(score - best[0]) <= 1e-12 and distance < best[1]):
                    best = (score, distance, (float(w1), float(w2)))
        w1, w2 = best[2]
        w1_grid, w2_grid = w1 * np.geomspace(0.85, 1.18, 15), w2 * np.geomspace(0.85, 1.18, 15)
    rule = DecisionRule.from_weights((1.0, round(best[2][0], 4), round(best[2][1], 4)))
    return rule, weighted_f1(y, decide(proba, rule))  # the score of the rule as stored (rounded weights)
