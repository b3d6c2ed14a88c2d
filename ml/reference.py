"""`python -m ml.reference`: show or renew the reference holdout a registered model's promotions are judged on.

Renewing changes what "better" means for every later model, so it is never a side effect of training: the model's
owner runs `renew` on purpose (a new survey year), with a reason. Each pinning is a run of the experiment
`<name>-reference-holdout` recording the rows, who pinned them, when, why, from which file and what they replaced
(`ml.training.reference`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.inference.digest import file_sha256
from ml.schema import TARGET
from ml.training.data import DataValidationError, features_matrix, is_synthetic, read_data_file
from ml.training.holdout import in_holdout
from ml.training.reference import (
    COMPARISONS_TAG,
    ReferenceHoldoutError,
    holdout_digest,
    operator,
    pin_reference,
    read_record,
)
from ml.training.tracking import MODEL_NAME, tracking_uri


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.reference",
        description="Show or renew the reference holdout that every promotion of a registered model is judged on "
        "(MLFLOW_TRACKING_URI sets the store).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print the pinned reference: rows, origin, who pinned it, comparisons")
    show.add_argument("--name", default=MODEL_NAME, help=f"registered model (default {MODEL_NAME})")
    renew = commands.add_parser(
        "renew", help="pin the promotion holdout of a data file as the new reference (the model owner, on purpose)"
    )
    renew.add_argument("--name", default=MODEL_NAME, help=f"registered model (default {MODEL_NAME})")
    renew.add_argument("--data", required=True, type=Path, help="the data file whose promotion holdout to pin")
    renew.add_argument("--reason", required=True, help='why, for the record (e.g. "BRFSS 2016 survey file")')
    renew.add_argument("--operator", default=None, help="who renews it (default: MLflow's or the system's user)")
    return parser


def _show(name: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri())
    record = read_record(client, name)
    if record is None:
        print(f"{name} has no reference holdout; its first promotion pins one (see docs/operations.md)")
        return 1
    comparisons = client.get_registered_model(name).tags.get(COMPARISONS_TAG, "0")
    print(
        f"{name}: {record.describe()}\n  sha256 {record.sha256}\n  class counts {record.class_counts}\n"
        f"  holdout definition: {record.definition}\n  kept in run {record.run_id}\n"
        f"  replaced: {record.replaced or 'nothing (first reference)'}\n  comparisons made on it: {comparisons}"
    )
    return 0


def _renew(name: str, data: Path, reason: str, who: str) -> int:
    from mlflow import MlflowClient

    if not reason.strip():
        print("error: --reason must say why the reference is renewed", file=sys.stderr)
        return 2
    frame = read_data_file(data)
    if name == MODEL_NAME and is_synthetic(data):
        print(f"error: {data} is synthetic data; it cannot be the reference of {name}", file=sys.stderr)
        return 2
    features, labels = features_matrix(frame), frame[TARGET].to_numpy(dtype=np.int64)
    held = in_holdout(features)
    if not held.any():
        print(f"error: {data} has no rows in the promotion holdout", file=sys.stderr)
        return 2
    client = MlflowClient(tracking_uri())
    previous = read_record(client, name)
    if previous is not None and previous.sha256 == holdout_digest(features[held], labels[held]):
        print(
            f"error: {data} holds the reference already ({previous.describe()}); pinning the same rows again would "
            "only reset the count of comparisons made on them",
            file=sys.stderr,
        )
        return 1
    record = pin_reference(
        client,
        name,
        features[held],
        labels[held],
        source=f"{data.name} (sha256 {file_sha256(data)[:12]}...)",
        reason=reason.strip(),
        pinned_by=who,
    )
    print(
        f"{name}: pinned the {record.describe()}\n  replaces {previous.sha256 if previous else 'nothing'}; "
        f"recorded in run {record.run_id}; the comparison count starts again at 0. The champion stays: the next "
        "model trained on this data is compared with it on these rows."
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "show":
            return _show(args.name)
        return _renew(args.name, args.data, args.reason, args.operator or operator())
    except (DataValidationError, FileNotFoundError, ReferenceHoldoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
