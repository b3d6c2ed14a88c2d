"""LightGBM's C API through ctypes: it answers as the Python package does, and serving never imports the package."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from packaging.requirements import Requirement

from ml.inference import lightgbm_capi
from ml.inference.artifact import MODEL_FILE
from ml.inference.lightgbm_capi import Booster, LightGBMError, SingleRowScorer
from ml.schema import FEATURE_NAMES, N_CLASSES
from ml.training.data import features_matrix
from ml.training.synthetic_data import make_synthetic

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture(scope="module")
def model_text(trained_model_dir: Path) -> str:
    return (trained_model_dir / MODEL_FILE).read_text()


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return features_matrix(make_synthetic(300, seed=8))


def test_installed_lightgbm_is_within_the_pinned_range() -> None:
    """The C calls were checked against this range; a release outside it must be checked again first."""
    import tomllib

    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [pin] = [Requirement(d) for d in dependencies if Requirement(d).name == "lightgbm"]
    assert pin.specifier.contains(metadata.version("lightgbm")), (
        f"lightgbm {metadata.version('lightgbm')} is outside the tested range {pin.specifier}: check "
        "ml/inference/lightgbm_capi.py against its C API, then widen the pin"
    )
    assert not pin.specifier.contains("99.0"), "the pin must have an upper bound"
    assert lightgbm_capi.version() == lgb.__version__


def test_raw_scores_and_contributions_equal_the_python_package(model_text: str, rows: np.ndarray) -> None:
    reference = lgb.Booster(model_str=model_text)
    booster = Booster(model_text)
    assert (booster.n_features, booster.n_classes) == (len(FEATURE_NAMES), N_CLASSES)
    assert booster.parameters == reference.params
    np.testing.assert_array_equal(booster.raw_scores(rows), reference.predict(rows, raw_score=True))
    np.testing.assert_array_equal(booster.raw_scores(rows, num_threads=2), reference.predict(rows, raw_score=True))
    np.testing.assert_array_equal(booster.contributions(rows[:20]), reference.predict(rows[:20], pred_contrib=True))


def test_single_rows_score_as_the_python_package_row_by_row(model_text: str, rows: np.ndarray) -> None:
    expected = lgb.Booster(model_str=model_text).predict(rows, raw_score=True)
    score = SingleRowScorer(Booster(model_text))
    actual = np.vstack([score(rows[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(score(rows[:2]), expected[:2], rtol=1e-12, atol=1e-12)  # two rows, each alone
    first = score(rows[:1])
    score(rows[1:2])
    np.testing.assert_array_equal(first, expected[:1])  # an answer is the caller's, not the reused buffer


def test_one_scorer_shared_by_threads_gives_each_call_its_rows_scores(model_text: str, rows: np.ndarray) -> None:
    """Review 20, M3: the service scores single predictions on the event loop and one-record batches in worker
    threads through the same scorer and its shared buffers (LightGBM's call releases the GIL): without its lock,
    6 threads got 1,822 wrong answers in 2,400."""
    score = SingleRowScorer(Booster(model_text))
    pairs = [rows[i : i + 2] for i in range(0, len(rows), 2)]
    expected = [score(pair) for pair in pairs]  # one thread

    def all_pairs(start: int) -> list[tuple[int, np.ndarray]]:
        order = [*range(start, len(pairs)), *range(start)]
        return [(i, score(pairs[i])) for i in order * 3]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [answer for answers in pool.map(all_pairs, range(0, 60, 10)) for answer in answers]
    wrong = sum(not np.array_equal(scores, expected[i]) for i, scores in results)
    assert wrong == 0, f"{wrong} of {len(results)} calls got another call's scores"


def test_rows_of_the_wrong_shape_are_refused(model_text: str) -> None:
    booster = Booster(model_text)
    width = len(FEATURE_NAMES)
    score = SingleRowScorer(booster)
    for bad in (np.zeros(width), np.zeros((1, width - 1)), np.zeros((2, width + 1))):
        with pytest.raises(ValueError, match=f"expected a 2-D array of rows of {width} values"):
            score(bad)
    with pytest.raises(ValueError, match=f"expected rows of {width} features"):
        booster.raw_scores(np.zeros((2, width - 1)))


def test_a_model_lightgbm_refuses_is_an_error_with_its_reason() -> None:
    with pytest.raises(LightGBMError, match="number of classes"):
        Booster("not a model\n")


def test_the_service_starts_without_lightgbms_python_package_scipy_or_narwhals() -> None:
    """`import lightgbm` imports scipy and narwhals (half a second of CPU before `/ready`): serving needs neither."""
    code = (
        "import sys, service.server, ml.inference.predictor; "
        "print(sorted(m for m in ('lightgbm', 'scipy', 'narwhals', 'pandas') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
