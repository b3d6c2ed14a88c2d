"""Regenerate ``docs/_data/real_metrics.json`` from a model trained on the real file (aggregates only, never rows).

    uv run python -m ml.train --data data/diabetes_012_health_indicators_BRFSS2015.csv --output artifacts/model
    uv run python -m tests.benchmarks.real_metrics --data data/diabetes_012_health_indicators_BRFSS2015.csv \\
        --model artifacts/model --training-seconds "22-45 s"
    uv run python -m tests.benchmarks.model_quality --repeat-seeds 1 2 3 4 5 6 7 8 > quality.json
    uv run python -m tests.benchmarks.access_handling --output access.json
    uv run python -m tests.benchmarks.real_metrics ... --spread quality.json --access access.json

The model's figures come from its manifest and subgroup tables: metrics, classwise ECE, the decision rule's precision
floor with its effect, the comparison with the ADA risk test, the screening rule with its test figures and its
sensitivity and specificity by group beside the ADA test's, the promotion holdout. The same test split is then
re-created (the manifest records the protocol) to score, on the same rows: the majority-class and
logistic-regression baselines, a decision rule tuned for macro F1 instead of weighted F1, and the behaviour table
(one step up of each risk factor, `ml.training.behaviour`). Synthetic data is refused unless ``--allow-synthetic``
(used by the tests).

``--spread`` takes the benchmark's JSON report and records how every figure moves across other grouped splits, and
the no-regression check against the previous figures; ``--access`` takes the access-handling benchmark's report.
Those sections and the table of alternative models (measured by hand in throw-away experiments) are carried over
from the existing file otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.inference.postprocess import decide
from ml.inference.predictor import Predictor
from ml.manifest import DecisionRule, Manifest
from ml.schema import CLASSES, N_CLASSES, TARGET
from ml.training.behaviour import step_up_effects
from ml.training.data import duplicate_report, is_synthetic, read_data_file
from ml.training.evaluate import classification_metrics
from ml.training.pipeline import SCREENING_SUBGROUPS_CSV, SUBGROUPS_CSV, Folds, TrainingConfig, split_folds
from ml.training.screening_subgroups import who_is_missed
from ml.training.tuning import per_class_f1, tune_decision_rule
from tests.benchmarks.model_quality import split_figures

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_OUTPUT = ROOT / "docs" / "_data" / "real_metrics.json"
_CANDIDATES = {
    "none+argmax": ("none_argmax", "No weighting, argmax"),
    "none+tuned_rule": ("none_tuned", "No weighting, tuned rule"),
    "class_weights+argmax": ("cw_argmax", "Sqrt-balanced class weights, argmax"),
    "class_weights+tuned_rule": ("cw_tuned", "Sqrt-balanced class weights, tuned rule"),
}
#: Rows measured once by hand and carried over from the existing file (no code path trains them any more).
_CARRIED_OVER = ("balanced",)
#: Whole sections carried over unless refreshed: the split spread (from the benchmark), the alternatives and the
#: access-handling options (from `tests/benchmarks/access_handling.py`).
_CARRIED_SECTIONS = ("split_spread", "alternatives", "access_options")


def _r(value: float) -> float:
    return round(float(value), 4)


def _rounded(value: Any) -> Any:
    """Floats to 4 digits, in nested dicts, lists and tuples (JSON-ready)."""
    if isinstance(value, float):
        return _r(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 scores (fast enough for a grid search)."""
    return float(per_class_f1(y_true, y_pred)[0].mean())


def tune_macro_rule(proba: np.ndarray, y: np.ndarray) -> DecisionRule:
    """Weights of pre-diabetes and diabetes (no diabetes = 1) that maximise macro F1 on the given fold."""
    best = (macro_f1(y, proba.argmax(axis=1)), (1.0, 1.0))
    for w1 in np.geomspace(0.5, 64, 60):
        for w2 in np.geomspace(0.5, 8, 40):
            score = macro_f1(y, np.argmax(proba * np.array([1.0, w1, w2]), axis=1))
            if score > best[0] + 1e-12:
                best = (score, (float(w1), float(w2)))
    return DecisionRule.from_weights((1.0, round(best[1][0], 2), round(best[1][1], 2)))


