"""The screening result against the ADA risk test, on the same rows: the comparison a clinician asks for first.

Three targets: people with pre-diabetes or diabetes, ranked by the model's p(pre-diabetes) + p(diabetes) (the
screening risk the result screen leads with); people with diabetes, ranked by p(diabetes); and people with
pre-diabetes against people with neither, ranked by p(pre-diabetes) (the rows of people with diabetes left out, so
the comparison is the fair one for the pre-diabetes line of the result). For each: both ROC curves and AUCs, the
ADA test's sensitivity and specificity at its cut-off of 5 points, and the model's specificity at the highest
threshold where its sensitivity reaches the ADA test's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ml.inference.screening import risk_of
from ml.manifest import AdaComparison, ScreeningComparison
from ml.training.ada import HIGH_RISK_POINTS, UNAVAILABLE_ITEMS, ada_risk_points

#: Panel title and model-score label of each target, in the order of `AdaComparison`'s fields.
TARGETS = {
    "prediabetes_or_diabetes": ("Pre-diabetes or diabetes", "p(pre-diabetes) + p(diabetes)"),
    "diabetes": ("Diabetes", "p(diabetes)"),
    "prediabetes": ("Pre-diabetes (vs neither)", "p(pre-diabetes)"),
}


def _targets(y: np.ndarray, proba: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per target: the rows it is measured on, who of them is positive, and the model's score."""
    every = np.ones(len(y), dtype=bool)
    return {
        "prediabetes_or_diabetes": (every, y > 0, risk_of(proba)),
        "diabetes": (every, y == 2, proba[:, 2]),
        "prediabetes": (y < 2, y == 1, proba[:, 1]),
    }


def screening_comparison(positive: np.ndarray, model_score: np.ndarray, points: np.ndarray) -> ScreeningComparison:
    """One target: the ADA test at its cut-off against the model at the same sensitivity."""
    positives = int(positive.sum())
    if positives == 0 or positives == len(positive):
        raise ValueError("the ADA comparison needs people with and without the condition among the rows")
    flagged = points >= HIGH_RISK_POINTS
    ada_sensitivity = float(flagged[positive].mean())
    fpr, tpr, thresholds = roc_curve(positive, model_score, drop_intermediate=False)
    at = int(np.argmax(tpr >= ada_sensitivity))  # the first (highest) threshold reaching it; tpr ends at 1
    return ScreeningComparison(
        positives=positives,
        negatives=len(positive) - positives,
        ada_roc_auc=float(roc_auc_score(positive, points)),
        model_roc_auc=float(roc_auc_score(positive, model_score)),
        ada_sensitivity=ada_sensitivity,
        ada_specificity=float((~flagged[~positive]).mean()),
        model_threshold=float(min(thresholds[at], 1.0)),
        model_sensitivity=float(tpr[at]),
        model_specificity=float(1.0 - fpr[at]),
    )


def compare_with_ada(rows: np.ndarray, y: np.ndarray, proba: np.ndarray) -> AdaComparison:
    """Both targets on the same rows (feature rows in schema order, true classes, calibrated probabilities)."""
    points = ada_risk_points(rows)
    compared = {
        name: screening_comparison(positive[rows_of], score[rows_of], points[rows_of])
        for name, (rows_of, positive, score) in _targets(y, proba).items()
    }
    return AdaComparison(rows=len(y), ada_cutoff=HIGH_RISK_POINTS, unavailable_items=UNAVAILABLE_ITEMS, **compared)


def plot_ada_roc(
    rows: np.ndarray, y: np.ndarray, proba: np.ndarray, comparison: AdaComparison, path: Path, title: str
) -> Path:
    """One figure, one panel per target: both ROC curves with their AUCs, the ADA cut-off and the matched point
    (`comparison`: `compare_with_ada` of the same rows)."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone

    points = ada_risk_points(rows)
    fig = Figure(figsize=(16, 5))
    axes = fig.subplots(1, len(TARGETS))
    for ax, (name, (rows_of, positive, score)) in zip(axes, _targets(y, proba).items(), strict=True):
        panel, score_label = TARGETS[name]
        result: ScreeningComparison = getattr(comparison, name)
        for values, label, auc in (
            (score, f"model, {score_label}", result.model_roc_auc),
            (points, "ADA risk test points", result.ada_roc_auc),
        ):
            fpr, tpr, _ = roc_curve(positive[rows_of], values[rows_of])
            ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
        ada_fpr = 1 - result.ada_specificity
        model_fpr = 1 - result.model_specificity
        ax.plot([ada_fpr], [result.ada_sensitivity], "o", color="C1", label=f"ADA >= {HIGH_RISK_POINTS} points")
        ax.plot([model_fpr], [result.model_sensitivity], "s", color="C0", label="model at the same sensitivity")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title(
            f"{panel}: specificity {result.model_specificity:.1%} (model) vs {result.ada_specificity:.1%} (ADA)\n"
            f"at sensitivity {result.ada_sensitivity:.1%}",
            fontsize=10,
        )
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
