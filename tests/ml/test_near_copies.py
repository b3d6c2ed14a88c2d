"""The holdout's labels cannot reach training through near-copies of its rows (review 2 of issue 20, attack 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml import train as train_cli
from ml.schema import TARGET
from ml.training.data import features_matrix, read_data_file
from ml.training.holdout import in_holdout
from ml.training.near_copies import MAX_Z, check_near_copies
from ml.training.pipeline import TrainingConfig, split_folds
from tests.ml.datasets import with_near_copies


def test_an_honest_file_passes(synthetic_csv: Path) -> None:
    frame = read_data_file(synthetic_csv)
    x, y = features_matrix(frame), frame[TARGET].to_numpy()
    held = in_holdout(x)
    check = check_near_copies(x[held], y[held], x[~held], y[~held])
    assert check is not None
    assert abs(check.z) < MAX_Z / 2


def test_copies_with_bmi_nudged_land_in_the_holdout_not_in_training(synthetic_csv: Path, tmp_path: Path) -> None:
    """BMI + 1e-6 made another vector, hashed to the training side 90% of the time, with the holdout row's label."""
    frame = read_data_file(synthetic_csv)
    leaked = read_data_file(with_near_copies(synthetic_csv, tmp_path / "leak.csv", "BMI", 1e-6))
    folds = split_folds(leaked, TrainingConfig())
    assert len(folds.y_holdout) == 2 * int(in_holdout(features_matrix(frame)).sum())
    trained_on = np.concatenate([folds.x_fit, folds.x_val, folds.x_test])
    assert len(trained_on) == len(frame) - int(in_holdout(features_matrix(frame)).sum())


@pytest.mark.parametrize(("column", "change"), [("AnyHealthcare", 0.0), ("BMI", 1.0)])
def test_copies_with_one_answer_changed_are_refused_with_the_rows(
    synthetic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str, change: float
) -> None:
    leaked = with_near_copies(synthetic_csv, tmp_path / "leak.csv", column, change)
    code = train_cli.main(["--data", str(leaked), "--output", str(tmp_path / "model")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "near-copies of promotion-holdout rows" in err
    assert f"({column} differs)" in err
    assert "row 6," in err  # the copies follow the source's rows: they are named by their row in the file
    assert "Traceback" not in err
    assert not (tmp_path / "model").exists()
