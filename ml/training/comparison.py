"""Is a candidate better than the champion beyond noise? Paired bootstrap intervals on the reference holdout.

Both models answer the same reference rows; each bootstrap resample draws rows with replacement and scores both
models on the same draw, so what the two have in common (the hard rows, the easy ones) cancels out of the
difference. The interval is the observed difference plus or minus z standard errors of the resampled
differences (the normal bootstrap interval; its tails need far fewer resamples than percentiles would at the
levels below).

One holdout answers many comparisons, and each look spends some of its power to tell noise from gain: the k-th
comparison on a reference holdout uses intervals at level 1 - ALPHA / (k (k + 1)) (97.5% for the first, 99.2%
for the second, 99.6% for the third, ...). These levels' misses add up to at most ALPHA over any number of
comparisons, so the chance that noise ever promotes a model on one reference stays below ALPHA (5%); the price is
that later comparisons need a larger gain, until the reference is renewed with new data (`ml.training.reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ml.inference.predictor import Predictions
from ml.schema import N_CLASSES

#: The family-wise chance, over every comparison on one reference holdout, that noise promotes a model.
ALPHA = 0.05
RESAMPLES = 1_000
SEED = 0
#: Resamples scored at once (rows x this many weights in memory).
_CHUNK = 100

#: The largest gains a retrained model can plausibly make on this data (it is at the data's ceiling). From the
#: published file's split-to-split spread (`docs/_data/real_metrics.json`, `split_spread`, 8 seeds): the weighted
#: F1 of one configuration has sd 0.0014 across splits, macro ROC-AUC 0.0021; two honest models differ by about
#: sqrt(2) times that, and 5 of those standard deviations are 0.0099 and 0.0148. A larger gain on the reference
#: means the candidate saw its rows (a leak) or the champion is broken: a person decides, not the pipeline.
MAX_PLAUSIBLE_GAIN = 0.010
MAX_PLAUSIBLE_AUC_GAIN = 0.015
#: The first champion must rank the classes far better than chance (0.5). Honest models of this project score
#: 0.7875-0.7933 on the real file (8 splits) and about 0.77 on synthetic data; 0.70 is far below their noise and
#: refuses a model whose ranking is broken.
MIN_MACRO_AUC = 0.70


@dataclass(frozen=True)
class Interval:
    """A paired difference (candidate minus champion) and its interval."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """Both models on the same reference rows: their scores, the paired differences with intervals, the verdict."""

    rows: int
    comparison: int
    confidence: float
    resamples: int
    new_weighted_f1: float
    champion_weighted_f1: float
    weighted_f1_gain: Interval
    new_macro_auc: float
    champion_macro_auc: float
    macro_auc_change: Interval

    @property
    def gain_beyond_noise(self) -> bool:
        return self.weighted_f1_gain.low > 0

    @property
    def auc_worse_beyond_noise(self) -> bool:
        return self.macro_auc_change.high < 0

    @property
    def implausible(self) -> str | None:
        """Why the gain is too large to be real (None when it is not): held for a person, never promoted by itself."""
        if self.weighted_f1_gain.estimate > MAX_PLAUSIBLE_GAIN:
            return (
                f"a weighted F1 gain of {self.weighted_f1_gain.estimate:+.4f} (plausible at most +{MAX_PLAUSIBLE_GAIN})"
            )
        if self.macro_auc_change.estimate > MAX_PLAUSIBLE_AUC_GAIN:
            return (
                f"a macro ROC-AUC gain of {self.macro_auc_change.estimate:+.4f} (plausible at most "
                f"+{MAX_PLAUSIBLE_AUC_GAIN})"
            )
        return None

    @property
    def better(self) -> bool:
        """Promote: weighted F1 higher beyond noise, and macro ROC-AUC not lower beyond noise."""
        return self.gain_beyond_noise and not self.auc_worse_beyond_noise

    def describe(self) -> str:
        gain = self.weighted_f1_gain
        f1_verdict = "beyond noise" if gain.low > 0 else "lower beyond noise" if gain.high < 0 else "within noise"
        auc_verdict = "worse beyond noise" if self.auc_worse_beyond_noise else "not worse beyond noise"
        return (
            f"comparison {self.comparison} on this reference, {self.confidence:.2%} paired bootstrap intervals: "
            f"weighted F1 {self.new_weighted_f1:.4f} vs {self.champion_weighted_f1:.4f}, gain {self.weighted_f1_gain} "
            f"({f1_verdict}); macro ROC-AUC {self.new_macro_auc:.4f} vs {self.champion_macro_auc:.4f}, change "
            f"{self.macro_auc_change} ({auc_verdict})"
        )


def confidence_level(comparison: int) -> float:
    """The interval level of the `comparison`-th comparison (from 1) on one reference holdout."""
    if comparison < 1:
        raise ValueError(f"comparisons are numbered from 1, got {comparison}")
    return 1.0 - ALPHA / (comparison * (comparison + 1))


def compare(
    labels: np.ndarray, new: Predictions, champion: Predictions, comparison: int, *, resamples: int = RESAMPLES
) -> PairedComparison:
    """The paired comparison of two models' answers to the same rows (`labels`), the `comparison`-th on them."""
    y = np.asarray(labels, dtype=np.int64)
    confidence = confidence_level(comparison)
    weights = np.ones((1, len(y)))
    scores = {
        name: (_weighted_f1(weights, y, p.classes)[0], _macro_auc(weights, y, p.probabilities)[0])
        for name, p in (("new", new), ("champion", champion))
    }
    f1_gains, auc_changes = _bootstrap(y, new, champion, resamples)
    z = float(norm.ppf(1 - (1 - confidence) / 2))

    def interval(estimate: float, resampled: np.ndarray) -> Interval:
        spread = z * float(np.nanstd(resampled, ddof=1))
        return Interval(estimate, estimate - spread, estimate + spread)

    return PairedComparison(
        rows=len(y),
        comparison=comparison,
        confidence=confidence,
        resamples=resamples,
        new_weighted_f1=scores["new"][0],
        champion_weighted_f1=scores["champion"][0],
        weighted_f1_gain=interval(scores["new"][0] - scores["champion"][0], f1_gains),
        new_macro_auc=scores["new"][1],
        champion_macro_auc=scores["champion"][1],
        macro_auc_change=interval(scores["new"][1] - scores["champion"][1], auc_changes),
    )


