"""The reference holdout: the one set of rows and labels every promotion within a registered model is judged on.

A candidate's own data file must not decide whether it is promoted: a file relabelled to the model's own answers,
or a synthetic file copied without its sidecar, scored its own model 1.0000 and 0.8263 on "its" promotion
holdout. So the rows and labels are pinned once, with the registered model, and loaded from the registry for
every later comparison:

- **Pinned** at the registered model's first promotion, from that model's data file: automatically for the
  synthetic registry and, for the production model, only when the file's holdout is the published survey's
  (`PUBLISHED_HOLDOUTS`: its digest, which this module knows, so no other file can become the first reference by
  a side effect of training); otherwise, and for every renewal, by the model owner with
  `python -m ml.reference renew`.
- **Kept** as a run of the experiment `<name>-reference-holdout`: the rows and labels as a CSV in the data file's
  own format, who pinned them, when, why and what they replaced; the registered model's tag `reference_holdout`
  names that run and the rows' digest.
- **Loaded** for each comparison from that run and checked against the digest; the candidate's file supplies
  nothing but the check that its own holdout is the same rows with the same labels (`holdout_digest`).

The digest is over the sorted rows (label and the features as float64), so it does not depend on row order or on
how the numbers are written (`1` or `1.0`, CSV or gzip).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import ConfigDict, TypeAdapter, ValidationError

from ml.schema import CLASSES, FEATURE_NAMES, TARGET
from ml.training.data import DataValidationError, features_matrix, read_data_file
from ml.training.holdout import HOLDOUT_DEFINITION

#: Registered-model tag holding the pinned reference (`ReferenceRecord`, JSON).
REFERENCE_TAG = "reference_holdout"
#: Registered-model tag counting the comparisons made on the pinned reference (reset when it is renewed).
COMPARISONS_TAG = "reference_holdout_comparisons"
#: Where the rows are kept in the pinning run.
ARTIFACT_PATH = "reference_holdout"
ARTIFACT_FILE = "holdout.csv.gz"
_DIGEST_LABEL = b"diabetes-status reference holdout v1\x00"

#: The digest of the promotion holdout of each published data file that the production model's first promotion
#: may pin by itself (computed with `holdout_digest` from the file's rows; a hash, not the rows).
PUBLISHED_HOLDOUTS = {
    # diabetes_012_health_indicators_BRFSS2015.csv (Kaggle, CDC BRFSS 2015, 3 classes): 25,467 rows
    "3b8dfad5f6049ec85c762166bcc3b46f22b174ddf95409b2422655cb6e54e15b": "the BRFSS 2015 3-class file",
}


class ReferenceHoldoutError(RuntimeError):
    """The registry's reference holdout is missing, altered or cannot be read; the message says how to fix it."""


def holdout_digest(features: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the rows and labels, whatever their order and however the file wrote the numbers."""
    rows = np.column_stack([np.asarray(labels, dtype="<f8"), np.asarray(features, dtype="<f8")]) + 0.0
    rows = np.ascontiguousarray(rows[np.lexsort(rows.T[::-1])]) if len(rows) else rows
    return hashlib.sha256(_DIGEST_LABEL + HOLDOUT_DEFINITION.encode() + b"\x00" + rows.tobytes()).hexdigest()


def experiment_name(name: str) -> str:
    """The experiment whose runs record every pinning of `name`'s reference holdout."""
    return f"{name}-reference-holdout"


def operator() -> str:
    """Who is acting: MLflow's user name when the store authenticates, else the operating system's."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


@dataclass(frozen=True)
class ReferenceRecord:
    """What the registry says about the pinned reference (the `reference_holdout` tag), read with its types checked."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")

    sha256: str
    rows: int
    class_counts: dict[str, int]
    definition: str
    run_id: str
    source: str
    pinned_at: str
    pinned_by: str
    reason: str
    replaced: str | None = None  # the digest it replaced

    def describe(self) -> str:
        return (
            f"reference holdout {self.sha256[:12]}... ({self.rows:,} rows of {self.source}, pinned {self.pinned_at} "
            f"by {self.pinned_by}: {self.reason})"
        )


_RECORD = TypeAdapter(ReferenceRecord)


@dataclass(frozen=True)
class ReferenceHoldout:
    """The pinned rows and labels, loaded from the registry and checked against the digest."""

    record: ReferenceRecord
    features: np.ndarray
    labels: np.ndarray


def read_record(client: MlflowClient, name: str) -> ReferenceRecord | None:
    """The reference pinned for `name`, or None when none is (or the registered model does not exist yet)."""
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return None
    raw = tags.get(REFERENCE_TAG)
    if raw is None:
        return None
    try:
        return _RECORD.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors())
        raise ReferenceHoldoutError(
            f"the {REFERENCE_TAG!r} tag of {name} is not a reference record ({problems}): it was edited outside "
            "ml.reference. Restore it from the pinning run's tags, or renew the reference on purpose "
            "(python -m ml.reference renew)"
        ) from None