def _baselines(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, x_test: np.ndarray,
               y_test: np.ndarray) -> list[dict[str, Any]]:  # fmt: skip
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    prior = np.bincount(y_fit, minlength=N_CLASSES) / len(y_fit)
    majority = classification_metrics(y_test, np.zeros_like(y_test), np.tile(prior, (len(y_test), 1)))
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_fit, y_fit)
    proba = logistic.predict_proba(x_test)
    plain = classification_metrics(y_test, proba.argmax(axis=1), proba)
    rule = tune_decision_rule(logistic.predict_proba(x_val), y_val).rule
    tuned = classification_metrics(y_test, decide(proba, rule), proba)

    def row(key: str, label: str, m: dict[str, float], note: str) -> dict[str, Any]:
        scores = {k: _r(m[k]) for k in ("weighted_f1", "macro_f1", "macro_roc_auc")}
        return {"key": key, "label": label, "validation_weighted_f1": None, **scores, "note": note}

    return [
        row(
            "majority",
            'Baseline: always "no diabetes"',
            majority,
            f"training prior as probabilities; log loss {majority['log_loss']:.4f}",
        ),
        row(
            "logreg_argmax",
            "Baseline: logistic regression, argmax",
            plain,
            f"standardised features; log loss {plain['log_loss']:.4f}",
        ),
        row("logreg_tuned", "Baseline: logistic regression, tuned rule", tuned, "rule tuned on the validation fold"),
    ]


def _note(chosen: bool, scores: dict[str, float]) -> str:
    if chosen:
        return "**chosen** (best validation weighted F1)"
    if scores.get("validation_recall_prediabetic") == 0:
        return "pre-diabetes never predicted"
    return ""