def majority_baseline(labels: np.ndarray) -> Predictions:
    """What a model that learnt nothing answers: the most frequent class for everyone, the class shares as risk."""
    y = np.asarray(labels, dtype=np.int64)
    shares = np.bincount(y, minlength=N_CLASSES) / max(len(y), 1)
    probabilities = np.tile(shares, (len(y), 1))
    return Predictions(np.full(len(y), int(np.argmax(shares)), dtype=np.int64), probabilities, probabilities)


def absolute_check(labels: np.ndarray, new: Predictions) -> tuple[PairedComparison, str | None]:
    """A first champion (nothing to compare with) against the majority-class baseline at the first comparison's
    level: its weighted F1 must be higher beyond noise and its macro ROC-AUC at least `MIN_MACRO_AUC`. The
    comparison, and why it fails (None when it passes)."""
    compared = compare(labels, new, majority_baseline(labels), 1)
    if not compared.gain_beyond_noise:
        return compared, (
            f"its weighted F1 {compared.new_weighted_f1:.4f} is not above the majority-class baseline's "
            f"{compared.champion_weighted_f1:.4f} beyond noise (gain {compared.weighted_f1_gain})"
        )
    if compared.new_macro_auc < MIN_MACRO_AUC:
        return compared, f"its macro ROC-AUC {compared.new_macro_auc:.4f} is below the floor {MIN_MACRO_AUC}"
    return compared, None


def _bootstrap(y: np.ndarray, new: Predictions, champion: Predictions, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per resample: the weighted F1 gain and the macro ROC-AUC change (a resample is a row-count weight vector)."""
    rng = np.random.default_rng(SEED)
    n = len(y)
    f1_gains, auc_changes = [], []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        drawn = rng.integers(0, n, size=(size, n))
        weights = np.stack([np.bincount(row, minlength=n) for row in drawn]).astype(np.float32)
        f1_gains.append(_weighted_f1(weights, y, new.classes) - _weighted_f1(weights, y, champion.classes))
        auc_changes.append(_macro_auc(weights, y, new.probabilities) - _macro_auc(weights, y, champion.probabilities))
    return np.concatenate(f1_gains), np.concatenate(auc_changes)


def _weighted_f1(weights: np.ndarray, y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Support-weighted F1 under each row of `weights` (shape (b, n)); shape (b,)."""
    cells = np.zeros((len(y), N_CLASSES * N_CLASSES))
    cells[np.arange(len(y)), y * N_CLASSES + predicted] = 1.0
    confusion = (weights @ cells).reshape(-1, N_CLASSES, N_CLASSES)
    right = np.diagonal(confusion, axis1=1, axis2=2)
    support, named = confusion.sum(axis=2), confusion.sum(axis=1)
    f1 = np.divide(2 * right, support + named, out=np.zeros_like(right), where=(support + named) > 0)
    result: np.ndarray = (f1 * support).sum(axis=1) / support.sum(axis=1)
    return result


def _macro_auc(weights: np.ndarray, y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest ROC-AUC under each row of `weights` over the classes present in it; shape (b,).

    The weighted Mann-Whitney statistic: per class, rows sorted by p(class) and grouped by equal scores; a positive
    beats the negatives of the groups below it and half of those in its own group.
    """
    per_class = []
    for k in range(N_CLASSES):
        order = np.argsort(proba[:, k], kind="stable")
        sorted_scores = proba[order, k]
        starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        w = weights[:, order]
        positive = np.add.reduceat(np.where((y == k)[order], w, 0), starts, axis=1, dtype=np.float64)
        negative = np.add.reduceat(w, starts, axis=1, dtype=np.float64) - positive
        below = np.cumsum(negative, axis=1) - negative
        pairs = positive.sum(axis=1) * negative.sum(axis=1)
        won = (positive * (below + 0.5 * negative)).sum(axis=1)
        per_class.append(np.divide(won, pairs, out=np.full_like(won, np.nan), where=pairs > 0))
    result: np.ndarray = np.nanmean(np.stack(per_class, axis=1), axis=1)
    return result
