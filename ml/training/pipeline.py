"""Training: grouped split, LightGBM with early stopping, imbalance strategies compared, calibration, artifact.

The promotion holdout (`ml.training.holdout`) is set aside first and never used here; the test split and the
validation fold are carved from the rest. Strategies are compared on the validation fold (never on the test split):
no weighting and sqrt-balanced class weights, each with the plain argmax and with a cost-sensitive decision rule
tuned for weighted F1. Every candidate is calibrated first, so the comparison is between the probabilities the
service would serve.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.inference.digest import artifact_digest, file_sha256
from ml.inference.loader import read_folder
from ml.inference.postprocess import calibrate, decide
from ml.inference.screening import in_care_probabilities
from ml.manifest import (
    AdaComparison,
    Calibration,
    DataRecord,
    DecisionRule,
    HoldoutRecord,
    ImbalanceStrategy,
    Manifest,
    Metrics,
    PrecisionFloor,
    RuleOutcome,
    ScreeningRule,
    SplitRecord,
    TrainingRecord,
    TrainingReport,
)
from ml.schema import CLASSES, N_CLASSES, TARGET
from ml.training.ada_comparison import compare_with_ada, plot_ada_roc
from ml.training.data import (
    Split,
    duplicate_report,
    features_matrix,
    grouped_split,
    is_synthetic,
    read_data_file,
)
from ml.training.evaluate import classification_metrics, plot_confusion_matrix, subgroup_table
from ml.training.export import check_output_folder, save_artifact
from ml.training.holdout import HOLDOUT_DEFINITION, HOLDOUT_SHARE, in_holdout
from ml.training.near_copies import check_near_copies
from ml.training.screening import Scored, choose_screening, raised_flags
from ml.training.screening_subgroups import screening_subgroups
from ml.training.tuning import (
    MIN_NAMED,
    MIN_PRECISION_LIFT,
    PRECISION_CONFIDENCE,
    confusion,
    fit_calibration,
    tune_decision_rule,
    weighted_f1,
)

logger = logging.getLogger(__name__)

CONFUSION_PNG = "confusion_matrix.png"
ADA_ROC_PNG = "ada_roc.png"
SUBGROUPS_CSV = "subgroup_metrics.csv"
SCREENING_SUBGROUPS_CSV = "screening_subgroups.csv"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides the model; recorded in the manifest and as MLflow params."""

    seed: int = 42
    test_fraction: float = 0.2
    validation_fraction: float = 0.15
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 3000
    early_stopping_rounds: int = 100
    strategies: tuple[str, ...] = ("none", "class_weights")
    # The same trees for any count (deterministic); one thread is faster on small data (4,000 synthetic rows: 1.8 s
    # instead of 5.8 s of CPU on the shared 2-core machine), which the tests train on.
    num_threads: int = 2

    def lightgbm_params(self) -> dict[str, Any]:
        return {
            "objective": "multiclass",
            "num_class": N_CLASSES,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }


@dataclass(frozen=True)
class Candidate:
    """One imbalance strategy after fitting, calibration and decision-rule tuning."""

    name: str
    weighting: str
    booster: lgb.Booster
    calibration: Calibration
    rule: DecisionRule
    validation: dict[str, float]
    validation_proba: np.ndarray = field(repr=False)  # calibrated, on the validation fold


@dataclass
class TrainingResult:
    """The written artifact's manifest (the record of the run) plus what only the caller needs in memory.

    `digest`: the artifact's (`ml.inference.digest.artifact_digest`), what `MODEL_SHA256` pins. The promotion
    holdout's rows of this data file are kept for `ml.training.tracking`, which alone looks at them.
    """

    artifact_dir: Path
    manifest: Manifest
    digest: str
    subgroups: pd.DataFrame
    screening_subgroups: pd.DataFrame
    holdout_features: np.ndarray = field(repr=False)
    holdout_labels: np.ndarray = field(repr=False)

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.manifest.metrics.test

    @property
    def synthetic(self) -> bool:
        return self.manifest.data.synthetic


