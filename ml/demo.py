"""`python -m ml.demo`: get a model ready for `make demo`, learnt from the real survey file whenever possible.

1. The real file: already in the data folder, or downloaded (Kaggle, or `--url`); a failed download is said in one
   line and never hides the rest.
2. Without it, synthetic data, said loudly: the demo then runs a model that knows nothing about real people.
3. The model is (re)trained when there is none, or when the one there learnt from other data (for example a
   synthetic model once the real file has arrived), then logged to MLflow with MLflow's own chatter kept quiet.

The last thing printed is a banner saying which data the served model learnt from.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ml.inference.artifact import DEFAULT_MODEL_DIR, MANIFEST_FILE, ArtifactError, parse_manifest
from ml.inference.digest import file_sha256
from ml.manifest import Manifest
from ml.training.real_data import DEFAULT_OUTPUT_DIR, DownloadError, existing_file, fetch_from_kaggle, fetch_from_url

SYNTHETIC_FILE = "synthetic.csv.gz"
SYNTHETIC_ROWS = 20_000
BANNER_WIDTH = 78


@dataclass(frozen=True)
class DemoModel:
    """What `make demo` will serve, and why."""

    manifest: Manifest
    trained: bool
    download_problem: str | None


def _current_manifest(model_dir: Path) -> Manifest | None:
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return parse_manifest(path.read_bytes(), str(model_dir))
    except ArtifactError:  # an old or broken artifact is replaced, not served
        return None


def _real_data(data_dir: Path, url: str | None, *, download: bool) -> tuple[Path | None, str | None]:
    """The real file, and the reason it could not be had (one line) when it is missing."""
    present = existing_file(data_dir)
    if present is not None or not download:
        return present, None if present is not None else "downloads are off (--no-download)"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return (fetch_from_url(url, data_dir) if url else fetch_from_kaggle(data_dir)), None
    except DownloadError as exc:
        return None, str(exc).splitlines()[0]


def _train_quietly(data: Path, model_dir: Path, *, mlflow: bool) -> Manifest:
    """Train, then log to MLflow; MLflow's warnings, progress bars and registry messages are captured, not shown."""
    from ml.training.pipeline import train

    result = train(data, model_dir)
    if mlflow:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        captured = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            logging.getLogger("mlflow").setLevel(logging.ERROR)
            from ml.training.tracking import log_training_run

            try:
                log_training_run(result)
            except Exception:
                sys.stderr.write(captured.getvalue())  # the details matter once something failed
                raise
    return result.manifest


def prepare(
    data_dir: Path, model_dir: Path, *, url: str | None = None, download: bool = True, mlflow: bool = True
) -> DemoModel:
    """Make sure `model_dir` holds a model learnt from the best data there is; train only when needed."""
    real, problem = _real_data(data_dir, url, download=download)
    if real is not None:
        data = real
    else:
        data = data_dir / SYNTHETIC_FILE
        if not data.is_file():
            from ml.training.synthetic_data import write_synthetic

            write_synthetic(data, SYNTHETIC_ROWS, seed=0)
    current = _current_manifest(model_dir)
    if current is not None and current.data.sha256 == file_sha256(data):
        return DemoModel(current, trained=False, download_problem=problem)
    print(
        f"training the demo model on {data}: minutes on two cores for the real file (about 3.5 minutes measured on "
        "a busy machine), seconds for synthetic data...",
        flush=True,
    )
    manifest = _train_quietly(data, model_dir, mlflow=mlflow)
    print(f"trained in {manifest.training.seconds:.0f} s", flush=True)
    return DemoModel(manifest, trained=True, download_problem=problem)


def banner(model: DemoModel) -> str:
    """A framed block: which data the model learnt from and, for synthetic data, how to get the real file."""
    manifest = model.manifest
    if manifest.data.synthetic:
        lines = [
            "SYNTHETIC DATA: the demo model learnt from made-up rows.",
            "Its answers are examples and say nothing about anyone's health.",
        ]
        if model.download_problem:
            lines.append(f"The real file could not be downloaded: {model.download_problem}")
        lines.append("Get it with 'make data' (or put it in data/), then run 'make demo' again.")
    else:
        lines = [
            f"Real data: {manifest.data.file}, {manifest.data.rows:,} rows.",
            f"Model {manifest.model_version} ({'trained now' if model.trained else 'already trained'}).",
        ]
    inner = BANNER_WIDTH - 4
    wrapped = [piece for line in lines for piece in textwrap.wrap(line, inner) or [""]]
    frame = "#" * BANNER_WIDTH
    return "\n".join([frame, *(f"# {text:<{inner}} #" for text in wrapped), frame])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml.demo",
        description="Prepare the model `make demo` serves: the real file when it can be had, else synthetic data.",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="where data files live (data/)")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="where the model is written")
    parser.add_argument("--url", help="download the real file from this mirror instead of Kaggle")
    parser.add_argument("--no-download", action="store_true", help="never try to download the real file")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the training run to MLflow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        model = prepare(
            args.data_dir, args.model_dir, url=args.url, download=not args.no_download, mlflow=not args.no_mlflow
        )
    except (ArtifactError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(banner(model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
