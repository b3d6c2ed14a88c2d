"""ml.synthetic: schema-valid, realistic marginals, a monotone class dependence, duplicates, determinism."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.schema import COLUMNS, FEATURE_NAMES, TARGET
from ml.synthetic import main
from ml.training.data import duplicate_report, is_synthetic, read_data_file, validate_frame
from ml.training.synthetic_data import CLASS_SHARES, SPECS, make_synthetic, write_synthetic


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    return make_synthetic(30_000, seed=0)


def test_columns_dtypes_and_schema_validity(large: pd.DataFrame):
    assert list(large.columns) == list(COLUMNS)
    assert large["BMI"].dtype == np.float64
    assert all(large[c].dtype == np.int64 for c in COLUMNS if c != "BMI")
    pd.testing.assert_frame_equal(validate_frame(large), large)


def test_class_balance_matches_real_file(large: pd.DataFrame):
    shares = large[TARGET].value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(shares, CLASS_SHARES, atol=0.005)


@pytest.mark.parametrize(
    ("column", "expected", "tolerance"),
    [
        ("HighBP", 0.429, 0.02),
        ("HighChol", 0.424, 0.02),
        ("CholCheck", 0.963, 0.01),
        ("Stroke", 0.041, 0.01),
        ("HeartDiseaseorAttack", 0.094, 0.015),
        ("PhysActivity", 0.757, 0.02),
        ("AnyHealthcare", 0.951, 0.01),
        ("DiffWalk", 0.168, 0.02),
        ("Sex", 0.44, 0.02),
        ("BMI", 28.4, 1.0),
        ("GenHlth", 2.51, 0.1),
        ("Age", 8.03, 0.2),
        ("Education", 5.05, 0.1),
        ("Income", 6.05, 0.15),
        ("MentHlth", 3.19, 0.4),
        ("PhysHlth", 4.24, 0.5),
    ],
)
def test_marginals_are_close_to_the_real_file(large: pd.DataFrame, column: str, expected: float, tolerance: float):
    assert abs(large[column].mean() - expected) < tolerance


def test_bmi_shape(large: pd.DataFrame):
    assert large["BMI"].median() == pytest.approx(27, abs=1)
    assert 5 < large["BMI"].std() < 9
    assert (large["BMI"] % 1 == 0).all()  # whole numbers, as in the real file


@pytest.mark.parametrize("column", ["GenHlth", "HighBP", "HighChol", "Age", "DiffWalk", "HeartDiseaseorAttack"])
def test_diabetes_rate_rises_with_risk_factors(large: pd.DataFrame, column: str):
    rate = (large[TARGET] == 2).groupby(large[column]).mean()
    counts = large[column].value_counts()
    rate = rate[counts[rate.index] >= 300]  # ignore sparse codes, whose rates are noisy
    assert (rate.diff().dropna() > -0.01).all()  # non-decreasing up to sampling noise
    assert rate.iloc[-1] - rate.iloc[0] > 0.05


def test_diabetes_rate_falls_with_income(large: pd.DataFrame):
    rate = (large[TARGET] == 2).groupby(large["Income"]).mean()
    assert rate.loc[8] < rate.loc[1]


def test_has_feature_duplicates_some_with_conflicting_labels(large: pd.DataFrame):
    report = duplicate_report(large)
    assert 0.05 < report.feature_duplicate_rows / report.rows < 0.2
    assert 0 < report.exact_duplicate_rows < report.feature_duplicate_rows
    assert report.conflicting_label_groups > 0


def test_generator_has_one_spec_per_schema_feature_in_schema_order():
    assert tuple(SPECS) == FEATURE_NAMES


def test_same_seed_same_frame_other_seed_other_frame():
    pd.testing.assert_frame_equal(make_synthetic(500, seed=4), make_synthetic(500, seed=4))
    assert not make_synthetic(500, seed=4).equals(make_synthetic(500, seed=5))


def test_tiny_and_invalid_sizes():
    assert len(make_synthetic(1)) == 1
    with pytest.raises(ValueError, match="n_rows"):
        make_synthetic(0)


@pytest.mark.parametrize("name", ["s.csv", "s.csv.gz"])
def test_write_synthetic_floats_sidecar_and_round_trip(tmp_path: Path, name: str):
    path = write_synthetic(tmp_path / "sub" / name, 300, seed=2)
    assert path == tmp_path / "sub" / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as handle:  # type: ignore[operator]
        header, first = handle.readline().strip(), handle.readline().strip()
    assert header == ",".join(COLUMNS)
    assert all(value.endswith(".0") for value in first.split(","))
    meta = json.loads(Path(f"{path}.synthetic.json").read_text())
    assert meta | {"sha256": None} == {
        "synthetic": True,
        "generator": "ml.synthetic",
        "seed": 2,
        "rows": 300,
        "sha256": None,
    }
    assert is_synthetic(path)
    pd.testing.assert_frame_equal(read_data_file(path), make_synthetic(300, seed=2))
    assert sorted(p.name for p in path.parent.iterdir()) == [name, f"{name}.synthetic.json"]


def test_gz_output_is_byte_identical_for_the_same_seed(tmp_path: Path):
    first = write_synthetic(tmp_path / "a.csv.gz", 200, seed=9).read_bytes()
    second = write_synthetic(tmp_path / "b.csv.gz", 200, seed=9).read_bytes()
    assert first == second


def test_cli_writes_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    output = tmp_path / "cli.csv.gz"
    assert main(["--rows", "120", "--seed", "3", "--output", str(output)]) == 0
    assert "120" in capsys.readouterr().out
    assert len(read_data_file(output)) == 120
    assert is_synthetic(output)


def test_cli_help_documents_every_option(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--rows", "--seed", "--output"):
        assert option in text
    assert "default" in text


def test_cli_rejects_non_positive_rows(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        main(["--rows", "0"])
    assert info.value.code == 2
    assert "--rows must be at least 1" in capsys.readouterr().err