@dataclass(frozen=True)
class Folds:
    """The disjoint row sets of one run: fit (boosting), validation (every choice), test (reporting only) and the
    promotion holdout (no part of training; `test_frame` holds the test rows' columns, for the subgroup table)."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    test_frame: pd.DataFrame
    outer: Split
    inner: Split


def split_folds(frame: pd.DataFrame, config: TrainingConfig, file: str = "the data file") -> Folds:
    """The promotion holdout out first; then the grouped test split of the rest, and the grouped validation fold
    inside its training part (seed + 1)."""
    x_all, y_all = features_matrix(frame), frame[TARGET].to_numpy(dtype=np.int64)
    held = in_holdout(x_all)
    rest = frame.loc[~held].reset_index(drop=True)
    x_rest, y_rest = x_all[~held], y_all[~held]
    numbers = np.arange(1, len(frame) + 1)
    check_near_copies(
        x_all[held], y_all[held], x_rest, y_rest, file=file, holdout_rows=numbers[held], rest_rows=numbers[~held]
    )
    outer = grouped_split(rest, test_fraction=config.test_fraction, seed=config.seed)
    train_frame = rest.iloc[outer.train].reset_index(drop=True)
    inner = grouped_split(train_frame, test_fraction=config.validation_fraction, seed=config.seed + 1)
    x_train, y_train = x_rest[outer.train], y_rest[outer.train]
    return Folds(
        x_train[inner.train],
        y_train[inner.train],
        x_train[inner.test],
        y_train[inner.test],
        x_rest[outer.test],
        y_rest[outer.test],
        x_all[held],
        y_all[held],
        rest.iloc[outer.test],
        outer,
        inner,
    )


def holdout_record(folds: Folds) -> HoldoutRecord:
    """What this data file contributes to the promotion holdout."""
    return HoldoutRecord(
        definition=HOLDOUT_DEFINITION,
        share=HOLDOUT_SHARE,
        rows=len(folds.y_holdout),
        groups=len(np.unique(folds.x_holdout, axis=0)),
        class_counts={c.name: int((folds.y_holdout == c.id).sum()) for c in CLASSES},
    )


def training_average(folds: Folds) -> float:
    """The share of pre-diabetes or diabetes among the rows the model learnt from (fit and validation folds): the
    average a person's risk is set against. Test and holdout labels never reach anything a person is shown."""
    trained_on = np.concatenate([folds.y_fit, folds.y_val])
    return float(np.mean(trained_on != CLASSES[0].id))


def _class_weights(y: np.ndarray, weighting: str) -> np.ndarray | None:
    if weighting == "none":
        return None
    if weighting != "class_weights":
        raise ValueError(f"unknown imbalance strategy {weighting!r}; use 'none' or 'class_weights'")
    counts = np.bincount(y, minlength=N_CLASSES)
    balanced = len(y) / (N_CLASSES * np.maximum(counts, 1))
    # sqrt-balanced: full "balanced" weights were measured to cost ~0.05 macro AUC on the real file.
    weights: np.ndarray = np.sqrt(balanced)[y]
    return weights


def _fit_booster(
    config: TrainingConfig,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    weighting: str,
) -> lgb.Booster:
    # The validation fold carries the same weights, so early stopping watches the loss being optimised.
    fit_set = lgb.Dataset(x_fit, y_fit, weight=_class_weights(y_fit, weighting), free_raw_data=False)
    val_set = lgb.Dataset(x_val, y_val, weight=_class_weights(y_val, weighting), reference=fit_set)
    return lgb.train(
        config.lightgbm_params(),
        fit_set,
        num_boost_round=config.max_rounds,
        valid_sets=[val_set],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )


def _raw_scores(booster: lgb.Booster, rows: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(rows, raw_score=True), dtype=np.float64)