def _table(path: Path) -> list[dict[str, Any]]:
    """A per-group CSV of the artifact: counts as ints, figures to 4 digits (an empty cell, nobody to measure: None)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return [
            {
                k: (v if k in ("feature", "group") else int(v) if k in ("rows", "positives") else _cell(v))
                for k, v in row.items()
            }
            for row in csv.DictReader(handle)
        ]


def _cell(value: str) -> float | None:
    return _r(float(value)) if value else None


def prediabetes_probability(y: np.ndarray, p_prediabetes: np.ndarray) -> dict[str, float]:
    """How p(pre-diabetes) reads on the test rows: the top tenth's mean against its share of people with
    pre-diabetes, its largest value, and the share of the people with pre-diabetes in the top tenth."""
    top = p_prediabetes >= np.quantile(p_prediabetes, 0.9)
    prediabetic = y == 1
    return {
        "top_tenth_predicted": _r(p_prediabetes[top].mean()),
        "top_tenth_observed": _r(prediabetic[top].mean()),
        "max": _r(p_prediabetes.max()),
        "top_tenth_share_of_prediabetes": _r(prediabetic[top].sum() / max(prediabetic.sum(), 1)),
    }


def _strategies(manifest: Manifest, folds: Folds, previous: dict[str, Any]) -> list[dict[str, Any]]:
    """The baselines, the candidates training compared (the chosen one marked) and the rows carried over."""
    strategies = _baselines(folds.x_fit, folds.y_fit, folds.x_val, folds.y_val, folds.x_test, folds.y_test)
    chosen = manifest.imbalance_strategy.chosen
    for name, scores in manifest.imbalance_strategy.compared.items():
        key, label = _CANDIDATES.get(name, (name.replace("+", "_"), name))
        strategies.append(
            {
                "key": key,
                "label": label,
                "validation_weighted_f1": _r(scores["validation_weighted_f1"]),
                **{k: _r(scores[f"test_{k}"]) for k in ("weighted_f1", "macro_f1", "macro_roc_auc")},
                "note": _note(name == chosen, scores),
                **({"chosen": True} if name == chosen else {}),
            }
        )
    return strategies + [s for s in previous.get("strategies", []) if s.get("key") in _CARRIED_OVER]


def _macro_f1_rule(proba_val: np.ndarray, proba_test: np.ndarray, folds: Folds) -> dict[str, Any]:
    """The decision rule tuned for macro F1 instead, on the same validation fold, and how it does on test."""
    rule = tune_macro_rule(proba_val, folds.y_val)
    macro = classification_metrics(folds.y_test, decide(proba_test, rule), proba_test)
    shown = (
        "weighted_f1",
        "macro_f1",
        "balanced_accuracy",
        "recall_prediabetic",
        "precision_prediabetic",
        "recall_diabetic",
        "precision_diabetic",
        "recall_healthy",
    )
    return {"weights": list(rule.class_weights), **{k: _r(macro[k]) for k in shown}}


def _data_section(manifest: Manifest, frame: pd.DataFrame) -> dict[str, Any]:
    duplicates = duplicate_report(frame)
    return {
        "file": manifest.data.file,
        "sha256": manifest.data.sha256,
        "rows": len(frame),
        "class_counts": {c.name: int((frame[TARGET] == c.id).sum()) for c in CLASSES},
        "duplicates": {
            "exact": duplicates.exact_duplicate_rows,
            "feature_vector": duplicates.feature_duplicate_rows,
            "mixed_label_vectors": duplicates.conflicting_label_groups,
        },
    }


def _chosen_section(manifest: Manifest) -> dict[str, Any]:
    chosen = manifest.imbalance_strategy.chosen
    weighting = "sqrt-balanced class weights" if manifest.imbalance_strategy.weighting != "none" else "no weighting"
    rule = "tuned decision rule" if chosen.endswith("tuned_rule") else "argmax"
    return {
        "description": f"{weighting} + {rule}",
        "decision_rule_weights": [round(w, 2) for w in manifest.decision_rule.class_weights],
        "training_seconds": f"{manifest.training.seconds:.0f} s",
    }


def _per_class(test: dict[str, float], y_test: np.ndarray, proba_test: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    return {
        c.name: {
            "precision": _r(test[f"precision_{c.name}"]),
            "recall": _r(test[f"recall_{c.name}"]),
            "f1": _r(test[f"f1_{c.name}"]),
            "roc_auc": _r(roc_auc_score(y_test == c.id, proba_test[:, c.id])),
            "ece": _r(test[f"ece_{c.name}"]),
            "support": int(test[f"support_{c.name}"]),
        }
        for c in CLASSES
    }


def measure(data: Path, model: Path, previous: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the JSON file, from the model's manifest and the data it was trained on."""
    predictor = Predictor.load(model)
    manifest = predictor.manifest
    frame = read_data_file(data)
    config = TrainingConfig(**manifest.training.config)
    folds = split_folds(frame, config)
    if folds.outer.protocol["split_id"] != manifest.split.test_split_id:
        raise SystemExit(f"error: {data} is not the file {model} was trained on (the split differs)")
    test, y_test = manifest.metrics.test, folds.y_test
    proba_val, proba_test = predictor.predict(folds.x_val).probabilities, predictor.predict(folds.x_test).probabilities
    screening_subgroups = _table(model / SCREENING_SUBGROUPS_CSV)
    metrics = ("weighted_f1", "macro_f1", "macro_roc_auc", "log_loss", "ece", "balanced_accuracy", "accuracy")
    return {
        "_about": previous.get("_about", "Numbers measured on the real file; aggregates only, never rows."),
        "measured": datetime.now(UTC).date().isoformat(),
        "command": "uv run python -m ml.train --data data/diabetes_012_health_indicators_BRFSS2015.csv "
        "--output artifacts/model",
        "data": _data_section(manifest, frame),
        "split": {
            "method": previous.get("split", {}).get("method", "grouped by identical feature vector, stratified"),
            "seed": config.seed,
            "split_id": folds.outer.protocol["split_id"],
            "test_rows": len(y_test),
            "promotion_holdout": manifest.split.promotion_holdout.model_dump(),
        },
        "chosen": _chosen_section(manifest),
        "test": {k: _r(test[k]) for k in metrics},
        "figures": split_figures(manifest),
        "validation_tuned_on": {k: _r(manifest.metrics.validation_tuned_on[k]) for k in ("weighted_f1", "macro_f1")},
        "per_class": _per_class(test, y_test, proba_test),
        "strategies": _strategies(manifest, folds, previous),
        "macro_f1_rule": _macro_f1_rule(proba_val, proba_test, folds),
        "precision_floor": _rounded(manifest.precision_floor.model_dump()),
        "ada_comparison": _rounded(manifest.ada_comparison.model_dump()),
        "behaviour": [
            _rounded(asdict(effect))
            for effect in step_up_effects(lambda rows: predictor.predict(rows).probabilities[:, 2], folds.x_test)
        ],
        "screening": _rounded(manifest.screening.model_dump(mode="json")),
        "screening_subgroups": screening_subgroups,
        "screening_who_is_missed": who_is_missed(pd.DataFrame(screening_subgroups)),
        "prediabetes_probability": prediabetes_probability(y_test, proba_test[:, 1]),
        "subgroups": _table(model / SUBGROUPS_CSV),
        **{key: previous[key] for key in _CARRIED_SECTIONS if key in previous},
    }


