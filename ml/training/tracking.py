"""MLflow tracking and registry: log every training run, register the model, move `champion` only on merit.

Models trained on real data are registered as `diabetes-status`, models trained on synthetic data as
`diabetes-status-synthetic`: a synthetic-data model never becomes a version, let alone the champion, of the
production model. Within one name, every candidate is compared with the champion on the registered model's
reference holdout (`ml.training.reference`): rows and labels pinned in the registry at its first promotion, never
supplied by the candidate's own file. A candidate is promoted only when its file reproduces that reference (its
own promotion holdout is the same rows with the same labels) and its weighted F1 is higher beyond noise while
its macro ROC-AUC is not lower beyond noise (`ml.training.comparison`: paired bootstrap intervals whose level
accounts for every comparison made on the reference), and its gain is plausible at the data's ceiling (a larger
one is held for a person). A champion with nothing to compare with must beat the majority-class baseline there.
The alias moves only if the champion and the comparison count are unchanged since the comparison started. The
decision, with both intervals, is logged on the run and printed by `ml.train`.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor
from ml.manifest import Manifest
from ml.training.comparison import PairedComparison, absolute_check, compare
from ml.training.pipeline import ADA_ROC_PNG, CONFUSION_PNG, SCREENING_SUBGROUPS_CSV, SUBGROUPS_CSV, TrainingResult
from ml.training.reference import (
    COMPARISONS_TAG,
    COUNTED_BY_TAG,
    PUBLISHED_HOLDOUTS,
    ReferenceHoldoutError,
    ReferenceRecord,
    holdout_digest,
    load_reference,
    next_comparison,
    operator,
    pin_reference,
    read_record,
)
from ml.training.screening_subgroups import who_is_missed

logger = logging.getLogger(__name__)

#: The production model: real-data models only.
MODEL_NAME = "diabetes-status"
#: Where models trained on synthetic data (`make demo`, tests) are registered instead.
SYNTHETIC_MODEL_NAME = "diabetes-status-synthetic"
CHAMPION = "champion"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
#: Tag of runs and model versions: the artifact's digest (what `MODEL_SHA256` pins).
DIGEST_TAG = "model_sha256"
#: Tag of runs: the promotion holdout definition the model was trained under.
HOLDOUT_TAG = "promotion_holdout"
#: The MLflow model imports nothing from the store: MLflow loads it through this installed module.
PYFUNC_LOADER = "ml.training.mlflow_model"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded sqlite store in the project folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def registered_name(synthetic: bool) -> str:
    """The registered model a run's model joins: never the production name for synthetic data."""
    return SYNTHETIC_MODEL_NAME if synthetic else MODEL_NAME


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the new version became champion, and why: the reference it was judged on, both scores, both
    intervals (`comparison`, when the two were compared)."""

    promoted: bool
    reason: str
    holdout_rows: int  # rows of the reference holdout (of the candidate's own holdout when none is pinned yet)
    champion_version: str | None = None
    reference_sha256: str | None = None
    reproduces_reference: bool | None = None
    comparison: PairedComparison | None = None


@dataclass(frozen=True)
class TrackingOutcome:
    run_id: str
    experiment_id: str
    registered_name: str
    registered_version: str
    decision: PromotionDecision

    @property
    def champion(self) -> bool:
        return self.decision.promoted

    @property
    def reason(self) -> str:
        return self.decision.reason

    def summary(self) -> str:
        verdict = "is now champion" if self.champion else "champion unchanged"
        return (
            f"MLflow run {self.run_id} ({tracking_uri()}); registered {self.registered_name} "
            f"v{self.registered_version}, {verdict}: {self.reason}"
        )


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _flat_params(result: TrainingResult) -> dict[str, Any]:
    manifest = result.manifest
    params: dict[str, Any] = {f"lgb_{k}": v for k, v in manifest.training.lightgbm_params.items()}
    params.update({f"cfg_{k}": v for k, v in manifest.training.config.items()})
    params["imbalance_strategy"] = manifest.imbalance_strategy.chosen
    params["decision_rule_weights"] = list(manifest.decision_rule.class_weights)
    params["decision_rule_without_floor"] = list(manifest.precision_floor.without_floor.class_weights)
    params["calibration_method"] = manifest.calibration.method
    params["calibration_temperature"] = round(manifest.calibration.temperature, 6)
    params["best_iteration"] = manifest.training.best_iteration
    return params


def _metrics(result: TrainingResult) -> dict[str, float]:
    manifest = result.manifest
    metrics = {f"test_{k}": v for k, v in manifest.metrics.test.items()}
    metrics["weighted_f1"] = manifest.metrics.test["weighted_f1"]
    metrics.update({f"validation_tuned_on_{k}": v for k, v in manifest.metrics.validation_tuned_on.items()})
    for name, scores in manifest.imbalance_strategy.compared.items():
        key = name.replace("+", "__")
        metrics.update({f"candidate_{key}_{metric}": value for metric, value in scores.items()})
    floor = manifest.precision_floor
    for what, outcome in (("with", floor.with_floor), ("without", floor.without_floor)):
        metrics[f"precision_floor_{what}_test_weighted_f1"] = outcome.test_weighted_f1
        metrics[f"precision_floor_{what}_test_named_prediabetic"] = outcome.test_named[1]
        metrics[f"precision_floor_{what}_test_precision_prediabetic"] = outcome.test_precision[1]
    ada = manifest.ada_comparison
    for target in ("prediabetes_or_diabetes", "diabetes", "prediabetes"):
        compared = getattr(ada, target).model_dump()
        metrics.update({f"ada_{target}_{k}": v for k, v in compared.items()})
    metrics.update(_screening_metrics(result))
    metrics["training_seconds"] = manifest.training.seconds
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}


def _screening_metrics(result: TrainingResult) -> dict[str, float]:
    """The screening rule, its test figures beside the ADA test's, and every group's sensitivity and specificity."""
    screening = result.manifest.screening
    metrics = {f"screening_{name}": getattr(screening, name) for name in ("raised", "raised_not_checked", "high")}
    metrics.update({f"screening_access_{k}": v for k, v in screening.access.model_dump().items() if k != "method"})
    metrics.update({f"screening_test_{k}": v for k, v in screening.test.model_dump().items()})
    metrics.update({f"screening_not_checked_{k}": v for k, v in screening.test_not_checked.model_dump().items()})
    for record in result.screening_subgroups.to_dict(orient="records"):
        group = f"{record['feature']}_{record['group']}"
        for measure in ("sensitivity", "specificity"):
            for test in ("model", "ada"):
                metrics[_metric_name(f"screening_{group}_{measure}_{test}")] = record[f"{measure}_{test}"]
    return metrics


def _metric_name(text: str) -> str:
    """MLflow allows letters, digits and _-. /: a group such as "< $25,000" becomes "lt_25000"."""
    text = text.replace("<", "lt").replace("+", "plus").replace("$", "").replace(",", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def log_pyfunc(artifact_dir: Path, name: str) -> str:
    """Log an artifact folder as the active run's pyfunc model (data only; `PYFUNC_LOADER` is its code), register
    it as `name` and return the new version."""
    model_info = mlflow.pyfunc.log_model(
        name="model",
        loader_module=PYFUNC_LOADER,
        data_path=str(artifact_dir),
        pip_requirements=[
            f"{package}=={metadata.version(package)}" for package in ("lightgbm", "numpy", "pandas", "mlflow")
        ],
        registered_model_name=name,
    )
    return str(model_info.registered_model_version)


def version_description(result: TrainingResult) -> str:
    """What a registry version is, in one paragraph: the data it learnt from, its test figures, its digest."""
    manifest = result.manifest
    data, test = manifest.data, manifest.metrics.test
    kind = "SYNTHETIC data (says nothing about real people)" if data.synthetic else "the real survey file"
    return (
        f"Model {manifest.model_version}, trained on {kind}: {data.file} ({data.rows:,} rows, sha256 "
        f"{data.sha256[:12]}...). Test split of {int(test['rows']):,} rows: weighted F1 {test['weighted_f1']:.4f}, "
        f"macro ROC-AUC {test['macro_roc_auc']:.4f}, log loss {test['log_loss']:.4f}. Screening: raised from "
        f"{manifest.screening.raised:.1%} risk, finds {manifest.screening.test.sensitivity:.1%} of people with "
        f"pre-diabetes or diabetes. Digest (MODEL_SHA256) {result.digest}."
    )


def log_training_run(result: TrainingResult, *, experiment: str = MODEL_NAME) -> TrackingOutcome:
    """Log params, metrics, images, tables, manifest and the model; register it and decide the champion."""
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(experiment)
    manifest = result.manifest
    name = registered_name(manifest.data.synthetic)
    tags = {
        "data_sha256": manifest.data.sha256,
        "data_synthetic": str(manifest.data.synthetic).lower(),
        "data_file": manifest.data.file,
        "split_id": manifest.split.test_split_id,
        HOLDOUT_TAG: manifest.split.promotion_holdout.definition,
        DIGEST_TAG: result.digest,
        "git_commit": git_commit(),
        "model_version": manifest.model_version,
    }
    with mlflow.start_run(run_name=manifest.model_version, tags=tags) as run:
        mlflow.log_params(_flat_params(result))
        mlflow.log_metrics(_metrics(result))
        for file in (CONFUSION_PNG, ADA_ROC_PNG, SUBGROUPS_CSV, SCREENING_SUBGROUPS_CSV):
            mlflow.log_artifact(str(result.artifact_dir / file), artifact_path="evaluation")
        mlflow.log_table(result.subgroups, artifact_file="evaluation/subgroup_metrics.json")
        mlflow.log_table(result.screening_subgroups, artifact_file="evaluation/screening_subgroups.json")
        mlflow.log_text(who_is_missed(result.screening_subgroups), "evaluation/screening_who_is_missed.txt")
        mlflow.log_dict(manifest.model_dump(mode="json", by_alias=True), "manifest.json")
        version = log_pyfunc(result.artifact_dir, name)
        client = MlflowClient()
        client.set_model_version_tag(name, version, DIGEST_TAG, result.digest)
        client.update_model_version(name, version, description=version_description(result))
        decision = decide_promotion(client, name, version, result)
        mlflow.set_tag("champion_decision", decision.reason)
        if decision.reference_sha256:
            mlflow.set_tag("promotion_reference_sha256", decision.reference_sha256)
        mlflow.log_dict(asdict(decision), "promotion_decision.json")
        mlflow.log_metrics(_decision_metrics(decision))
        return TrackingOutcome(run.info.run_id, run.info.experiment_id, name, version, decision)


def _decision_metrics(decision: PromotionDecision) -> dict[str, float]:
    """The comparison's figures as run metrics: both scores on the reference, both intervals and their level."""
    compared = decision.comparison
    if compared is None:
        return {}
    metrics = {
        "promotion_holdout_weighted_f1": compared.new_weighted_f1,
        "promotion_holdout_champion_weighted_f1": compared.champion_weighted_f1,
        "promotion_holdout_macro_roc_auc": compared.new_macro_auc,
        "promotion_holdout_champion_macro_roc_auc": compared.champion_macro_auc,
        "promotion_confidence": compared.confidence,
        "promotion_comparison": float(compared.comparison),
    }
    for key, interval in (
        ("weighted_f1_gain", compared.weighted_f1_gain),
        ("macro_roc_auc_change", compared.macro_auc_change),
    ):
        metrics.update(
            {
                f"promotion_{key}": interval.estimate,
                f"promotion_{key}_low": interval.low,
                f"promotion_{key}_high": interval.high,
            }
        )
    return metrics


