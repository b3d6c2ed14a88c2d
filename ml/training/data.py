"""Load the BRFSS 2015 3-class file, validate every row against `ml.schema`, count duplicates and split.

Validation is all-or-nothing: a bad file raises one :class:`DataValidationError` listing every problem per
column (reason, first rows with their values as written, total count), so a user fixes the file in one pass.
Nothing is dropped or coerced silently. Splits keep identical feature vectors on one side, because the file
holds ~26k repeated answers that would otherwise leak from train to test.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ml.inference.digest import file_sha256
from ml.schema import BINARY_TARGET, CLASSES, COLUMNS, FEATURE_NAMES, FEATURES, REAL_DATA_FILE, TARGET

TargetMode = Literal["required", "optional", "ignore"]
#: What to do with columns that are not the schema's: refuse the file, or keep them verbatim (an id, a note).
OtherColumns = Literal["refuse", "keep"]

#: How many offending rows each problem quotes.
MAX_ROWS_SHOWN = 10
SYNTHETIC_SUFFIX = ".synthetic.json"
_CLASS_IDS = tuple(c.id for c in CLASSES)
_FIX_HINT = (
    "How to fix: correct or remove the rows listed (every cell must be a number within the allowed range; "
    "whole numbers for every column but BMI; codes are described in ml/schema.py), then run again. "
)


@dataclass(frozen=True)
class ColumnProblem:
    """One kind of problem in one column, with the first offending rows (1-based data rows)."""

    column: str
    reason: str
    rows: tuple[int, ...]
    values: tuple[str, ...]
    count: int

    def describe(self) -> str:
        if not self.rows:
            return f"  {self.column}: {self.reason}"
        shown = ", ".join(f"row {r:,} = {v!r}" for r, v in zip(self.rows, self.values, strict=True))
        more = f" (first {len(self.rows)} of {self.count:,})" if self.count > len(self.rows) else ""
        noun = "row" if self.count == 1 else "rows"
        return f"  {self.column}: {self.reason}; {self.count:,} {noun}: {shown}{more}"


class DataValidationError(ValueError):
    """The data does not match `ml.schema`; `str(err)` is the complete message for a person."""

    def __init__(self, message: str, problems: Sequence[ColumnProblem] = ()) -> None:
        super().__init__(message)
        self.problems: list[ColumnProblem] = list(problems)


# ----------------------------------------------------------------------------------------------- reading


def read_data_file(
    path: str | Path, *, target: TargetMode = "required", others: OtherColumns = "refuse"
) -> pd.DataFrame:
    """Read and validate a `.csv` or `.csv.gz` file with the Kaggle 3-class columns (any column order).

    Returns the target (unless absent or `target="ignore"`) then the features in schema order; integer
    columns as int64, BMI as float64, index 0..n-1 in file order. With `others="keep"`, every column of the file
    is returned in the file's order, the others as the text written in the file (an ignored target is one of them).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"data file not found: {source}. Get the real file with `python -m ml.download` "
            f"(it writes data/{REAL_DATA_FILE}) or make a synthetic one with `python -m ml.synthetic`."
        )
    header = read_header(path)
    keep_target = check_columns(header, target, source, others)
    wanted = [TARGET, *FEATURE_NAMES] if keep_target else list(FEATURE_NAMES)
    kept = [c for c in header if c not in wanted] if others == "keep" else []
    try:
        # All columns (the header was checked): with usecols pandas would silently drop surplus fields.
        raw = pd.read_csv(
            path,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            encoding="utf-8-sig",
            low_memory=False,
        )
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as err:
        raise DataValidationError(
            f"{source} cannot be parsed as CSV ({' '.join(str(err).split())}; line 1 is the header). "
            f"Every line must hold {len(header)} comma-separated values, like the header."
        ) from None
    raw = raw.rename(columns=str.strip)[wanted]
    # Empty lines at the very end carry no data (editors add them); empty lines inside are reported.
    filled = np.flatnonzero(raw.notna().any(axis=1).to_numpy())
    raw = raw.iloc[: filled[-1] + 1 if filled.size else 0]
    if raw.empty:
        raise DataValidationError(
            f"{source} has a header but no data rows; it needs at least one row of values under the header."
        )
    try:
        validated = _validated(raw, keep_target, source)
    except DataValidationError as err:
        # Quote the offending values exactly as written: re-read only the columns with problems as text.
        hit = {p.column for p in err.problems}
        columns = [c for c in COLUMNS if c in hit]
        text = pd.read_csv(
            path,
            usecols=lambda name: name.strip() in hit,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
        _validated(text.rename(columns=str.strip).iloc[: len(raw)], keep_target, source, columns=columns)
        raise  # the text pass normally raises first, quoting the values as written
    if not kept:
        return validated
    verbatim = pd.read_csv(
        path,
        usecols=lambda name: name.strip() in kept,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
        encoding="utf-8-sig",
    )
    verbatim = verbatim.rename(columns=str.strip)[kept].iloc[: len(validated)].reset_index(drop=True)
    return pd.concat([validated, verbatim], axis=1)[[c for c in header if c in wanted or c in kept]]


def validate_frame(df: pd.DataFrame, *, target: TargetMode = "required") -> pd.DataFrame:
    """Validate a frame (numbers or raw strings) exactly as :func:`read_data_file` validates a file."""
    source = "the data frame"
    keep_target = check_columns([str(c) for c in df.columns], target, source)
    if df.empty:
        raise DataValidationError(f"{source} has no rows; it needs at least one row of values.")
    return _validated(df.reset_index(drop=True), keep_target, source, first_row="row 1 is the frame's first row")


def _open_text(path: Path) -> io.TextIOWrapper:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_header(path: Path) -> list[str]:
    """The header's column names (stripped), once the first data row is known to be no longer than the header."""
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            first = next(reader, None)
            second = next(reader, None)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataValidationError(
            f"{path} cannot be read as a UTF-8 CSV file ({type(err).__name__}: {err}). "
            "Give a plain .csv or a gzip-compressed .csv.gz file."
        ) from None
    if first is None or not any(cell.strip() for cell in first):
        raise DataValidationError(
            f"{path} is empty: expected the header line {','.join(COLUMNS)} followed by data rows."
        )
    if second is not None and len(second) > len(first):
        # pandas would silently turn the surplus leading fields of such rows into an index.
        raise DataValidationError(
            f"{path}: the first data row has {len(second)} values but the header names {len(first)} "
            "columns; check for a missing header name or a trailing comma on every line."
        )
    return [cell.strip() for cell in first]


def check_columns(header: Sequence[str], target: TargetMode, source: str, others: OtherColumns = "refuse") -> bool:
    """Check the header against the schema; return whether the target column is kept (else DataValidationError)."""
    if BINARY_TARGET in header:
        raise DataValidationError(
            f"{source} is a binary Kaggle file (column {BINARY_TARGET!r}), where pre-diabetes is folded into "
            f"'no diabetes'. This model needs the 3-class file {REAL_DATA_FILE} with the column {TARGET!r}; "
            "get it with `python -m ml.download`.",
            [ColumnProblem(BINARY_TARGET, "binary target: use the 3-class file", (), (), 0)],
        )
    allowed = set(header) if others == "keep" else set(COLUMNS)
    required = list(COLUMNS) if target == "required" else list(FEATURE_NAMES)
    problems = [ColumnProblem(c, "missing column", (), (), 0) for c in required if c not in header]
    shown = {c: c or "(a column with no name)" for c in header}  # an empty name would be invisible
    problems += [ColumnProblem(shown[c], "unexpected column", (), (), 0) for c in shown if c not in allowed]
    problems += [ColumnProblem(shown[c], "duplicate column", (), (), 0) for c in shown if header.count(c) > 1]
    if problems:
        lines = "\n".join(p.describe() for p in problems)
        expected = ",".join(COLUMNS) if target == "required" else ",".join(FEATURE_NAMES)
        extra = f" (optionally preceded by {TARGET})" if target != "required" else ""
        raise DataValidationError(
            f"{source} does not have the expected columns:\n{lines}\nExpected header (any order){extra}:\n  {expected}",
            problems,
        )
    return target != "ignore" and TARGET in header


# --------------------------------------------------------------------------------------------- validation


def _rules() -> dict[str, tuple[float, float, bool, str]]:
    """Column -> (minimum, maximum, whole numbers only, the allowed values in words), from ml.schema."""
    rules = {f.name: (float(f.minimum), float(f.maximum), f.integer, f.allowed_values()) for f in FEATURES}
    classes = ", ".join(f"{c.id} = {c.name}" for c in CLASSES)
    rules[TARGET] = (float(min(_CLASS_IDS)), float(max(_CLASS_IDS)), True, f"whole numbers: {classes}")
    return rules


def _as_numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (float values, missing mask, not-a-number mask) without altering the input."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, np.isinf(values)
    text = column.astype("string")
    missing = (text.isna() | (text.str.strip() == "")).to_numpy(dtype=bool)
    values = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values, missing, ~missing & ~np.isfinite(values)


def _problem(column: str, reason: str, mask: np.ndarray, raw: pd.Series) -> ColumnProblem:
    where = np.flatnonzero(mask)
    shown = where[:MAX_ROWS_SHOWN]
    values = tuple("" if pd.isna(v) else str(v) for v in raw.iloc[shown])
    return ColumnProblem(column, reason, tuple(int(i) + 1 for i in shown), values, int(where.size))


def _validated(
    df: pd.DataFrame,
    keep_target: bool,
    source: str,
    *,
    columns: Iterable[str] | None = None,
    first_row: str = "row 1 is the first line after the header",
) -> pd.DataFrame:
    """Check every value; return the typed frame or raise one error listing every problem."""
    rules = _rules()
    names = list(columns) if columns is not None else ([TARGET] if keep_target else []) + list(FEATURE_NAMES)
    out: dict[str, np.ndarray] = {}
    problems: list[ColumnProblem] = []
    for name in names:
        low, high, whole, allowed = rules[name]
        values, missing, not_number = _as_numbers(df[name])
        finite = ~missing & ~not_number
        checks: list[tuple[str, np.ndarray]] = [("missing value", missing), ("not a number", not_number)]
        with np.errstate(invalid="ignore"):
            if whole:
                checks.append(("not a whole number", finite & (values != np.floor(values))))
            checks.append((f"out of range: allowed {allowed}", finite & ((values < low) | (values > high))))
        bad = [(reason, mask) for reason, mask in checks if mask.any()]
        problems += [_problem(name, reason, mask, df[name]) for reason, mask in bad]
        if not bad:
            out[name] = values.astype(np.int64) if whole else values
    if problems:
        scope = f"out of {len(df):,} data rows ({first_row})"
        raise DataValidationError(describe_problems(source, problems, scope), problems)
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


def describe_problems(source: str, problems: Sequence[ColumnProblem], scope: str, outcome: str = "loaded") -> str:
    """The message of a file with invalid values: every problem by column, then how to fix it.

    `scope` says which rows were checked and how they are numbered; `outcome` what did not happen.
    """
    columns_hit = len({p.column for p in problems})
    lines = "\n".join(p.describe() for p in problems)
    return (
        f"{source}: {len(problems)} problem(s) in {columns_hit} column(s) {scope}:\n{lines}\n{_FIX_HINT}"
        f"Nothing was {outcome}."
    )


# ---------------------------------------------------------------------------------------------- features


def features_matrix(df: pd.DataFrame) -> np.ndarray:
    """The features as a C-contiguous float64 (n, features) array in schema order."""
    missing = [c for c in FEATURE_NAMES if c not in df.columns]
    if missing:
        raise KeyError(f"frame lacks feature column(s) {', '.join(missing)}; validate it with ml.data first")
    return np.ascontiguousarray(df[list(FEATURE_NAMES)].to_numpy(dtype=np.float64))


def synthetic_sidecar(path: str | Path) -> Path:
    """Where `ml.synthetic` records that a data file is synthetic."""
    return Path(f"{path}{SYNTHETIC_SUFFIX}")


def is_synthetic(path: str | Path, sha256: str | None = None) -> bool:
    """Whether `path` was written by `ml.synthetic` (its sidecar exists and matches the file's hash).

    `sha256`: the file's hash when the caller already has it, so a large file is not read twice.
    """
    import json

    sidecar = synthetic_sidecar(path)
    if not sidecar.is_file() or not Path(path).is_file():
        return False
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("synthetic") is not True or meta.get("generator") != "ml.synthetic":
        return False
    recorded = meta.get("sha256")
    return recorded is None or recorded == (sha256 or file_sha256(path))


# -------------------------------------------------------------------------------------------- duplicates


@dataclass(frozen=True)
class DuplicateReport:
    """How many rows repeat an earlier row; both counts exclude the first occurrence."""

    rows: int
    exact_duplicate_rows: int
    feature_duplicate_rows: int
    conflicting_label_groups: int

    def to_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "exact_duplicate_rows": self.exact_duplicate_rows,
            "feature_duplicate_rows": self.feature_duplicate_rows,
            "conflicting_label_groups": self.conflicting_label_groups,
        }


