"""Model-quality benchmark on the real BRFSS 2015 3-class file (not collected by pytest).

    uv run python -m tests.benchmarks.model_quality [--data PATH] [--repeat-seeds 1 2 3 4 5 6 7 8]

Trains exactly as `python -m ml.train` does (promotion holdout set aside, grouped 80/20 split of the rest by
identical feature vector, stratified, seed 42; validation fold carved from the training part) and prints one JSON
report: test metrics, classwise ECE, what the decision rule's precision floor changed, the comparison with the ADA
risk test, the subgroups.

The model-quality targets are retired; a change is judged by "no regression". `--repeat-seeds` retrains on other
grouped splits, reports every figure of `SPLIT_FIGURES` per split with its spread, and compares the metrics of
`NO_REGRESSION` with the reference's figures on the same seeds (`split_spread.per_seed` of `--reference`, by default
`docs/_data/real_metrics.json`, written from the previous run): the mean paired difference must not fall below minus
one standard deviation of the reference's spread. The exit code is 1 when it does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ml.manifest import Manifest
from ml.schema import CLASSES, REAL_DATA_FILE
from ml.training.pipeline import TrainingConfig, TrainingResult, format_report, train

CANDIDATE_PATHS = (
    Path("data") / f"{REAL_DATA_FILE}.gz",
    Path("data") / REAL_DATA_FILE,
    Path("..") / "shared" / "data" / f"{REAL_DATA_FILE}.gz",
)
DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "_data" / "real_metrics.json"
#: Metrics that must not regress, compared split by split with the reference.
NO_REGRESSION = ("weighted_f1", "macro_roc_auc")
_ADA_TARGETS = ("prediabetes_or_diabetes", "diabetes", "prediabetes")
_SCREENING_CUTOFFS = ("raised", "raised_not_checked", "high")
_ADA_FIGURES = ("model_roc_auc", "ada_roc_auc", "ada_sensitivity", "model_specificity", "ada_specificity")


def split_figures(manifest: Manifest) -> dict[str, float]:
    """The figures reported for every split: headline metrics, classwise ECE, the pre-diabetes label, the ADA test."""
    test = manifest.metrics.test
    floor = manifest.precision_floor
    figures = {name: test[name] for name in ("weighted_f1", "macro_roc_auc", "log_loss", "ece")}
    figures.update({f"ece_{c.name}": test[f"ece_{c.name}"] for c in CLASSES})
    for suffix, outcome in (("", floor.with_floor), ("_without_floor", floor.without_floor)):
        figures[f"named_prediabetic{suffix}"] = float(outcome.test_named[1])
        figures[f"precision_prediabetic{suffix}"] = outcome.test_precision[1]
        figures[f"weighted_f1{suffix}"] = outcome.test_weighted_f1
    ada = manifest.ada_comparison
    for target in _ADA_TARGETS:
        compared = getattr(ada, target)
        figures.update({f"ada_{target}_{name}": getattr(compared, name) for name in _ADA_FIGURES})
    screening = manifest.screening
    figures.update({f"screening_{name}": getattr(screening, name) for name in _SCREENING_CUTOFFS})
    figures.update(
        {f"screening_{name}": value for name, value in screening.access.model_dump().items() if name != "method"}
    )
    figures.update(
        {f"screening_test_{name}": value for name, value in screening.test.model_dump().items() if name != "rows"}
    )
    unchecked = screening.test_not_checked
    figures.update(
        screening_not_checked_flagged=unchecked.flagged, screening_not_checked_ada_flagged=unchecked.ada_flagged
    )
    return {name: round(value, 4) for name, value in figures.items()}


def _train_seconds(data: Path, seed: int) -> tuple[TrainingResult, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train(data, Path(tmp) / "model", TrainingConfig(seed=seed))
        return result, time.perf_counter() - started


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def no_regression(per_seed: dict[str, dict[str, float]], reference: dict[str, Any]) -> dict[str, Any]:
    """Paired comparison with the reference's `split_spread`, on the seeds both measured."""
    seeds = [seed for seed in per_seed if seed in reference["per_seed"]]
    if not seeds:
        raise ValueError(f"the reference measured none of the seeds {list(per_seed)}")
    verdicts: dict[str, Any] = {"seeds": seeds}
    for name in NO_REGRESSION:
        differences = [per_seed[seed][name] - reference["per_seed"][seed][name] for seed in seeds]
        allowed = reference["summary"][name]["sd"]
        mean_difference = statistics.fmean(differences)
        verdicts[name] = {
            "reference_mean": round(statistics.fmean(reference["per_seed"][seed][name] for seed in seeds), 4),
            "new_mean": round(statistics.fmean(per_seed[seed][name] for seed in seeds), 4),
            "mean_paired_difference": round(mean_difference, 4),
            "sd_of_paired_differences": round(statistics.stdev(differences), 4) if len(differences) > 1 else 0.0,
            "allowed_drop": allowed,
            "met": mean_difference >= -allowed,
        }
    return verdicts