def decide_promotion(client: MlflowClient, name: str, version: str, result: TrainingResult) -> PromotionDecision:
    """Move `champion` of `name` to `version` only when it beats the champion beyond noise on the reference."""
    try:
        record = read_record(client, name)
        current = _champion(client, name)
        if record is None:
            return _first_promotion(client, name, version, result, champion=current)
        if current is None:
            return _promote_without_champion(client, name, version, result, record)
        return _compare_with_champion(client, name, version, result, record, current)
    except (ReferenceHoldoutError, ArtifactError) as exc:  # the reference or the champion cannot be read
        return PromotionDecision(False, f"refused: {exc}", len(result.holdout_labels))
    except MlflowException as exc:  # the registry refused a read or write (a deleted champion run, ...)
        return PromotionDecision(
            False, f"refused: the registry could not answer ({exc.message}); fix it and train again", 0
        )


def _moved_since(client: MlflowClient, name: str, champion: str, number: int, run_id: str) -> str | None:
    """What changed in the registry since this run counted comparison `number` against `champion` (None when
    nothing did): re-read just before the alias moves, so a promotion decided on a stale state never lands. MLflow
    has no atomic compare-and-set; this leaves only the moment between this read and the alias write."""
    current = _champion(client, name)
    if current is None or str(current.version) != champion:
        return f"the champion moved from v{champion} to {'none' if current is None else f'v{current.version}'}"
    tags = client.get_registered_model(name).tags
    if tags.get(COMPARISONS_TAG) != str(number) or tags.get(COUNTED_BY_TAG) != run_id:
        return f"another comparison was counted on the reference (comparison {tags.get(COMPARISONS_TAG)}, not {number})"
    return None


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _candidate_digest(result: TrainingResult) -> str:
    return holdout_digest(result.holdout_features, result.holdout_labels)