def duplicate_report(df: pd.DataFrame) -> DuplicateReport:
    """Count exact duplicates (features and target), feature duplicates and groups with mixed labels."""
    features = list(FEATURE_NAMES)
    feature_dups = int(df.duplicated(subset=features).sum())
    if TARGET not in df.columns:
        return DuplicateReport(len(df), feature_dups, feature_dups, 0)
    exact = int(df.duplicated(subset=[*features, TARGET]).sum())
    labels_per_group = pd.Series(df[TARGET].to_numpy()).groupby(feature_groups(df)).nunique()
    return DuplicateReport(len(df), exact, feature_dups, int((labels_per_group > 1).sum()))


def feature_groups(df: pd.DataFrame) -> np.ndarray:
    """int64 group id per row; rows with identical feature vectors share an id (ids follow sorted vectors)."""
    features_matrix(df.iloc[:0])  # the same clear error when columns are missing
    ids = df.groupby(list(FEATURE_NAMES), sort=True, dropna=False).ngroup()
    return ids.to_numpy(dtype=np.int64)


# ------------------------------------------------------------------------------------------------- split


@dataclass(frozen=True)
class Split:
    """Sorted row positions of each side, and the protocol that produced them (JSON-ready)."""

    train: np.ndarray
    test: np.ndarray
    protocol: dict[str, Any]