def split_spread(report: dict[str, Any]) -> dict[str, Any]:
    """The `other_splits` section of a `tests/benchmarks/model_quality.py --repeat-seeds ...` report."""
    if "other_splits" not in report:
        raise ValueError("the benchmark report has no other_splits section: run it with --repeat-seeds SEED ...")
    spread = report["other_splits"]
    return {
        "command": "uv run python -m tests.benchmarks.model_quality --repeat-seeds " + " ".join(spread["per_seed"]),
        "per_seed": spread["per_seed"],
        "summary": spread["summary"],
        **({"no_regression": spread["no_regression"]} if "no_regression" in spread else {}),
    }


def access_options(report: dict[str, Any]) -> dict[str, Any]:
    """The summary of a `tests/benchmarks/access_handling.py` report, with its command and seeds."""
    if "summary" not in report or "per_seed" not in report:
        raise ValueError("not a report of tests/benchmarks/access_handling.py (no summary or per_seed)")
    return {"command": report["command"], "seeds": list(report["per_seed"]), "summary": report["summary"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, required=True, help="the real 3-class file the model was trained on")
    parser.add_argument("--model", type=Path, required=True, help="artifact directory written by ml.train")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to (re)write")
    parser.add_argument("--training-seconds", help='training time to print in the docs, e.g. "22-45 s"')
    parser.add_argument("--allow-synthetic", action="store_true", help="accept synthetic data (tests only)")
    parser.add_argument(
        "--spread",
        type=Path,
        help="JSON report of tests/benchmarks/model_quality.py --repeat-seeds ...: refresh the split spread",
    )
    parser.add_argument(
        "--access",
        type=Path,
        help="JSON report of tests/benchmarks/access_handling.py: refresh the access-handling options",
    )
    args = parser.parse_args(argv)
    if is_synthetic(args.data) and not args.allow_synthetic:
        parser.error(f"{args.data} is synthetic; the docs' real-data figures must come from the real file")
    spread = None
    if args.spread:  # checked before the minutes of measuring
        try:
            spread = split_spread(json.loads(args.spread.read_text(encoding="utf-8")))
        except (ValueError, KeyError) as exc:
            parser.error(f"--spread {args.spread}: {exc}")
    access = None
    if args.access:
        try:
            access = access_options(json.loads(args.access.read_text(encoding="utf-8")))
        except (ValueError, KeyError) as exc:
            parser.error(f"--access {args.access}: {exc}")
    previous = json.loads(args.output.read_text(encoding="utf-8")) if args.output.is_file() else {}
    result = measure(args.data, args.model, previous)
    if args.training_seconds:
        result["chosen"]["training_seconds"] = args.training_seconds
    if spread:
        result["split_spread"] = spread
    if access:
        result["access_options"] = access
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.output}: test weighted F1 {result['test']['weighted_f1']}, split {result['split']['split_id']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