def _first_promotion(
    client: MlflowClient, name: str, version: str, result: TrainingResult, *, champion: ModelVersion | None
) -> PromotionDecision:
    """No reference pinned yet: pin the candidate's holdout and promote it, where that may happen by itself."""
    rows, digest = len(result.holdout_labels), _candidate_digest(result)
    renew = f"python -m ml.reference renew --name {name} --data <file> --reason <why>"
    if champion is not None:
        return PromotionDecision(
            False,
            f"refused: {name} has a champion (v{champion.version}) but no reference holdout to compare on (it was "
            f"registered before promotions used one); the model owner pins it on purpose: `{renew}`",
            rows,
            champion_version=str(champion.version),
        )
    if rows == 0:
        return PromotionDecision(False, f"refused: {result.manifest.data.file} has no rows in the promotion holdout", 0)
    data = result.manifest.data
    if name == MODEL_NAME and digest not in PUBLISHED_HOLDOUTS:
        return PromotionDecision(
            False,
            f"refused: the first {name} champion pins the reference holdout every later model is judged on, and "
            f"{data.file} is not the published survey file (its promotion holdout, {rows:,} rows, has digest "
            f"{digest[:12]}...: a subsample, an edited or another file). Train on the published file as downloaded "
            "(`python -m ml.download`). Only when a new survey file is the data every later model must be judged on "
            f"does the model owner pin it on purpose (`{renew}`); never to get a subsample promoted",
            rows,
        )
    failed = _below_floor(result, result.holdout_features, result.holdout_labels, version)
    if failed is not None:
        return PromotionDecision(False, failed, rows)
    pinned = pin_reference(
        client,
        name,
        result.holdout_features,
        result.holdout_labels,
        source=f"{data.file} (sha256 {data.sha256[:12]}...)",
        reason=f"first promotion of {name}: v{version}",
        pinned_by=f"ml.train as {operator()}",
    )
    client.set_registered_model_alias(name, CHAMPION, version)
    return PromotionDecision(
        True,
        f"no champion of {name} yet: v{version} becomes champion, and the promotion holdout of {data.file} "
        f"({rows:,} rows, digest {digest[:12]}...) is pinned as the reference every later model is compared on",
        rows,
        reference_sha256=pinned.sha256,
        reproduces_reference=True,
    )


