"""The paired comparison promotion rests on: the scores, the bootstrap, the levels, and what noise does to them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ml.inference.postprocess import softmax
from ml.inference.predictor import Predictions
from ml.training.comparison import ALPHA, SEED, _macro_auc, _weighted_f1, compare, confidence_level
from ml.training.evaluate import macro_roc_auc


def _answers(y: np.ndarray, skill: float, rng: np.random.Generator, decimals: int = 2) -> Predictions:
    """A model whose logit for the true class is raised by `skill`; probabilities rounded, so scores tie."""
    logits = rng.normal(0, 1, (len(y), 3)) + np.log([0.84, 0.03, 0.13])
    logits[np.arange(len(y)), y] += skill
    proba = np.round(softmax(logits), decimals)
    return Predictions(proba.argmax(axis=1), proba)


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(3, size=n, p=[0.84, 0.03, 0.13])


def test_scores_are_scikit_learns_and_ties_count_half() -> None:
    rng = np.random.default_rng(0)
    y = _labels(3_000, rng)
    answers = _answers(y, 1.0, rng)
    ones = np.ones((1, len(y)))
    assert _weighted_f1(ones, y, answers.classes)[0] == pytest.approx(f1_score(y, answers.classes, average="weighted"))
    assert _macro_auc(ones, y, answers.probabilities)[0] == pytest.approx(macro_roc_auc(y, answers.probabilities))


def test_the_intervals_come_from_a_plain_paired_bootstrap() -> None:
    """Resample the rows (the same draws), score both models with scikit-learn, take the standard deviation of
    the differences: the comparison's interval is the estimate plus or minus z of those."""
    rng = np.random.default_rng(1)
    y = _labels(300, rng)
    new, old = _answers(y, 1.2, rng), _answers(y, 1.0, rng)
    compared = compare(y, new, old, comparison=1, resamples=200)
    draws = np.random.default_rng(SEED)
    f1_gains, auc_changes = [], []
    for _ in range(2):  # the comparison draws its resamples in chunks of 100
        for rows in draws.integers(0, len(y), size=(100, len(y))):
            f1 = [f1_score(y[rows], m.classes[rows], average="weighted") for m in (new, old)]
            auc = [
                np.mean(
                    [roc_auc_score(y[rows] == k, m.probabilities[rows, k]) for k in range(3) if (y[rows] == k).any()]
                )
                for m in (new, old)
            ]
            f1_gains.append(f1[0] - f1[1])
            auc_changes.append(auc[0] - auc[1])
    z = 2.2414  # 97.5% two-sided, the first comparison
    for interval, resampled in ((compared.weighted_f1_gain, f1_gains), (compared.macro_auc_change, auc_changes)):
        half = z * np.std(resampled, ddof=1)
        assert interval.high - interval.estimate == pytest.approx(half, rel=1e-3)
        assert interval.estimate - interval.low == pytest.approx(half, rel=1e-3)


def test_a_model_compared_with_itself_gains_exactly_nothing() -> None:
    rng = np.random.default_rng(2)
    y = _labels(500, rng)
    same = _answers(y, 1.0, rng)
    compared = compare(y, same, same, comparison=1, resamples=100)
    assert (compared.weighted_f1_gain.low, compared.weighted_f1_gain.high) == (0.0, 0.0)
    assert not compared.better


def test_each_comparison_on_one_reference_spends_less_of_the_same_five_percent() -> None:
    levels = [confidence_level(k) for k in range(1, 5)]
    assert levels == pytest.approx([1 - ALPHA / 2, 1 - ALPHA / 6, 1 - ALPHA / 12, 1 - ALPHA / 20])
    # However many comparisons, their misses add up to at most ALPHA.
    assert sum(1 - confidence_level(k) for k in range(1, 100_000)) < ALPHA
    with pytest.raises(ValueError, match="numbered from 1"):
        confidence_level(0)


def test_noise_between_equal_models_rarely_promotes_while_a_real_gain_does() -> None:
    """60 pairs of equally skilled models on 600 rows: the old strict '>' promoted about half of them."""
    rng = np.random.default_rng(3)
    promoted = old_rule = 0
    for _ in range(60):
        y = _labels(600, rng)
        new, old = _answers(y, 1.0, rng), _answers(y, 1.0, rng)
        compared = compare(y, new, old, comparison=1, resamples=200)
        promoted += compared.better
        old_rule += compared.new_weighted_f1 > compared.champion_weighted_f1
    assert promoted <= 3  # expected about 1 in 80 (one side of a 97.5% interval)
    assert old_rule >= 20
    y = _labels(600, rng)
    assert compare(y, _answers(y, 2.5, rng), _answers(y, 0.5, rng), comparison=1, resamples=200).better


def test_a_better_label_with_a_worse_ranking_is_not_promoted() -> None:
    """Weighted F1 up beyond noise, macro ROC-AUC down beyond noise: the probabilities got worse."""
    rng = np.random.default_rng(4)
    y = _labels(2_000, rng)
    old = _answers(y, 1.0, rng)
    better_labels = np.where(rng.random(len(y)) < 0.9, y, old.classes)
    shuffled = old.probabilities[rng.permutation(len(y))]
    compared = compare(y, Predictions(better_labels, shuffled), old, comparison=1, resamples=200)
    assert compared.gain_beyond_noise
    assert compared.auc_worse_beyond_noise
    assert not compared.better
    assert "worse beyond noise" in compared.describe()