def grouped_split(df: pd.DataFrame, *, test_fraction: float, seed: int, stratify_on: np.ndarray | None = None) -> Split:
    """Split rows so identical feature vectors stay together, stratified by each group's (max) label.

    Within each stratum the groups are shuffled with `seed` and the shortest prefix whose row count is
    closest to `test_fraction` of the stratum goes to test. Deterministic for a given frame and seed.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    n = len(df)
    labels = np.asarray(df[TARGET] if stratify_on is None else stratify_on)
    if labels.shape != (n,):
        raise ValueError(f"stratify_on must have one label per row ({n}), got shape {labels.shape}")
    groups = feature_groups(df)
    n_groups = int(groups.max()) + 1 if n else 0
    label_values, label_codes = np.unique(labels, return_inverse=True)
    group_code = np.full(n_groups, -1, dtype=np.int64)
    np.maximum.at(group_code, groups, label_codes.astype(np.int64))
    group_size = np.bincount(groups, minlength=n_groups)

    rng = np.random.default_rng(seed)
    in_test = np.zeros(n_groups, dtype=bool)
    for code in range(len(label_values)):
        members = np.flatnonzero(group_code == code)
        order = members[rng.permutation(members.size)]
        cumulative = np.cumsum(group_size[order])
        goal = test_fraction * cumulative[-1]
        k = int(np.searchsorted(cumulative, goal, side="left"))
        # Take k+1 groups, or k when that lands closer to the goal.
        take = k + 1 if k == 0 or abs(cumulative[k] - goal) <= abs(cumulative[k - 1] - goal) else k
        in_test[order[:take]] = True

    test_mask = in_test[groups]
    test = np.flatnonzero(test_mask)
    train = np.flatnonzero(~test_mask)
    if test.size == 0 or train.size == 0:
        raise ValueError(
            f"cannot split {n} rows in {n_groups} feature groups with test_fraction={test_fraction}: "
            "one side would be empty; use more data or another fraction"
        )
    digest = hashlib.sha256()
    digest.update(features_matrix(df).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    digest.update(test.astype(np.int64).tobytes())

    def side(rows: np.ndarray) -> dict[str, Any]:
        values, counts = np.unique(labels[rows], return_counts=True)
        return {
            "rows": int(rows.size),
            "groups": int(np.unique(groups[rows]).size),
            "classes": {
                str(v.item() if hasattr(v, "item") else v): int(c) for v, c in zip(values, counts, strict=True)
            },
        }

    protocol: dict[str, Any] = {
        "method": "grouped-stratified-shuffle",
        "groups": "identical feature vectors",
        "stratified_by": "max label within each group",
        "test_fraction": test_fraction,
        "realised_test_fraction": round(test.size / n, 6),
        "seed": seed,
        "n_rows": n,
        "n_groups": n_groups,
        "train": side(train),
        "test": side(test),
        "split_id": digest.hexdigest()[:16],
    }
    return Split(train=train, test=test, protocol=protocol)
