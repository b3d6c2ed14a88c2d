"""The layer rules are import-linter contracts (pyproject.toml), kept by the unit tests rather than by the container
tests alone: the service and the UI use only the shared vocabulary and `ml.inference`, the service image carries no
training library, inference never imports training, the UI (and what it shares with the service) never imports
`ml.inference`, and no library code imports a command line."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ml", "service", "frontend", "stacks")
#: What the service and the UI may use of `ml` (their images ship nothing else of it).
SERVING_MODULES = {"schema", "manifest", "contract", "inference"}


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages under `root` (the project, or a scratch copy of it)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [
        str(Path(sys.executable).parent / "lint-imports"),
        "--config",
        str(root / "pyproject.toml"),
        "--no-cache",
    ]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_layer_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_of_ml_is_either_served_or_kept_from_the_service() -> None:
    """A new module under `ml` must be named in the first contract (or be part of what serving ships)."""
    kept_out = {str(name).removeprefix("ml.") for name in _contracts()[0]["forbidden_modules"]}  # type: ignore[attr-defined]
    modules = {module.name for module in pkgutil.iter_modules(ml.__path__)}
    assert modules - SERVING_MODULES - kept_out == set()
    assert modules >= SERVING_MODULES


@pytest.mark.parametrize(
    ("module", "line", "rule"),
    [
        ("service/leak.py", "from ml.training.data import read_data_file\n", "The service and the UI"),
        ("ml/inference/leak.py", "import ml.training.tuning\n", "Inference never imports training"),
        ("ml/training/leak.py", "from ml.predict import main\n", "Library code never imports a command-line"),
        ("service/heavy.py", "import pandas\n", "carries no training, UI or infrastructure library"),
        ("frontend/leak.py", "from ml.inference.predictor import Predictor\n", "The UI image ships no ml.inference"),
    ],
    ids=[
        "service-imports-training",
        "inference-imports-training",
        "training-imports-cli",
        "service-imports-pandas",
        "ui-imports-inference",
    ],
)
def test_a_broken_layer_rule_is_caught(tmp_path: Path, module: str, line: str, rule: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "_build"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / module).write_text(line, encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert rule in result.stdout.partition("Broken contracts")[2]
