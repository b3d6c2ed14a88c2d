"""The ``{{ real_... }}`` substitutions say what their names say, rendered from a JSON whose figures are known."""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.docs.extensions import DOCS, project_tables

_SUBSTITUTION = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def _known_metrics() -> dict[str, Any]:
    """The committed file with screening figures chosen so that every section's numbers differ."""
    data = copy.deepcopy(project_tables.load_real_metrics())
    screening = data["screening"]
    screening["test"].update(rows=45_643, flagged=0.4418, ada_flagged=0.4784)
    screening["test_not_checked"] = {"rows": 1_689, "flagged": 0.3102, "ada_flagged": 0.2753}
    figures = {"roc_auc": 0.8, "specificity_at_ada_sensitivity": 0.6, "not_checked_flagged": 0.2}
    summary = {o: {k: {"mean": v, "sd": 0.001} for k, v in figures.items()} for o in project_tables.ACCESS_OPTIONS}
    data.setdefault("access_options", {"summary": summary, "seeds": ["1", "2"]})
    return data


def _render(page: str, start: str, subs: dict[str, str]) -> str:
    """The paragraph of a page that starts with `start`, with its substitutions filled in as MyST does."""
    text = (DOCS / page).read_text(encoding="utf-8")
    paragraph = next(p for p in text.split("\n\n") if p.startswith(start))
    return " ".join(_SUBSTITUTION.sub(lambda m: subs[m.group(1)], paragraph).split())


def test_the_whole_test_split_sentence_gives_the_whole_test_splits_figures() -> None:
    subs = project_tables.substitutions(_known_metrics())
    sentence = _render("imbalance.md", "On the {{ real_screening_rows }} test rows", subs)
    assert sentence.startswith("On the 45,643 test rows, people the model never saw, 44.2% of people get a raised")


def test_the_not_checked_figures_have_names_of_their_own() -> None:
    subs = project_tables.substitutions(_known_metrics())
    assert (subs["real_not_checked_rows"], subs["real_not_checked_flagged"]) == ("1,689", "31.0%")
    assert subs["real_not_checked_ada_flagged"] == "27.5%"
    assert (subs["real_screening_rows"], subs["real_screening_ada_flagged"]) == ("45,643", "47.8%")


def test_the_ui_guide_quotes_the_sidebars_words_from_the_same_figures() -> None:
    """The guide said "about 8 in 10" of the people with diabetes where the sidebar said "about 9 in 10" (0.860)."""
    data = _known_metrics()
    data["screening"]["test"].update(precision=0.3033, sensitivity_diabetes=0.8601)
    sentence = _render("ui-guide.md", "The sidebar", project_tables.substitutions(data))
    assert '("about 3 in 10"), and how many of the people with diabetes it finds ("about 9 in 10")' in sentence


def test_who_is_missed_is_worded_by_the_code_from_the_files_figures() -> None:
    """The stored sentence said "people no health care coverage" and left out the incomes under $25,000, where the
    screen flags 11 points more of the healthy people than the ADA test."""
    words = project_tables.substitutions(_known_metrics())["real_screening_who_is_missed"]
    assert "people no health care coverage" not in words
    assert "people could not afford" not in words
    assert "many more healthy people than the ADA test" in words
    assert "households with incomes under $25,000 (40.2% against 51.2%)" in words
