"""Who the screen misses: the raised level's sensitivity and specificity by group, beside the ADA risk test's.

For every group of `ml.schema.SUBGROUP_BANDS` (Sex, Age band, Income band), for everyone, and for the people outside
the care system (each answer of `ml.schema.CARE_ACCESS` on its own), on the test rows: how many of the people with
pre-diabetes or diabetes a raised or high result finds (sensitivity) and how many of the people with neither it
leaves alone (specificity), the same for the ADA test at 5 points, and the difference. The intervals are a paired
bootstrap: the people of the group are resampled with replacement, each keeping both the model's and the ADA test's
answer, so the difference's interval accounts for the two tests being scored on the same people.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from ml.schema import CARE_ACCESS, FEATURE_NAMES, SUBGROUP_BANDS

#: Bootstrap resamples per group and measure, and the interval's coverage.
RESAMPLES = 2000
COVERAGE = 0.95
#: Seed of the bootstrap, so a run's table is reproducible.
SEED = 0
#: How the access groups are named in the table, and in a sentence.
CARE_GROUPS = {
    "CholCheck": ("Not checked in 5 years", "people not checked in 5 years"),
    "AnyHealthcare": ("No health care coverage", "people without health care coverage"),
    "NoDocbcCost": ("Could not afford a doctor", "people who could not afford a doctor"),
}
CARE_FEATURE = "Access to care"
#: A specificity this much below the ADA test's is said to flag "many more" healthy people.
MUCH_LOWER = 0.05


def _groups(rows: np.ndarray) -> Iterator[tuple[str, str, np.ndarray]]:
    """(feature, group, mask) for everyone, every subgroup band and every access gap."""
    yield "All", "Everyone", np.ones(len(rows), dtype=bool)
    for column, bands in SUBGROUP_BANDS.items():
        values = rows[:, FEATURE_NAMES.index(column)]
        for band, codes in bands.items():
            yield column, band, np.isin(values, codes)
    for column, in_care in CARE_ACCESS.items():
        yield CARE_FEATURE, CARE_GROUPS[column][0], rows[:, FEATURE_NAMES.index(column)] != in_care


def _paired(right_model: np.ndarray, right_ada: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Both tests' share of right answers among these people, their difference, and percentile intervals."""
    n = len(right_model)
    if n == 0:
        return {}
    # Four kinds of people (both right, model only, ADA only, neither): a resample only changes their counts.
    kinds = np.array(
        [np.sum(right_model & right_ada), np.sum(right_model & ~right_ada), np.sum(~right_model & right_ada)]
    )
    counts = rng.multinomial(n, [*(kinds / n), 1.0 - kinds.sum() / n], size=RESAMPLES)
    model = (counts[:, 0] + counts[:, 1]) / n
    ada = (counts[:, 0] + counts[:, 2]) / n
    tail = 100 * (1 - COVERAGE) / 2
    figures: dict[str, float] = {}
    for name, point, resampled in (
        ("model", right_model.mean(), model),
        ("ada", right_ada.mean(), ada),
        ("difference", right_model.mean() - right_ada.mean(), model - ada),
    ):
        low, high = np.percentile(resampled, [tail, 100 - tail])
        figures.update({name: float(point), f"{name}_low": float(low), f"{name}_high": float(high)})
    return figures


def screening_subgroups(rows: np.ndarray, y: np.ndarray, flagged: np.ndarray, ada: np.ndarray) -> pd.DataFrame:
    """One row per group: rows, positives, share flagged by each test, and both measures with their intervals.

    `rows`: the feature rows (answers as given); `y`: the true classes; `flagged`: the model's raised or high;
    `ada`: the ADA test's 5 points or more. A measure without people to measure it on is left empty (NaN).
    """
    rng = np.random.default_rng(SEED)
    positive = y > 0
    table: list[dict[str, Any]] = []
    for column, group, mask in _groups(rows):
        if not mask.any():
            continue
        record: dict[str, Any] = {
            "feature": column,
            "group": group,
            "rows": int(mask.sum()),
            "positives": int((mask & positive).sum()),
            "flagged_model": float(flagged[mask].mean()),
            "flagged_ada": float(ada[mask].mean()),
        }
        for measure, people, right_model, right_ada in (
            ("sensitivity", mask & positive, flagged, ada),
            ("specificity", mask & ~positive, ~flagged, ~ada),
        ):
            figures = _paired(right_model[people], right_ada[people], rng)
            for name in ("model", "ada", "difference"):
                for suffix in ("", "_low", "_high"):
                    record[f"{measure}_{name}{suffix}"] = figures.get(f"{name}{suffix}", float("nan"))
        table.append(record)
    return pd.DataFrame(table)


def _group_name(record: dict[str, Any]) -> str:
    """A group as a sentence names it: "men", "people aged 65 or older", "households with incomes under $25,000"."""
    group = str(record["group"])
    readable = group.replace("< ", "under ").replace("+", " or older" if record["feature"] == "Age" else " or more")
    readable = readable.replace("-$", " to $")
    if record["feature"] == "Sex":
        return {"Female": "women", "Male": "men"}.get(group, group)
    if record["feature"] == "Age":
        return f"people aged {readable}"
    if record["feature"] == "Income":
        return f"households with incomes of {readable}".replace("of under", "under")
    return next((phrase for label, phrase in CARE_GROUPS.values() if label == group), group)


def _listed(records: list[dict[str, Any]], measure: str) -> str:
    parts = [f"{_group_name(r)} ({r[f'{measure}_model']:.1%} against {r[f'{measure}_ada']:.1%})" for r in records]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def who_is_missed(table: pd.DataFrame) -> str:
    """In plain words: in which groups the screen finds fewer (or more) of the people with pre-diabetes or diabetes
    than the ADA test, and where it raises more false alarms, where the whole interval of the difference says so."""
    records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in table.to_dict(orient="records")]
    groups = [r for r in records if r["feature"] in (*SUBGROUP_BANDS, CARE_FEATURE)]
    fewer = [r for r in groups if r["sensitivity_difference_high"] < 0]
    more = [r for r in groups if r["sensitivity_difference_low"] > 0]
    alarms = [r for r in groups if r["specificity_difference_high"] < 0]
    if fewer:
        sentences = [
            "The screen misses more of the people with pre-diabetes or diabetes than the ADA risk test among "
            f"{_listed(fewer, 'sensitivity')}: of them it finds the share shown first, the ADA test the second."
        ]
    else:
        sentences = [
            "In no group does the screen find clearly fewer of the people with pre-diabetes or diabetes than the "
            "ADA risk test."
        ]
    if more:
        sentences.append(f"It finds more of them among {_listed(more, 'sensitivity')}.")
    much = [r for r in alarms if r["specificity_model"] - r["specificity_ada"] <= -MUCH_LOWER]
    some = [r for r in alarms if r not in much]
    if some:
        sentences.append(
            "It flags more healthy people (people with neither; its specificity shown first) than the ADA test "
            f"among {_listed(some, 'specificity')}."
        )
    if much:
        sentences.append(
            f"It flags many more healthy people than the ADA test, its specificity {100 * MUCH_LOWER:.0f} points or "
            f"more lower, among {_listed(much, 'specificity')}: there a raised result is more often a false alarm."
        )
    sentences.append(
        f"Elsewhere the two differ by less than the {COVERAGE:.0%} interval of the difference can tell apart."
    )
    return " ".join(sentences)