def load_reference(client: MlflowClient, name: str, record: ReferenceRecord) -> ReferenceHoldout:
    """The pinned rows, downloaded from their run and checked against the digest the registry holds.

    The run must be a pinning run of `<name>-reference-holdout` that recorded this digest: where only the model's
    owner may write to that experiment, nobody else can make the registry point at rows of their own.
    """
    where = f"run {record.run_id}, {ARTIFACT_PATH}/{ARTIFACT_FILE}"
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        try:
            run = client.get_run(record.run_id)
            experiment = client.get_experiment_by_name(experiment_name(name))
            if (
                experiment is None
                or run.info.experiment_id != experiment.experiment_id
                or run.data.tags.get("reference_sha256") != record.sha256
            ):
                raise ReferenceHoldoutError(
                    f"the reference holdout of {name} names run {record.run_id}, which is not a run of "
                    f"{experiment_name(name)!r} that pinned {record.sha256[:12]}...; renew the reference on purpose"
                )
            path = client.download_artifacts(record.run_id, f"{ARTIFACT_PATH}/{ARTIFACT_FILE}", tmp)
            frame = read_data_file(path)
        except (MlflowException, OSError, DataValidationError) as exc:
            raise ReferenceHoldoutError(f"cannot read the reference holdout of {name} ({where}): {exc}") from None
    features, labels = features_matrix(frame), frame[TARGET].to_numpy(dtype=np.int64)
    digest = holdout_digest(features, labels)
    if digest != record.sha256:
        raise ReferenceHoldoutError(
            f"the reference holdout of {name} ({where}) has digest {digest[:12]}..., the registry pins "
            f"{record.sha256[:12]}...: the stored rows were altered. Restore them, or renew the reference on purpose"
        )
    return ReferenceHoldout(record, features, labels)


def pin_reference(
    client: MlflowClient,
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    source: str,
    reason: str,
    pinned_by: str,
) -> ReferenceRecord:
    """Make these rows and labels `name`'s reference holdout: a run records them, the registered model points to it.

    The comparison count starts again at 0. Callers decide whether pinning is allowed (`ml.training.tracking` at a
    first promotion, `python -m ml.reference renew` otherwise).
    """
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    previous = read_record(client, name)
    experiment = client.get_experiment_by_name(experiment_name(name))
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name(name))
    digest = holdout_digest(features, labels)
    run = client.create_run(experiment_id, run_name=f"reference {digest[:12]}")
    record = ReferenceRecord(
        sha256=digest,
        rows=len(labels),
        class_counts={c.name: int((labels == c.id).sum()) for c in CLASSES},
        definition=HOLDOUT_DEFINITION,
        run_id=run.info.run_id,
        source=source,
        pinned_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        pinned_by=pinned_by,
        reason=reason,
        replaced=previous.sha256 if previous else None,
    )
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        path = Path(tmp) / ARTIFACT_FILE
        frame = pd.DataFrame(np.asarray(features, dtype=np.float64), columns=list(FEATURE_NAMES))
        frame.insert(0, TARGET, np.asarray(labels, dtype=np.int64))
        frame.to_csv(path, index=False)
        client.log_artifact(run.info.run_id, str(path), ARTIFACT_PATH)
    for key, value in asdict(record).items():
        if key != "run_id":
            client.set_tag(run.info.run_id, f"reference_{key}", json.dumps(value) if isinstance(value, dict) else value)
    client.set_terminated(run.info.run_id)
    client.set_registered_model_tag(name, REFERENCE_TAG, json.dumps(asdict(record)))
    client.set_registered_model_tag(name, COMPARISONS_TAG, "0")
    return record


#: Registered-model tag: the training run that counted the latest comparison (who owns that number).
COUNTED_BY_TAG = "reference_holdout_counted_by"
#: Run tags of a training run that was compared on a reference: its digest and the comparison's number.
RUN_REFERENCE_TAG = "promotion_comparison_reference"
RUN_COMPARISON_TAG = "promotion_comparison"


@dataclass(frozen=True)
class Counted:
    """A comparison's number, and what the count was read from when the registry's counter disagreed."""

    number: int
    note: str | None = None


def recorded_comparisons(client: MlflowClient, record: ReferenceRecord) -> int:
    """The comparisons on this reference that training runs recorded (the highest number any run holds, or the
    number of such runs when that is larger): what a deleted or reset counter cannot take back."""
    experiments = [e.experiment_id for e in client.search_experiments(max_results=10_000)]
    runs = client.search_runs(
        experiments, filter_string=f"tags.{RUN_REFERENCE_TAG} = '{record.sha256}'", max_results=50_000
    )
    numbers = [int(n) for run in runs if (n := run.data.tags.get(RUN_COMPARISON_TAG, "")).isdigit()]
    return max([len(runs), *numbers])


def next_comparison(client: MlflowClient, name: str, record: ReferenceRecord, run_id: str) -> Counted:
    """Count one more comparison on `name`'s reference holdout for training run `run_id`; its number, from 1.

    The count is the larger of the registry's counter and the comparisons the runs recorded, so removing or
    resetting the tag does not give back the spent margin. The run claims its number (`COUNTED_BY_TAG`); a promotion
    that finds another run's claim before it moves the alias refuses (`ml.training.tracking`).
    """
    counted = client.get_registered_model(name).tags.get(COMPARISONS_TAG)
    if counted is not None and not counted.isdigit():
        raise ReferenceHoldoutError(
            f"the {COMPARISONS_TAG!r} tag of {name} is {counted!r}, not a count; the comparisons made on the "
            "reference cannot be accounted for. Restore it from the runs' promotion records, or renew the reference"
        )
    registry = int(counted or 0)
    recorded = recorded_comparisons(client, record)
    note = None
    if recorded > registry:
        note = (
            f"the registry's comparison counter says {'nothing' if counted is None else registry}, but training runs "
            f"recorded {recorded} comparisons on this reference: it was removed or reset, so the count continues "
            "from the runs"
        )
    number = max(registry, recorded) + 1
    client.set_tag(run_id, RUN_REFERENCE_TAG, record.sha256)
    client.set_tag(run_id, RUN_COMPARISON_TAG, str(number))
    client.set_registered_model_tag(name, COMPARISONS_TAG, str(number))
    client.set_registered_model_tag(name, COUNTED_BY_TAG, run_id)
    return Counted(number, note)
