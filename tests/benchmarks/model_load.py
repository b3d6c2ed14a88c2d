"""What checking model.txt before LightGBM parses it (`ml.inference.model_text`) costs when a model loads.

Loads the artifact with `Predictor.load` (read, sha256 of every file, manifest, the check, LightGBM's parse, the
single-row scorer) with the check and with the bare ASCII decode LightGBM needs anyway, alternating, and times the
check alone. Medians over `--rounds`. Target: the check adds at most a tenth of the service's 3 s readiness budget.

Not collected by pytest. Usage (the real model: train it first, see docs/imbalance.md):

    uv run python -m tests.benchmarks.model_load --model artifacts/model [--rounds 15] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import ml.inference.artifact as artifact
from ml.inference.artifact import MODEL_FILE
from ml.inference.model_text import check_model_text
from ml.inference.predictor import Predictor
from ml.schema import FEATURE_NAMES, N_CLASSES
from tests.benchmarks.reporting import report

#: A tenth of the service's readiness budget (ready <= 3 s).
CHECK_BUDGET_SECONDS = 0.3


def _seconds(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts/model"))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    raw = (args.model / MODEL_FILE).read_bytes()
    checked, unchecked, alone = [], [], []
    for _ in range(args.rounds):
        artifact.check_model_text = check_model_text
        checked.append(_seconds(lambda: Predictor.load(args.model)))
        artifact.check_model_text = lambda raw, *_: raw.decode("ascii")  # type: ignore[assignment]
        unchecked.append(_seconds(lambda: Predictor.load(args.model)))
        alone.append(_seconds(lambda: check_model_text(raw, len(FEATURE_NAMES), N_CLASSES)))
    artifact.check_model_text = check_model_text
    median_ms = {
        name: round(statistics.median(times) * 1000, 1)
        for name, times in (("load_checked_ms", checked), ("load_unchecked_ms", unchecked), ("check_alone_ms", alone))
    }
    results = {
        "model": str(args.model),
        "model_txt_bytes": len(raw),
        "trees": raw.count(b"\nTree="),
        "rounds": args.rounds,
        "load_average_1min": round(os.getloadavg()[0], 2),
        **median_ms,
    }
    checks = {
        f"check <= {CHECK_BUDGET_SECONDS * 1000:.0f} ms": median_ms["check_alone_ms"] <= CHECK_BUDGET_SECONDS * 1000
    }
    return report(results, checks, args.output)


if __name__ == "__main__":
    raise SystemExit(main())
