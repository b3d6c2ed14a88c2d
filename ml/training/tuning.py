"""Fitting the post-processing on the validation fold: calibration by log loss, decision rule by weighted F1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax
from scipy.stats import norm

from ml.manifest import Calibration, DecisionRule
from ml.schema import N_CLASSES

#: A class other than "no diabetes" gets a decision weight other than 1 only where its predictions on the
#: validation fold are right at least this many times as often as the class's base rate there ...
MIN_PRECISION_LIFT = 2.0
#: ... with enough evidence: the rule names the class at least this many times on the validation fold, and the
#: lower bound of its precision there (Wilson score, one-sided, at this confidence) reaches the floor.
MIN_NAMED = 30
PRECISION_CONFIDENCE = 0.95


#: The temperatures a manifest accepts (`ml.manifest.Calibration`).
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-4, 1e4


class CalibrationError(ValueError):
    """The calibration's optimiser did not converge: the model's scores cannot be served as probabilities."""


def fit_calibration(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Bias-corrected temperature scaling: minimise the multinomial log loss over log-temperature and class biases.

    The loss is the exact log-softmax (no clipping, which would flatten it for confident scores and stop the
    optimiser where it started); a run that does not converge raises `CalibrationError`.
    """
    rows = np.arange(len(y))

    def loss(theta: np.ndarray) -> float:
        return float(-np.mean(log_softmax(raw * np.exp(-theta[0]) + theta[1:], axis=1)[rows, y]))

    result = minimize(loss, np.zeros(1 + N_CLASSES), method="L-BFGS-B")
    if not result.success or not np.all(np.isfinite(result.x)):
        raise CalibrationError(
            f"calibration did not converge on {len(y):,} validation rows ({result.message}); the raw scores "
            "cannot be turned into probabilities. Check the data and the booster's scores; nothing was written."
        )
    temperature = float(np.exp(result.x[0]))
    if not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        raise CalibrationError(
            f"calibration divided the model's scores by {temperature:.3g} on {len(y):,} validation rows (allowed "
            f"{MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}): the scores carry no information about the labels, so "
            "the model learnt nothing. Check the data file's labels (shuffled, shifted, or from another file?) and "
            "that the answers belong to their rows; nothing was written."
        )
    bias = result.x[1:] - result.x[1]  # only differences matter; anchor class 0 at 0
    return Calibration(temperature=temperature, bias=tuple(float(b) for b in bias))


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts, shape (3, 3): true class by row, predicted class by column."""
    cm: np.ndarray = np.bincount(y_true * N_CLASSES + y_pred, minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)
    return cm


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and support of each class from a confusion matrix (fast enough to call thousands of times)."""
    cm = confusion(y_true, y_pred)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0), cm.sum(axis=1)


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Support-weighted F1, the metric the decision rule is tuned for."""
    f1, support = per_class_f1(y_true, y_pred)
    return float((f1 * support).sum() / support.sum())


def precision_lower_bound(right: np.ndarray, named: np.ndarray, confidence: float = PRECISION_CONFIDENCE) -> np.ndarray:
    """Wilson score lower bound (one-sided, at `confidence`) of right / named, per class; 0 where nothing is named.

    2 right of 5 is a precision of 0.40 but a lower bound of 0.14: few rows are weak evidence.
    """
    z = float(norm.ppf(confidence))
    n = np.maximum(named, 1).astype(float)
    p = right / n
    centre = p + z**2 / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    bound: np.ndarray = np.where(named > 0, (centre - spread) / (1 + z**2 / n), 0.0)
    return bound


@dataclass(frozen=True)
class _Search:
    """The decision rule's grid search on one validation fold, with or without the precision floor."""

    y: np.ndarray
    proba: np.ndarray
    floor: np.ndarray  # per class: the precision a moved weight must reach (lift x base rate), as a lower bound

    def score(self, weights: tuple[float, float], constrained: bool) -> float | None:
        """Weighted F1 of the rule, or None when the floor forbids it."""
        full = np.array([1.0, *weights])
        predicted = np.argmax(self.proba * full, axis=1)
        if constrained:
            cm = confusion(self.y, predicted)
            tp, claimed = np.diag(cm), cm.sum(axis=0)
            # A weight may leave 1 only where the class is then named often enough, and precisely enough even at
            # the lower bound of what so many rows can show.
            precise = (claimed >= MIN_NAMED) & (precision_lower_bound(tp, claimed) >= self.floor)
            if np.any((full != 1.0) & ~precise):
                return None
        return weighted_f1(self.y, predicted)

    def best(self, constrained: bool) -> tuple[float, float]:
        """A coarse log-spaced grid, then a finer one around the best point; ties go to the weights nearest 1."""
        best = (self.score((1.0, 1.0), constrained) or 0.0, 0.0, (1.0, 1.0))
        w1_grid, w2_grid = np.geomspace(0.5, 16, 41), np.geomspace(0.5, 8, 41)
        for _ in range(2):
            for w1 in np.union1d(w1_grid, [1.0]):
                for w2 in np.union1d(w2_grid, [1.0]):
                    score = self.score((float(w1), float(w2)), constrained)
                    if score is None:
                        continue
                    distance = abs(np.log(w1)) + abs(np.log(w2))
                    if score > best[0] + 1e-12 or (abs(score - best[0]) <= 1e-12 and distance < best[1]):
                        best = (score, distance, (float(w1), float(w2)))
            w1, w2 = best[2]
            w1_grid, w2_grid = w1 * np.geomspace(0.85, 1.18, 15), w2 * np.geomspace(0.85, 1.18, 15)
        return round(best[2][0], 4), round(best[2][1], 4)


@dataclass(frozen=True)
class TunedRule:
    """The rule tuned under the precision floor, and the one the same search picks without it."""

    rule: DecisionRule
    without_floor: DecisionRule


def tune_decision_rule(proba: np.ndarray, y: np.ndarray) -> TunedRule:
    """Grid-search the weights of classes 1 and 2 (class 0 fixed at 1) that maximise weighted F1 on this fold.

    A weight moves away from 1 only where the rule then names the class at least `MIN_NAMED` times, with a
    precision whose lower bound is at least `MIN_PRECISION_LIFT` times its base rate (a label right one time in
    forty is not shown as anyone's status, nor one that was right 2 times in 5: too few to tell); the search
    without that floor is returned too, so its effect can be reported.
    """
    base_rates = np.bincount(y, minlength=N_CLASSES) / len(y)
    search = _Search(y, proba, MIN_PRECISION_LIFT * base_rates)
    return TunedRule(
        DecisionRule.from_weights((1.0, *search.best(constrained=True))),
        DecisionRule.from_weights((1.0, *search.best(constrained=False))),
    )