def _below_floor(result: TrainingResult, features: np.ndarray, labels: np.ndarray, version: str) -> str | None:
    """Why a first champion (no model to compare with) fails the absolute check on the reference rows (None when
    it passes): a file can keep the published holdout and relabel every training row."""
    model = Predictor.load(result.artifact_dir, expected_sha256=result.digest)
    compared, failure = absolute_check(labels, model.predict(features))
    if failure is None:
        return None
    return (
        f"refused: v{version} would be the first champion, and on the {len(labels):,} reference rows {failure}. A "
        f"first champion must beat the majority-class baseline beyond noise ({compared.confidence:.1%} paired "
        "bootstrap interval) and rank the classes (docs/operations.md); check the training file's labels"
    )


def _reproduction(result: TrainingResult, record: ReferenceRecord, version: str) -> str | None:
    """Why the candidate's file does not reproduce the reference (None when it does)."""
    if _candidate_digest(result) == record.sha256:
        return None
    rows = len(result.holdout_labels)
    return (
        f"the promotion holdout of v{version}'s data file {result.manifest.data.file} ({rows:,} rows) is not the "
        f"reference ({record.rows:,} rows of {record.source}): other rows or other labels (another data set, a "
        "subsample, relabelled or synthetic rows). Its model is judged on the reference all the same, but a file that "
        "disagrees with it is not promoted; if it is new survey data, the model owner renews the reference on "
        "purpose (`python -m ml.reference renew`)"
    )


def _promote_without_champion(
    client: MlflowClient, name: str, version: str, result: TrainingResult, record: ReferenceRecord
) -> PromotionDecision:
    """A reference is pinned (renewed before any model, or the alias was removed): a file that reproduces it wins."""
    mismatch = _reproduction(result, record, version)
    reproduces = mismatch is None and record.definition == result.manifest.split.promotion_holdout.definition
    failed = _below_floor(result, result.holdout_features, result.holdout_labels, version) if reproduces else None
    promoted = reproduces and failed is None
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    reason = (
        f"no champion of {name}: v{version} becomes champion; its data file reproduces the {record.describe()}, "
        "and it beats the majority-class baseline there"
        if promoted
        else failed
        or f"refused: no champion of {name} to compare with, and {mismatch or 'the holdout definitions differ'}"
    )
    return PromotionDecision(
        promoted, reason, record.rows, reference_sha256=record.sha256, reproduces_reference=mismatch is None
    )