def _in_care_proba(candidate: Candidate, rows: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The calibrated probabilities of `rows` with the access answers read as "in care" (`proba`: as given), as the
    Predictor serves them."""
    return in_care_probabilities(
        rows, proba, lambda changed: calibrate(_raw_scores(candidate.booster, changed), candidate.calibration)
    )


def _scored(
    weighting: str,
    rule_name: str,
    fitted: tuple[lgb.Booster, Calibration],
    rule: DecisionRule,
    proba: np.ndarray,
    y_val: np.ndarray,
) -> Candidate:
    """A candidate, named `<weighting>+<rule name>`, with its validation metrics."""
    booster, calibration = fitted
    metrics = classification_metrics(y_val, decide(proba, rule), proba)
    metrics["best_iteration"] = float(booster.best_iteration)
    return Candidate(f"{weighting}+{rule_name}", weighting, booster, calibration, rule, metrics, proba)


def _candidates(
    config: TrainingConfig, x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[list[Candidate], list[Candidate]]:
    """Every strategy's candidates, with the decision rule's precision floor and (for the record) without it."""
    with_floor: list[Candidate] = []
    without_floor: list[Candidate] = []
    for weighting in config.strategies:
        started = time.perf_counter()
        booster = _fit_booster(config, x_fit, y_fit, x_val, y_val, weighting)
        raw = _raw_scores(booster, x_val)
        calibration = fit_calibration(raw, y_val)
        proba = calibrate(raw, calibration)
        tuned = tune_decision_rule(proba, y_val)
        logger.info("fitted %s in %.1fs (%d rounds)", weighting, time.perf_counter() - started, booster.best_iteration)
        fitted = (booster, calibration)
        argmax = _scored(weighting, "argmax", fitted, DecisionRule(), proba, y_val)
        with_floor += [argmax, _scored(weighting, "tuned_rule", fitted, tuned.rule, proba, y_val)]
        without_floor += [argmax, _scored(weighting, "tuned_rule", fitted, tuned.without_floor, proba, y_val)]
    return with_floor, without_floor


def _choose(candidates: list[Candidate]) -> Candidate:
    """The best validation weighted F1 (to 6 digits), then the best validation macro ROC-AUC."""
    return max(candidates, key=lambda c: (round(c.validation["weighted_f1"], 6), c.validation["macro_roc_auc"]))


def _outcome(candidate: Candidate, proba: np.ndarray, y: np.ndarray) -> RuleOutcome:
    """A candidate's rule on the test split: weighted F1, and how many people get each label, how precisely."""
    decided = decide(proba, candidate.rule)
    cm = confusion(y, decided)
    named = cm.sum(axis=0)
    precision = np.divide(np.diag(cm), named, out=np.zeros(N_CLASSES), where=named > 0)
    return RuleOutcome(
        candidate=candidate.name,
        class_weights=candidate.rule.class_weights,
        validation_weighted_f1=candidate.validation["weighted_f1"],
        test_weighted_f1=weighted_f1(y, decided),
        test_named=tuple(int(n) for n in named),
        test_precision=tuple(float(p) for p in precision),
    )


@dataclass(frozen=True)
class _DataFile:
    """The training file's rows and what the manifest records of it."""

    path: Path
    frame: pd.DataFrame
    sha256: str
    synthetic: bool

    @classmethod
    def read(cls, path: Path) -> _DataFile:
        sha256 = file_sha256(path)
        return cls(Path(path), read_data_file(path, target="required"), sha256, is_synthetic(path, sha256))

    @property
    def title(self) -> str:
        """How the figures name the data: the file, and whether it is real."""
        return f"{self.path.name} ({'SYNTHETIC data' if self.synthetic else 'real data'})"

    def record(self) -> DataRecord:
        return DataRecord(
            file=self.path.name,
            sha256=self.sha256,
            rows=len(self.frame),
            synthetic=self.synthetic,
            duplicates=duplicate_report(self.frame).to_dict(),
            class_counts={c.name: int((self.frame[TARGET] == c.id).sum()) for c in CLASSES},
        )


@dataclass(frozen=True)
class _TestScores:
    """The chosen candidate on the test split, and the others' test scores for the record (never for the choice)."""

    proba: np.ndarray
    predicted: np.ndarray
    metrics: dict[str, float]
    compared: dict[str, dict[str, float]]
    floor: PrecisionFloor


def _test_scores(
    candidates: list[Candidate], without_floor: list[Candidate], best: Candidate, folds: Folds
) -> _TestScores:
    x_test, y_test = folds.x_test, folds.y_test
    # Candidates of one weighting share a booster and its calibration: score the test split once per booster.
    test_proba = {c.weighting: calibrate(_raw_scores(c.booster, x_test), c.calibration) for c in candidates}
    proba = test_proba[best.weighting]
    predicted = decide(proba, best.rule)
    compared = {}
    for c in candidates:
        c_proba = test_proba[c.weighting]
        c_test = classification_metrics(y_test, decide(c_proba, c.rule), c_proba)
        compared[c.name] = {
            **{f"validation_{k}": v for k, v in c.validation.items()},
            **{f"test_{k}": v for k, v in c_test.items() if k in ("weighted_f1", "macro_f1", "macro_roc_auc")},
        }
    free = _choose(without_floor)
    floor = PrecisionFloor(
        min_precision_lift=MIN_PRECISION_LIFT,
        min_named=MIN_NAMED,
        confidence=PRECISION_CONFIDENCE,
        with_floor=_outcome(best, proba, y_test),
        without_floor=_outcome(free, test_proba[free.weighting], y_test),
    )
    return _TestScores(proba, predicted, classification_metrics(y_test, predicted, proba), compared, floor)


def _screening(best: Candidate, folds: Folds, proba: np.ndarray) -> tuple[ScreeningRule, pd.DataFrame]:
    """The screening levels' thresholds (validation fold) and whom they flag by subgroup (test split)."""
    validation = Scored(
        folds.x_val, folds.y_val, best.validation_proba, _in_care_proba(best, folds.x_val, best.validation_proba)
    )
    tested = Scored(folds.x_test, folds.y_test, proba, _in_care_proba(best, folds.x_test, proba))
    rule = choose_screening(
        validation,
        tested,
        average=training_average(folds),
        training_labels=np.concatenate((folds.y_fit, folds.y_val)),
    )
    return rule, screening_subgroups(folds.x_test, folds.y_test, *raised_flags(rule, tested))


def _write_figures(
    folder: Path,
    data: _DataFile,
    folds: Folds,
    scores: _TestScores,
    ada: AdaComparison,
    tables: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[Path, ...]:
    """The confusion matrix, the ROC against the ADA test and the two subgroup tables, written into `folder`."""
    y_test = folds.y_test
    split = f"{data.title}, test split of {len(y_test):,} rows"
    png = plot_confusion_matrix(
        y_test, scores.predicted, folder / CONFUSION_PNG, f"{split}: weighted F1 {scores.metrics['weighted_f1']:.3f}"
    )
    roc = plot_ada_roc(
        folds.x_test, y_test, scores.proba, ada, folder / ADA_ROC_PNG, f"{split}: the model against the ADA risk test"
    )
    csv_files = (folder / SUBGROUPS_CSV, folder / SCREENING_SUBGROUPS_CSV)
    for table, csv in zip(tables, csv_files, strict=True):
        table.to_csv(csv, index=False, float_format="%.4f")
    return (png, roc, *csv_files)


def train(data_path: Path, output_dir: Path, config: TrainingConfig | None = None) -> TrainingResult:
    """Train on the rows of `data_path` (own validation and test split, holdout left out) and write the artifact."""
    config = config or TrainingConfig()
    started = time.perf_counter()
    check_output_folder(output_dir)
    data = _DataFile.read(data_path)
    folds = split_folds(data.frame, config, data.path.name)
    candidates, without_floor = _candidates(config, folds.x_fit, folds.y_fit, folds.x_val, folds.y_val)
    best = _choose(candidates)
    logger.info("chose %s (validation weighted F1 %.4f)", best.name, best.validation["weighted_f1"])
    scores = _test_scores(candidates, without_floor, best, folds)
    subgroups = subgroup_table(folds.test_frame, folds.y_test, scores.predicted, scores.proba)
    ada = compare_with_ada(folds.x_test, folds.y_test, scores.proba)
    screening, screening_table = _screening(best, folds, scores.proba)
    with tempfile.TemporaryDirectory() as tmp:
        figures = _write_figures(Path(tmp), data, folds, scores, ada, (subgroups, screening_table))
        report = TrainingReport(
            calibration=best.calibration,
            decision_rule=best.rule,
            precision_floor=scores.floor,
            screening=screening,
            imbalance_strategy=ImbalanceStrategy(chosen=best.name, weighting=best.weighting, compared=scores.compared),
            training=TrainingRecord(
                config=asdict(config),
                lightgbm_params=config.lightgbm_params(),
                best_iteration=best.booster.best_iteration,
                seconds=round(time.perf_counter() - started, 2),
            ),
            metrics=Metrics(test=scores.metrics, validation_tuned_on=best.validation),
            ada_comparison=ada,
            data=data.record(),
            split=SplitRecord(
                promotion_holdout=holdout_record(folds), test=folds.outer.protocol, validation=folds.inner.protocol
            ),
        )
        manifest = save_artifact(output_dir, best.booster, report, extra_files=figures)
    digest = artifact_digest(read_folder(output_dir))
    return TrainingResult(output_dir, manifest, digest, subgroups, screening_table, folds.x_holdout, folds.y_holdout)


def format_report(result: TrainingResult) -> str:
    """The test metrics as a short, honest text block (split protocol, data kind and digest included)."""
    m = result.test_metrics
    manifest = result.manifest
    split = manifest.split.test
    lines = []
    if result.synthetic:
        lines.append("*** SYNTHETIC DATA: these numbers say nothing about the real BRFSS file ***")
    lines += [
        f"model {manifest.model_version} -> {result.artifact_dir}",
        f"digest (MODEL_SHA256) {result.digest}",
        f"strategy: {manifest.imbalance_strategy.chosen}; "
        f"decision rule weights {list(manifest.decision_rule.class_weights)}",
    ]
    floor = manifest.precision_floor
    for what, outcome in (("with", floor.with_floor), ("without", floor.without_floor)):
        lines.append(
            f"{what} the precision floor ({floor.min_precision_lift:g}x base rate, >= {floor.min_named} named): "
            f"{outcome.candidate} "
            f"{list(outcome.class_weights)}, names {outcome.test_named[1]:,} test rows pre-diabetic "
            f"(precision {outcome.test_precision[1]:.3f}), test weighted F1 {outcome.test_weighted_f1:.4f}"
        )
    lines += [
        f"protocol: {split.get('method', 'grouped split')}, test fraction {split.get('test_fraction')}, "
        f"seed {split.get('seed')}, split_id {split.get('split_id')}; {int(m['rows']):,} test rows; "
        f"{manifest.split.promotion_holdout.rows:,} rows in the promotion holdout, not used",
        f"weighted F1      {m['weighted_f1']:.4f}   (primary)",
        f"macro F1         {m['macro_f1']:.4f}",
        f"macro ROC-AUC    {m['macro_roc_auc']:.4f}   (one-vs-rest)",
        f"log loss         {m['log_loss']:.4f}",
        f"ECE              {m['ece']:.4f}   (top label); per class "
        + ", ".join(f"{c.name} {m[f'ece_{c.name}']:.4f}" for c in CLASSES),
        f"balanced acc.    {m['balanced_accuracy']:.4f}",
    ]
    lines += [
        f"{c.label:<16} precision {m[f'precision_{c.name}']:.3f}  recall {m[f'recall_{c.name}']:.3f}  "
        f"F1 {m[f'f1_{c.name}']:.3f}"
        for c in CLASSES
    ]
    ada = manifest.ada_comparison
    for name, compared in (("pre-diabetes or diabetes", ada.prediabetes_or_diabetes), ("diabetes", ada.diabetes)):
        lines.append(
            f"vs ADA test ({name}): AUC {compared.model_roc_auc:.3f} vs {compared.ada_roc_auc:.3f}; at sensitivity "
            f"{compared.ada_sensitivity:.3f}, specificity {compared.model_specificity:.3f} "
            f"vs {compared.ada_specificity:.3f}"
        )
    rule = manifest.screening
    test, access, unchecked = rule.test, rule.access, rule.test_not_checked
    lines += [
        f"screening        average risk {rule.average:.1%} (pre-diabetes {rule.prediabetes_average:.1%}); raised "
        f"from {rule.raised:.1%} ({rule.raised_not_checked:.1%} if not checked in 5 years), high from "
        f"{rule.high:.1%} (validation fold)",
        f"  access answers read as in care: ROC-AUC {access.roc_auc_in_care:.4f} (as given "
        f"{access.roc_auc_as_given:.4f}); specificity at the ADA sensitivity "
        f"{access.specificity_at_ada_sensitivity_in_care:.3f} "
        f"(as given {access.specificity_at_ada_sensitivity_as_given:.3f})",
        f"  raised or high on the test rows: {test.flagged:.1%} of people (ADA {test.ada_flagged:.1%}), "
        f"{test.precision:.1%} of them with pre-diabetes or diabetes; finds {test.sensitivity:.1%} of those (ADA "
        f"{test.ada_sensitivity:.1%}), {test.sensitivity_prediabetes:.1%} of the people with pre-diabetes (ADA "
        f"{test.ada_sensitivity_prediabetes:.1%}) and {test.sensitivity_diabetes:.1%} of those with diabetes; "
        f"specificity {test.specificity:.1%} (ADA {test.ada_specificity:.1%})",
        f"  not checked in 5 years ({unchecked.rows:,} test rows): {unchecked.flagged:.1%} raised or high "
        f"(ADA {unchecked.ada_flagged:.1%})",
        f"training time    {manifest.training.seconds:.1f} s",
    ]
    return "\n".join(lines)
