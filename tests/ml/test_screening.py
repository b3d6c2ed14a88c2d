"""The screening rule and who it misses: thresholds chosen on the validation fold against the ADA test, the rows the
risk is computed on, the subgroup table with its bootstrap intervals, and what every trained model records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ml.inference.loader import load_artifact
from ml.inference.screening import in_care, levels, not_checked, with_in_care_copy
from ml.manifest import Manifest, ScreeningCutoffs, ScreeningLevel
from ml.schema import CARE_ACCESS, DEFAULT_RECORD, FEATURE_NAMES, SUBGROUP_BANDS
from ml.training.ada import ada_risk_points
from ml.training.pipeline import SCREENING_SUBGROUPS_CSV
from ml.training.screening import SAFETY_MARGIN, Scored, choose_cutoffs, with_margin
from ml.training.screening_subgroups import CARE_GROUPS, COVERAGE, screening_subgroups, who_is_missed

CHOL_CHECK = FEATURE_NAMES.index("CholCheck")


def _rows(n: int, **columns: np.ndarray) -> np.ndarray:
    rows = np.tile([float(DEFAULT_RECORD[name]) for name in FEATURE_NAMES], (n, 1))
    for name, values in columns.items():
        rows[:, FEATURE_NAMES.index(name)] = values
    return rows


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, 2.0, -1.0, 7.0])
@pytest.mark.parametrize("name", list(CARE_ACCESS))
def test_one_row_s_in_care_copy_agrees_with_in_care(name: str, value: float) -> None:
    """Review 20, M2: the one-row path checks the access answers its own way (`with_in_care_copy`); on any value,
    unusual ones included, it reads a row as `in_care` does: the row alone when in care, else the row and the same
    in-care copy."""
    row = _rows(1, **{name: np.array([value])})
    pair = with_in_care_copy(row)
    screened, changed = in_care(row)
    if changed[0]:
        assert pair.shape == (2, len(FEATURE_NAMES))
        np.testing.assert_array_equal(pair[0], row[0])
        np.testing.assert_array_equal(pair[1], screened[0])
    else:
        assert pair is row


def test_one_row_s_in_care_copy_takes_one_row_only() -> None:
    for bad in (_rows(2), _rows(1)[0]):
        with pytest.raises(ValueError, match="expected one row of shape"):
            with_in_care_copy(bad)


def test_in_care_reads_every_access_answer_as_in_care_and_copies_only_when_needed() -> None:
    rows = _rows(3, CholCheck=np.array([1, 0, 1]), NoDocbcCost=np.array([0, 0, 1]))
    screened, changed = in_care(rows)
    assert changed.tolist() == [False, True, True]
    for name, value in CARE_ACCESS.items():
        assert (screened[:, FEATURE_NAMES.index(name)] == value).all()
    assert rows[1, CHOL_CHECK] == 0  # the caller's rows are left as they were
    already, nothing = in_care(rows[:1])
    assert np.shares_memory(already, rows)  # no copy when nothing changes
    assert not nothing.any()
    assert not_checked(rows).tolist() == [False, True, False]
    assert list(CARE_GROUPS) == list(CARE_ACCESS)  # the subgroup table names each access answer's group


def test_the_margin_is_binomial_standard_errors_of_the_ada_share() -> None:
    assert with_margin(0.5, 100) == pytest.approx(0.5 + SAFETY_MARGIN * 0.05)
    assert with_margin(0.99, 4) == 1.0


def _scored(risk: np.ndarray, y: np.ndarray, rows: np.ndarray) -> Scored:
    proba = np.column_stack([1 - risk, np.zeros_like(risk), risk])
    return Scored(rows, y, proba, proba)


def test_raised_finds_as_many_people_with_prediabetes_as_the_ada_test_not_only_overall() -> None:
    """People with diabetes carry the combined figure; the threshold must also reach the ADA test's share of the
    people with pre-diabetes, who score lower."""
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.choice([0, 1, 2], size=n, p=[0.8, 0.05, 0.15])
    risk = np.clip(rng.normal(0.1, 0.05, n) + 0.25 * (y == 2) + 0.03 * (y == 1), 0.001, 0.999)
    rows = _rows(n, Age=rng.integers(1, 14, n), BMI=rng.uniform(18, 45, n), HighBP=rng.integers(0, 2, n))
    cutoffs = choose_cutoffs(_scored(risk, y, rows), average=0.2, training_labels=y)
    ada = ada_risk_points(rows) >= 5
    flagged = risk >= cutoffs.raised
    assert flagged[y > 0].mean() >= ada[y > 0].mean()
    assert flagged[y == 1].mean() >= ada[y == 1].mean()
    overall_only = float(np.quantile(risk[y > 0], 1 - ada[y > 0].mean(), method="lower"))
    assert cutoffs.raised < overall_only  # pre-diabetes decided it here
    assert cutoffs.prediabetes_average == pytest.approx((y == 1).mean())


def test_people_not_checked_get_a_threshold_that_flags_them_as_often_as_the_ada_test() -> None:
    """Their labels say little (a diagnosis needs a doctor): the model scores them low, the ADA test does not."""
    rng = np.random.default_rng(1)
    n = 5000
    unchecked = rng.random(n) < 0.2
    y = np.where(unchecked, 0, rng.choice([0, 1, 2], size=n, p=[0.8, 0.05, 0.15]))
    risk = np.clip(rng.normal(0.12, 0.05, n) + 0.25 * (y > 0) - 0.08 * unchecked, 0.001, 0.999)
    rows = _rows(n, CholCheck=(~unchecked).astype(float), Age=rng.integers(1, 14, n), BMI=rng.uniform(18, 45, n))
    cutoffs = choose_cutoffs(_scored(risk, y, rows), average=0.2, training_labels=y)
    assert cutoffs.raised_not_checked < cutoffs.raised
    given = levels(cutoffs, risk, rows)
    ada = ada_risk_points(rows) >= 5
    assert (given[unchecked] != ScreeningLevel.LOWER).mean() >= ada[unchecked].mean()
    # The level follows the person's own threshold, and only "not checked" lowers it.
    assert cutoffs.level(cutoffs.raised_not_checked, not_checked=True) is ScreeningLevel.RAISED
    assert cutoffs.level(cutoffs.raised_not_checked, not_checked=False) is ScreeningLevel.LOWER


def test_the_levels_of_many_rows_are_the_level_of_each_thresholds_included() -> None:
    cutoffs = ScreeningCutoffs(average=0.2, prediabetes_average=0.02, raised=0.15, raised_not_checked=0.1, high=0.4)
    near = [cutoffs.raised_not_checked, cutoffs.raised, cutoffs.high]
    risk = np.repeat([0.0, *near, *np.nextafter(near, 0.0), 1.0], 2)
    rows = _rows(len(risk), CholCheck=np.tile([1, 0], len(risk) // 2))
    expected = [cutoffs.level(float(r), bool(u)) for r, u in zip(risk, not_checked(rows), strict=True)]
    assert levels(cutoffs, risk, rows).tolist() == expected
    assert set(expected) == set(ScreeningLevel)


def test_thresholds_out_of_order_are_refused() -> None:
    with pytest.raises(ValidationError, match="raised_not_checked <= raised <= high"):
        ScreeningCutoffs(average=0.2, prediabetes_average=0.02, raised=0.15, raised_not_checked=0.2, high=0.4)


def test_the_subgroup_table_pairs_the_model_with_the_ada_test_by_hand() -> None:
    """Ten people with the condition, all women: the model finds 8, the ADA test 6, 5 of them the same."""
    y = np.array([1] * 10 + [0] * 10)
    flagged = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0] + [0] * 9 + [1], dtype=bool)
    ada = np.array([1, 1, 1, 1, 1, 0, 0, 0, 1, 0] + [1] * 5 + [0] * 5, dtype=bool)
    rows = _rows(20, Sex=np.zeros(20), Age=np.full(20, 9), Income=np.full(20, 8))
    table = screening_subgroups(rows, y, flagged, ada)
    women = table[(table["feature"] == "Sex") & (table["group"] == "Female")].iloc[0]
    assert (women["rows"], women["positives"]) == (20, 10)
    assert (women["sensitivity_model"], women["sensitivity_ada"]) == (0.8, 0.6)
    assert women["sensitivity_difference"] == pytest.approx(0.2)
    assert (women["specificity_model"], women["specificity_ada"]) == (0.9, 0.5)
    for measure in ("sensitivity", "specificity"):
        for test in ("model", "ada", "difference"):
            low, point, high = (women[f"{measure}_{test}{s}"] for s in ("_low", "", "_high"))
            assert low <= point <= high
    # Nobody is male here: no row for men; no one not checked: no row for them either.
    assert "Male" not in set(table["group"])
    assert "Not checked in 5 years" not in set(table["group"])
    assert table.loc[table["feature"] == "All", "rows"].item() == 20


def _group(feature: str, group: str, sensitivity: tuple[float, ...], specificity: tuple[float, ...]) -> dict:
    """A table row: (model, ADA, low, high of the difference) for each measure."""
    row: dict = {"feature": feature, "group": group, "rows": 100, "positives": 50}
    for measure, (model, ada, low, high) in (("sensitivity", sensitivity), ("specificity", specificity)):
        row |= {f"{measure}_model": model, f"{measure}_ada": ada}
        row |= {f"{measure}_difference_low": low, f"{measure}_difference_high": high}
    return row


def test_who_is_missed_names_the_groups_whose_whole_interval_says_so() -> None:
    groups = pd.DataFrame(
        [
            _group("Sex", "Male", (0.815, 0.893, -0.09, -0.06), (0.6, 0.45, 0.1, 0.2)),
            _group("Income", "$75,000+", (0.62, 0.761, -0.164, -0.117), (0.8, 0.7, 0.05, 0.15)),
            _group("Sex", "Female", (0.85, 0.75, 0.08, 0.12), (0.66, 0.69, -0.05, -0.01)),
            _group("Age", "65+", (0.9, 0.91, -0.03, 0.01), (0.4, 0.32, 0.05, 0.11)),
            _group("Access to care", "Not checked in 5 years", (0.83, 0.63, 0.1, 0.3), (0.7, 0.72, -0.06, 0.02)),
        ]
    )
    words = who_is_missed(groups)
    assert words.startswith(
        "The screen misses more of the people with pre-diabetes or diabetes than the ADA risk test among men (81.5% "
        "against 89.3%) and households with incomes of $75,000 or more (62.0% against 76.1%)"
    )
    assert (
        "It finds more of them among women (85.0% against 75.0%) and people not checked in 5 years (83.0% against "
        "63.0%)." in words
    )
    assert (
        "more healthy people (people with neither; its specificity shown first) than the ADA test among women (66.0% "
        "against 69.0%)." in words
    )
    assert "65 or older" not in words
    assert "many more" not in words


def test_who_is_missed_names_where_many_more_healthy_people_are_flagged() -> None:
    """Incomes under $25,000: the screen finds more of the affected but flags 11 points more of the healthy."""
    groups = pd.DataFrame(
        [
            _group("Income", "< $25,000", (0.932, 0.823, 0.095, 0.123), (0.402, 0.512, -0.12, -0.1)),
            _group("Sex", "Female", (0.84, 0.73, 0.1, 0.12), (0.667, 0.692, -0.03, -0.02)),
            _group("Access to care", "No health care coverage", (0.83, 0.68, 0.1, 0.2), (0.66, 0.70, -0.06, -0.03)),
        ]
    )
    words = who_is_missed(groups)
    assert (
        "It flags many more healthy people than the ADA test, its specificity 5 points or more lower, among "
        "households with incomes under $25,000 (40.2% against 51.2%): there a raised result is more often a false "
        "alarm." in words
    )
    assert "among women (66.7% against 69.2%) and people without health care coverage (66.0% against 70.0%)." in words
    assert f"{COVERAGE:.0%} interval" in words


def test_every_trained_model_records_the_screening_and_who_it_misses(trained_model_dir: Path) -> None:
    manifest = Manifest.model_validate_json((trained_model_dir / "manifest.json").read_text())
    screening = manifest.screening
    assert screening.raised_not_checked <= screening.raised <= screening.high
    assert set(screening.test_levels) == set(ScreeningLevel)
    assert sum(outcome.people for outcome in screening.test_levels.values()) == pytest.approx(1.0)
    assert screening.access.method == "scored_as_if_in_care"
    assert screening.test.rows == manifest.metrics.test["rows"]
    assert SCREENING_SUBGROUPS_CSV in manifest.files
    load_artifact(trained_model_dir)  # the table is sealed with the rest
    table = pd.read_csv(trained_model_dir / SCREENING_SUBGROUPS_CSV)
    assert set(SUBGROUP_BANDS) <= set(table["feature"])
    everyone = table[table["feature"] == "All"].iloc[0]
    assert everyone["rows"] == screening.test.rows
    assert everyone["sensitivity_model"] == pytest.approx(screening.test.sensitivity, abs=1e-4)
    assert everyone["sensitivity_ada"] == pytest.approx(screening.test.ada_sensitivity, abs=1e-4)
    assert everyone["specificity_model"] == pytest.approx(screening.test.specificity, abs=1e-4)