def _incomparable(
    tags: dict[str, str], manifest: Manifest, record: ReferenceRecord, champion: str, version: str
) -> str | None:
    """Why the champion (its run's `tags`) and the new model cannot be compared on the reference, if they cannot."""
    definition = manifest.split.promotion_holdout.definition
    if tags.get(HOLDOUT_TAG) != definition or record.definition != definition:
        return (
            f"refused: {champion} was trained under the promotion holdout {tags.get(HOLDOUT_TAG)!r}, the reference "
            f"was pinned under {record.definition!r} and v{version} was trained under {definition!r}: a model may "
            f"have trained on the rows the others would be compared on; review them and move the alias by hand if "
            f"v{version} should serve"
        )
    if tags.get("data_synthetic") != str(manifest.data.synthetic).lower():
        return (
            f"refused: {champion} was trained on {'synthetic' if tags.get('data_synthetic') == 'true' else 'real'} "
            f"data and v{version} on {'synthetic' if manifest.data.synthetic else 'real'} data; models are only "
            "compared with models trained on the same kind of data"
        )
    return None


def _compare_with_champion(
    client: MlflowClient,
    name: str,
    version: str,
    result: TrainingResult,
    record: ReferenceRecord,
    current: ModelVersion,
) -> PromotionDecision:
    """Both models on the reference rows, paired; promoted when the file reproduces the reference and the gain is
    beyond noise."""
    manifest = result.manifest
    champion = f"champion v{current.version}"
    tags = client.get_run(str(current.run_id)).data.tags
    refused = partial(PromotionDecision, False, holdout_rows=record.rows, champion_version=str(current.version))
    incomparable = _incomparable(tags, manifest, record, champion, version)
    if incomparable is not None:
        return refused(incomparable)
    reference = load_reference(client, name, record)
    new = Predictor.load(result.artifact_dir, expected_sha256=result.digest)
    pinned = client.get_model_version(name, str(current.version)).tags.get(DIGEST_TAG)
    old = Predictor.load(f"models:/{name}/{current.version}", expected_sha256=pinned)
    run_id = str(client.get_model_version(name, version).run_id)
    counted = next_comparison(client, name, record, run_id)
    compared = compare(
        reference.labels, new.predict(reference.features), old.predict(reference.features), counted.number
    )
    mismatch = _reproduction(result, record, version)
    implausible = compared.implausible
    promoted = mismatch is None and compared.better and implausible is None
    moved = _moved_since(client, name, str(current.version), counted.number, run_id) if promoted else None
    if moved is not None:
        promoted = False
        verdict = (
            f"v{version} not promoted although better than {champion} beyond noise: {moved} since this comparison "
            "started (two promotions at once); train or compare again, one at a time"
        )
    elif promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
        verdict = f"v{version} is better than {champion} beyond noise"
    elif mismatch is None and compared.better and implausible is not None:
        verdict = (
            f"v{version} HELD FOR REVIEW, not promoted: {implausible} is more than the published file's split-to-split "
            "spread allows at the data's ceiling; the candidate may have seen the reference rows (copies in its "
            f"training file) or {champion} is broken. A person reviews both and moves the alias by hand "
            f"(`MlflowClient().set_registered_model_alias('{name}', '{CHAMPION}', '{version}')`) if v{version} "
            "should serve"
        )
    elif mismatch is not None:
        verdict = f"v{version} not promoted: {mismatch}"
    elif compared.weighted_f1_gain.high < 0:
        verdict = f"v{version} not promoted: its weighted F1 is lower than {champion}'s beyond noise"
    elif not compared.gain_beyond_noise:
        verdict = f"v{version} not promoted: its weighted F1 gain over {champion} is within noise"
    else:
        verdict = f"v{version} not promoted: its macro ROC-AUC is worse than {champion}'s beyond noise"
    basis = (
        f"on the {record.describe()}, whose rows the holdout definition keeps out of both models' training: "
        f"{compared.describe()}"
    )
    if counted.note:
        basis += f"; {counted.note}"
    if tags.get("data_sha256") != manifest.data.sha256:
        basis += (
            f"; the data file changed: {champion} was trained on {tags.get('data_file')} (sha256 "
            f"{str(tags.get('data_sha256'))[:12]}...), v{version} on {manifest.data.file} "
            f"(sha256 {manifest.data.sha256[:12]}...)"
        )
    return PromotionDecision(
        promoted,
        f"{verdict}; {basis}",
        record.rows,
        champion_version=str(current.version),
        reference_sha256=record.sha256,
        reproduces_reference=mismatch is None,
        comparison=compared,
    )
