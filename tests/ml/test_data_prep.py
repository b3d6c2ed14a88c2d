"""ml.data: reading, validation (one test per kind of bad input), duplicates and the grouped split."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.inference.digest import file_sha256
from ml.schema import BINARY_TARGET, COLUMNS, FEATURE_NAMES, REAL_DATA_FILE, TARGET, feature
from ml.training.data import (
    DataValidationError,
    duplicate_report,
    feature_groups,
    features_matrix,
    grouped_split,
    is_synthetic,
    read_data_file,
    validate_frame,
)
from ml.training.synthetic_data import write_synthetic


def write_text_frame(path: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV text exactly as given (strings are written verbatim)."""
    frame.to_csv(path, index=False)
    return path


def text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the Kaggle file writes it: every value a float string such as '1.0'."""
    return frame.astype(np.float64).astype(str)


def problem(err: DataValidationError, column: str, reason_start: str):
    found = [p for p in err.problems if p.column == column and p.reason.startswith(reason_start)]
    assert len(found) == 1, f"expected one {reason_start!r} problem in {column}, got {err.problems}"
    return found[0]


# ------------------------------------------------------------------------------------------- good input


def test_reads_synthetic_gz_with_float_values(synthetic_csv: Path):
    with gzip.open(synthetic_csv, "rt") as handle:
        handle.readline()
        assert ".0," in handle.readline()  # the file writes values like 1.0, as the Kaggle file does
    df = read_data_file(synthetic_csv)
    assert list(df.columns) == list(COLUMNS)
    assert df["BMI"].dtype == np.float64
    assert all(df[c].dtype == np.int64 for c in COLUMNS if c != "BMI")
    assert df.index.equals(pd.RangeIndex(len(df)))
    assert len(df) == 6_000


def test_plain_csv_with_integer_text_and_any_column_order(tmp_path: Path, synthetic_frame: pd.DataFrame):
    shuffled = synthetic_frame[list(reversed(COLUMNS))]
    df = read_data_file(write_text_frame(tmp_path / "d.csv", shuffled))
    assert list(df.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(df, synthetic_frame, check_dtype=True)


def test_bmi_may_be_fractional(tmp_path: Path, synthetic_frame: pd.DataFrame):
    frame = text_frame(synthetic_frame.head(5))
    frame.loc[2, "BMI"] = "27.5"
    df = read_data_file(write_text_frame(tmp_path / "d.csv", frame))
    assert df.loc[2, "BMI"] == 27.5


def test_target_optional_and_ignored(tmp_path: Path, synthetic_frame: pd.DataFrame):
    features_only = write_text_frame(tmp_path / "f.csv", synthetic_frame[list(FEATURE_NAMES)].head(20))
    assert list(read_data_file(features_only, target="optional").columns) == list(FEATURE_NAMES)
    assert list(read_data_file(features_only, target="ignore").columns) == list(FEATURE_NAMES)
    with_target = write_text_frame(tmp_path / "t.csv", synthetic_frame.head(20))
    assert list(read_data_file(with_target, target="optional").columns) == list(COLUMNS)
    assert list(read_data_file(with_target, target="ignore").columns) == list(FEATURE_NAMES)


def test_ignored_target_is_not_validated(tmp_path: Path, synthetic_frame: pd.DataFrame):
    frame = text_frame(synthetic_frame.head(5))
    frame.loc[0, TARGET] = "7.0"
    df = read_data_file(write_text_frame(tmp_path / "t.csv", frame), target="ignore")
    assert TARGET not in df.columns
    with pytest.raises(DataValidationError):
        read_data_file(tmp_path / "t.csv", target="optional")


def test_validate_frame_accepts_numbers_and_strings(synthetic_frame: pd.DataFrame):
    head = synthetic_frame.head(50)
    pd.testing.assert_frame_equal(validate_frame(head), head.reset_index(drop=True))
    pd.testing.assert_frame_equal(validate_frame(text_frame(head)), head.reset_index(drop=True))
    shifted = head.set_axis(range(100, 150))
    assert validate_frame(shifted).index.equals(pd.RangeIndex(50))


# -------------------------------------------------------------------------------------------- bad input


def test_missing_column_is_named_with_expected_header(tmp_path: Path, synthetic_frame: pd.DataFrame):
    path = write_text_frame(tmp_path / "d.csv", synthetic_frame.drop(columns=["Age"]).head(5))
    with pytest.raises(DataValidationError) as info:
        read_data_file(path)
    assert problem(info.value, "Age", "missing column")
    assert "Age: missing column" in str(info.value)
    assert ",".join(COLUMNS) in str(info.value)


def test_missing_target_when_required(tmp_path: Path, synthetic_frame: pd.DataFrame):
    path = write_text_frame(tmp_path / "d.csv", synthetic_frame[list(FEATURE_NAMES)].head(5))
    with pytest.raises(DataValidationError) as info:
        read_data_file(path)
    assert problem(info.value, TARGET, "missing column")


def test_extra_column_is_named(tmp_path: Path, synthetic_frame: pd.DataFrame):
    path = write_text_frame(tmp_path / "d.csv", synthetic_frame.head(5).assign(Weight=70))
    with pytest.raises(DataValidationError) as info:
        read_data_file(path)
    assert problem(info.value, "Weight", "unexpected column")
    assert "Weight: unexpected column" in str(info.value)


def test_duplicate_column_is_refused(tmp_path: Path, synthetic_frame: pd.DataFrame):
    path = tmp_path / "d.csv"
    lines = write_text_frame(path, synthetic_frame.head(3)).read_text().splitlines()
    path.write_text("\n".join(f"{line},{line.split(',')[1]}" for line in lines) + "\n")
    with pytest.raises(DataValidationError) as info:
        read_data_file(path)
    assert problem(info.value, "HighBP", "duplicate column")


def test_non_numeric_value(tmp_path: Path, synthetic_frame: pd.DataFrame):
    frame = text_frame(synthetic_frame.head(20))
    frame.loc[3, "BMI"] = "heavy"
    frame.loc[7, "BMI"] = "NA"
    with pytest.raises(DataValidationError) as info:
        read_data_file(write_text_frame(tmp_path / "d.csv", frame))
    found = problem(info.value, "BMI", "not a number")
    assert (found.rows, found.values, found.count) == ((4, 8), ("heavy", "NA"), 2)
    assert "row 4 = 'heavy'" in str(info.value)


def test_non_integer_value(tmp_path: Path, synthetic_frame: pd.DataFrame):
    frame = text_frame(synthetic_frame.head(20))
    frame.loc[0, "Age"] = "3.5"
    with pytest.raises(DataValidationError) as info:
        read_data_file(write_text_frame(tmp_path / "d.csv", frame))
    found = problem(info.value, "Age", "not a whole number")
    assert (found.rows, found.values, found.count) == ((1,), ("3.5",), 1)
    assert len(info.value.problems) == 1


def test_out_of_range_value_names_allowed_range(tmp_path: Path, synthetic_frame: pd.DataFrame):
    frame = text_frame(synthetic_frame.head(20))
    frame.loc[5, "Age"] = "14.0"
    frame.loc[6, "Age"] = "0"
    frame.loc[9, TARGET] = "3.0"
    with pytest.raises(DataValidationError) as info:
        read_data_file(write_text_frame(tmp_path / "d.csv", frame))
    age = problem(info.value, "Age", "out of range")
    assert age.reason == f"out of range: allowed {feature('Age').allowed_values()}"
    assert "whole numbers from 1 to 13: 1 = 18-24" in age.reason
    assert (age.rows, age.values) == ((6, 7), ("14.0", "0"))
    assert "0 = healthy, 1 = prediabetic, 2 = diabetic" in problem(info.value, TARGET, "out of range").reason


def test_missing_value_and_short_row(tmp_path: Path, synthetic_frame: pd.DataFrame):
    frame = text_frame(synthetic_frame.head(4))
    frame.loc[1, "HighBP"] = ""
    path = write_text_frame(tmp_path / "d.csv", frame)
    with path.open("a") as handle:
        handle.write("0.0,1.0\n")  # a truncated fifth row
    with pytest.raises(DataValidationError) as info:
        read_data_file(path)
    assert problem(info.value, "HighBP", "missing value").rows == (2,)
    assert problem(info.value, "Income", "missing value").rows == (5,)


def test_row_with_too_many_fields(tmp_path: Path, synthetic_frame: pd.DataFrame):
    path = write_text_frame(tmp_path / "d.csv", text_frame(synthetic_frame.head(3)))
    with path.open("a") as handle:
        handle.write(",".join(["1.0"] * (len(COLUMNS) + 2)) + "\n")
    with pytest.raises(DataValidationError, match="cannot be parsed as CSV"):
        read_data_file(path)


@pytest.mark.parametrize("name", ["empty.csv", "empty.csv.gz"])
def test_empty_file(tmp_path: Path, name: str):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wb"):
            pass
    else:
        path.write_bytes(b"")
    with pytest.raises(DataValidationError, match="is empty") as info:
        read_data_file(path)
    assert ",".join(COLUMNS) in str(info.value)


def test_header_without_rows(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(DataValidationError, match="no data rows"):
        read_data_file(path)


def test_missing_file_says_how_to_get_it(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"ml\.download"):
        read_data_file(tmp_path / "absent.csv")


def test_binary_file_is_refused_with_pointer_to_3_class_file(tmp_path: Path, synthetic_frame: pd.DataFrame):
    binary = synthetic_frame.rename(columns={TARGET: BINARY_TARGET}).head(10)
    binary[BINARY_TARGET] = (binary[BINARY_TARGET] == 2).astype(int)
    path = write_text_frame(tmp_path / "binary.csv", binary)
    for mode in ("required", "optional", "ignore"):
        with pytest.raises(DataValidationError) as info:
            read_data_file(path, target=mode)  # type: ignore[arg-type]
        message = str(info.value)
        assert REAL_DATA_FILE in message
        assert "python -m ml.download" in message


def test_many_errors_show_first_ten_rows_and_total(tmp_path: Path, synthetic_frame: pd.DataFrame):
    frame = text_frame(synthetic_frame.head(300))
    bad_rows = list(range(5, 300, 7))  # 0-based positions
    frame.loc[bad_rows, "GenHlth"] = "9.0"
    frame.loc[[0, 299], "Income"] = "x"
    with pytest.raises(DataValidationError) as info:
        read_data_file(write_text_frame(tmp_path / "d.csv", frame))
    genhlth = problem(info.value, "GenHlth", "out of range")
    assert genhlth.count == len(bad_rows)
    assert genhlth.rows == tuple(r + 1 for r in bad_rows[:10])
    assert genhlth.values == ("9.0",) * 10
    assert problem(info.value, "Income", "not a number").rows == (1, 300)
    message = str(info.value)
    assert f"first 10 of {len(bad_rows)}" in message
    assert "How to fix" in message
    assert len(info.value.problems) == 2


def test_validate_frame_reports_like_read_csv(synthetic_frame: pd.DataFrame):
    frame = synthetic_frame.head(10).astype({"Age": np.float64, "HighBP": object})
    frame.loc[2, "Age"] = np.nan
    frame.loc[4, "HighBP"] = "yes"
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame)
    assert problem(info.value, "Age", "missing value").rows == (3,)
    assert problem(info.value, "HighBP", "not a number").values == ("yes",)


# ----------------------------------------------------------------------------------- matrix, hash, flags


def test_features_matrix(synthetic_frame: pd.DataFrame):
    matrix = features_matrix(synthetic_frame)
    assert matrix.shape == (len(synthetic_frame), len(FEATURE_NAMES))
    assert matrix.dtype == np.float64
    assert matrix.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(matrix[:, FEATURE_NAMES.index("Age")], synthetic_frame["Age"])
    with pytest.raises(KeyError, match="Age"):
        features_matrix(synthetic_frame.drop(columns=["Age"]))


def test_file_sha256(tmp_path: Path):
    path = tmp_path / "x.bin"
    payload = b"abc" * 1_000_000
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()


def test_is_synthetic(tmp_path: Path, synthetic_frame: pd.DataFrame):
    written = write_synthetic(tmp_path / "s.csv", 50, seed=1)
    assert is_synthetic(written)
    plain = write_text_frame(tmp_path / "p.csv", synthetic_frame.head(5))
    assert not is_synthetic(plain)
    # A sidecar that does not match the file's content (file replaced later) does not count.
    sidecar = Path(f"{written}.synthetic.json")
    meta = json.loads(sidecar.read_text())
    written.write_text(written.read_text() + ",".join(["0.0"] * len(COLUMNS)) + "\n")
    assert meta["sha256"] != file_sha256(written)
    assert not is_synthetic(written)


# ---------------------------------------------------------------------------------------------- duplicates


def crafted_duplicates() -> pd.DataFrame:
    base = dict.fromkeys(FEATURE_NAMES, 0) | {
        "BMI": 25.0,
        "GenHlth": 2,
        "Age": 5,
        "Education": 4,
        "Income": 5,
    }
    rows = [
        base | {TARGET: 0},  # group A, first
        base | {TARGET: 0},  # exact duplicate of row 0
        base | {TARGET: 2},  # same features, other label: feature duplicate, A conflicts
        base | {"Age": 6, TARGET: 0},  # group B
        base | {"Age": 6, TARGET: 0},  # exact duplicate of row 3
        base | {"Age": 7, TARGET: 1},  # group C, unique
    ]
    return pd.DataFrame(rows)[list(COLUMNS)]


def test_duplicate_report_counts():
    report = duplicate_report(crafted_duplicates())
    assert report.to_dict() == {
        "rows": 6,
        "exact_duplicate_rows": 2,
        "feature_duplicate_rows": 3,
        "conflicting_label_groups": 1,
    }


def test_duplicate_report_without_target():
    report = duplicate_report(crafted_duplicates().drop(columns=[TARGET]))
    assert (report.feature_duplicate_rows, report.conflicting_label_groups) == (3, 0)


def test_feature_groups_share_ids_for_identical_vectors():
    groups = feature_groups(crafted_duplicates())
    assert groups.dtype == np.int64
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == groups[4]
    assert len({groups[0], groups[3], groups[5]}) == 3


# ------------------------------------------------------------------------------------------------- split


def test_split_keeps_feature_vectors_on_one_side(synthetic_csv: Path):
    df = read_data_file(synthetic_csv)
    split = grouped_split(df, test_fraction=0.2, seed=0)
    assert duplicate_report(df).feature_duplicate_rows > 100  # the check below is meaningful
    groups = feature_groups(df)
    assert not set(groups[split.train]) & set(groups[split.test])
    assert np.array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(len(df)))
    assert np.all(np.diff(split.train) > 0)
    assert np.all(np.diff(split.test) > 0)


def test_split_is_stratified(synthetic_csv: Path):
    df = read_data_file(synthetic_csv)
    split = grouped_split(df, test_fraction=0.25, seed=3)
    overall = df[TARGET].value_counts(normalize=True)
    test = df[TARGET].iloc[split.test].value_counts(normalize=True)
    for label, share in overall.items():
        assert abs(test[label] - share) < 0.01
    assert abs(len(split.test) / len(df) - 0.25) < 0.005


def test_split_is_deterministic_and_protocol_complete(synthetic_csv: Path):
    df = read_data_file(synthetic_csv)
    first = grouped_split(df, test_fraction=0.2, seed=5)
    again = grouped_split(df, test_fraction=0.2, seed=5)
    other = grouped_split(df, test_fraction=0.2, seed=6)
    assert np.array_equal(first.test, again.test)
    assert first.protocol == again.protocol
    assert not np.array_equal(first.test, other.test)
    assert first.protocol["split_id"] != other.protocol["split_id"]
    protocol = json.loads(json.dumps(first.protocol))
    assert protocol["n_rows"] == len(df)
    assert protocol["n_groups"] == len(np.unique(feature_groups(df)))
    assert (protocol["seed"], protocol["test_fraction"]) == (5, 0.2)
    assert protocol["train"]["rows"] + protocol["test"]["rows"] == len(df)
    assert sum(protocol["test"]["classes"].values()) == len(first.test)
    assert set(protocol["train"]["classes"]) == {"0", "1", "2"}


def test_split_of_the_train_part_with_custom_strata(synthetic_csv: Path):
    df = read_data_file(synthetic_csv)
    outer = grouped_split(df, test_fraction=0.2, seed=0)
    train = df.iloc[outer.train].reset_index(drop=True)
    strata = (train["Sex"].to_numpy() * 3) + train[TARGET].to_numpy()
    inner = grouped_split(train, test_fraction=0.2, seed=1, stratify_on=strata)
    assert len(inner.train) + len(inner.test) == len(train)
    assert len(inner.protocol["test"]["classes"]) == 6
    groups = feature_groups(train)
    assert not set(groups[inner.train]) & set(groups[inner.test])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(synthetic_frame: pd.DataFrame, fraction: float):
    with pytest.raises(ValueError, match="test_fraction"):
        grouped_split(synthetic_frame, test_fraction=fraction, seed=0)


def test_split_rejects_misaligned_strata(synthetic_frame: pd.DataFrame):
    with pytest.raises(ValueError, match="stratify_on"):
        grouped_split(synthetic_frame, test_fraction=0.2, seed=0, stratify_on=np.zeros(3))


@pytest.mark.parametrize("edit", ["trailing comma", "unnamed first column"])
def test_rows_longer_than_header_are_refused(tmp_path: Path, synthetic_frame: pd.DataFrame, edit: str):
    header, *rows = text_frame(synthetic_frame.head(5)).to_csv(index=False).splitlines()
    if edit == "trailing comma":
        rows = [f"{row}," for row in rows]
    else:
        rows = [f"{i},{row}" for i, row in enumerate(rows)]
    path = tmp_path / "d.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    named = len(synthetic_frame.columns)
    expected = f"first data row has {named + 1} values but the header names {named}"
    with pytest.raises(DataValidationError, match=expected):
        read_data_file(path)


def test_header_names_may_be_padded(tmp_path: Path, synthetic_frame: pd.DataFrame):
    header, *rows = text_frame(synthetic_frame.head(5)).to_csv(index=False).splitlines()
    path = tmp_path / "d.csv"
    path.write_text("\n".join([", ".join(header.split(",")), *rows]) + "\n")
    pd.testing.assert_frame_equal(read_data_file(path), synthetic_frame.head(5))
    frame = text_frame(synthetic_frame.head(5))
    frame.loc[1, "Sex"] = "male"
    padded = frame.rename(columns=lambda name: f" {name}")
    with pytest.raises(DataValidationError) as info:
        read_data_file(write_text_frame(tmp_path / "e.csv", padded))
    assert problem(info.value, "Sex", "not a number").values == ("male",)


def test_trailing_empty_lines_are_ignored_but_inner_ones_reported(tmp_path: Path, synthetic_frame: pd.DataFrame):
    header, *rows = text_frame(synthetic_frame.head(4)).to_csv(index=False).splitlines()
    path = tmp_path / "d.csv"
    path.write_text("\n".join([header, *rows]) + "\n\n\n")
    pd.testing.assert_frame_equal(read_data_file(path), synthetic_frame.head(4))
    path.write_text("\n".join([header, rows[0], "", *rows[1:]]) + "\n")
    with pytest.raises(DataValidationError) as info:
        read_data_file(path)
    assert problem(info.value, "HighBP", "missing value").rows == (2,)