def other_splits(data: Path, seeds: list[int], reference: dict[str, Any] | None) -> dict[str, Any]:
    """Every split figure on other grouped splits: per seed, then mean, sd, min and max; and the regression check."""
    per_seed: dict[str, dict[str, float]] = {}
    for seed in seeds:
        result, seconds = _train_seconds(data, seed)
        per_seed[str(seed)] = split_figures(result.manifest)
        print(f"seed {seed} ({seconds:.0f} s): {per_seed[str(seed)]}", file=sys.stderr)
    names = next(iter(per_seed.values()))
    summary = {name: _summary([figures[name] for figures in per_seed.values()]) for name in names}
    report: dict[str, Any] = {"per_seed": per_seed, "summary": summary}
    if reference is not None:
        report["no_regression"] = no_regression(per_seed, reference)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the real 3-class file (default: data/ or ../shared/data/)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split reported in full")
    parser.add_argument(
        "--repeat-seeds",
        type=int,
        nargs="*",
        default=[],
        help="also retrain on these split seeds: spread of every figure, and the no-regression check",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=DEFAULT_REFERENCE,
        help="JSON with a split_spread section to compare with (default: docs/_data/real_metrics.json)",
    )
    args = parser.parse_args()
    data = args.data or next((p for p in CANDIDATE_PATHS if p.is_file()), None)
    if data is None:
        print("real data file not found; run `uv run python -m ml.download` or pass --data", file=sys.stderr)
        return 2
    reference = json.loads(args.reference.read_text(encoding="utf-8")).get("split_spread")
    result, wall = _train_seconds(data, args.seed)
    print(format_report(result), file=sys.stderr)
    manifest = result.manifest
    report: dict[str, Any] = {
        "data": str(data),
        "protocol": manifest.split.test,
        "promotion_holdout": manifest.split.promotion_holdout.model_dump(),
        "strategy": manifest.imbalance_strategy.chosen,
        "decision_rule": manifest.decision_rule.model_dump(),
        "precision_floor": manifest.precision_floor.model_dump(),
        "calibration": manifest.calibration.model_dump(),
        "training_seconds": round(wall, 1),
        "test_metrics": {k: round(v, 4) for k, v in result.test_metrics.items()},
        "figures": split_figures(manifest),
        "ada_comparison": manifest.ada_comparison.model_dump(),
        "candidates": {
            k: {m: round(v, 4) for m, v in s.items() if m.startswith("test_")}
            for k, s in manifest.imbalance_strategy.compared.items()
        },
        "subgroups": result.subgroups.round(4).to_dict(orient="records"),
        "screening": manifest.screening.model_dump(mode="json"),
        "screening_subgroups": result.screening_subgroups.round(4).to_dict(orient="records"),
    }
    if args.repeat_seeds:
        report["other_splits"] = other_splits(data, args.repeat_seeds, reference)
    print(json.dumps(report, indent=2))
    verdicts = report.get("other_splits", {}).get("no_regression", {})
    return 0 if all(verdicts[name]["met"] for name in NO_REGRESSION if name in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
