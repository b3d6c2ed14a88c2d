"""Metrics for the three-class diabetes model: the primary weighted F1 and everything needed to trust it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ml.schema import CLASSES, N_CLASSES, SUBGROUP_BANDS

LABELS = list(range(N_CLASSES))


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: how far the confidence of the most likely class is from its accuracy, bin-weighted."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def classwise_ece(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """ECE of each class's own probability, shape (3,): per bin of p(class), the absolute gap between the class's
    share and the mean p(class), weighted by the bin's share of the rows.

    Top-label ECE follows "no diabetes", the most likely class of most people; this one shows each class alone.
    """
    errors = np.zeros(N_CLASSES)
    for k in LABELS:
        p = proba[:, k]
        bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
        # sum over bins of |sum(hit - p)| / n is the bin-weighted |share - mean p|
        gap = np.bincount(bins, weights=(y_true == k) - p, minlength=n_bins)
        errors[k] = np.abs(gap).sum() / len(p)
    return errors


def macro_roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest ROC-AUC over the classes present (NaN when fewer than two classes are present)."""
    present = [k for k in LABELS if 0 < (y_true == k).sum() < len(y_true)]
    if not present:
        return float("nan")
    return float(np.mean([roc_auc_score(y_true == k, proba[:, k]) for k in present]))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Every scalar metric of one prediction set, with flat names ready for MLflow."""
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    metrics: dict[str, float] = {
        "weighted_f1": float(f1_score(y_true, y_pred, labels=LABELS, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "accuracy": float((y_true == y_pred).mean()),
        "macro_roc_auc": macro_roc_auc(y_true, proba),
        "log_loss": float(log_loss(y_true, np.clip(proba, 1e-15, 1), labels=LABELS)),
        "ece": expected_calibration_error(y_true, proba),
        "rows": float(len(y_true)),
    }
    per_class_ece = classwise_ece(y_true, proba)
    for cls in CLASSES:
        k = cls.id
        metrics[f"ece_{cls.name}"] = float(per_class_ece[k])
        metrics[f"precision_{cls.name}"] = float(precision[k])
        metrics[f"recall_{cls.name}"] = float(recall[k])
        metrics[f"f1_{cls.name}"] = float(f1[k])
        metrics[f"support_{cls.name}"] = float(support[k])
    return metrics


def subgroup_table(features: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """The headline metrics per subgroup (Sex, Age band, Income band), to show where the model is weaker."""
    rows: list[dict[str, Any]] = []
    for column, bands in SUBGROUP_BANDS.items():
        values = features[column].to_numpy()
        for band, codes in bands.items():
            mask = np.isin(values, codes)
            if not mask.any():
                continue
            m = classification_metrics(y_true[mask], y_pred[mask], proba[mask])
            rows.append(
                {
                    "feature": column,
                    "group": band,
                    "rows": int(mask.sum()),
                    **{key: m[key] for key in _SUBGROUP_COLUMNS},
                }
            )
    return pd.DataFrame(rows)


_SUBGROUP_COLUMNS = ("weighted_f1", "macro_f1", "macro_roc_auc", *(f"recall_{c.name}" for c in CLASSES), "ece")


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and the row-normalised matrix (each true class sums to 1)."""
    counts = confusion_matrix(y_true, y_pred, labels=LABELS)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
    return counts, normalised


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str) -> Path:
    """Write counts and row-normalised confusion matrices side by side as one PNG."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (e.g. a notebook's) alone

    counts, normalised = confusion_matrices(y_true, y_pred)
    names = [c.label for c in CLASSES]
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    panels: Mapping[str, tuple[np.ndarray, str]] = {
        "Counts": (counts, "{:,.0f}"),
        "Row-normalised (recall on the diagonal)": (normalised, "{:.1%}"),
    }
    for ax, (name, (matrix, fmt)) in zip(axes, panels.items(), strict=True):
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)  # both panels shaded by recall
        for i in range(N_CLASSES):
            for j in range(N_CLASSES):
                colour = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", color=colour)
        ax.set_xticks(LABELS, names)
        ax.set_yticks(LABELS, names)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("True")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
