"""The wire contract bounds the work of refusing a body: few problems are built, whatever the body holds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ml.contract import (
    CARE_GAPS,
    DEFAULT_BATCH_LIMIT,
    MAX_NAMED_UNKNOWN_FIELDS,
    MAX_REPORTED_ERRORS,
    RESULT_COLUMNS,
    CareAccess,
    PatientRecord,
    batch_request_model,
)
from ml.schema import CARE_ACCESS, DEFAULT_RECORD, FEATURE_NAMES
from tests.service.hostile import BATCH_UNKNOWN_KEYS, SINGLE_UNKNOWN_KEYS, unknown_keys

#: Problems one record can hold at most: one per field, plus the few unknown keys still named one by one.
MAX_PROBLEMS_PER_RECORD = len(FEATURE_NAMES) + MAX_NAMED_UNKNOWN_FIELDS


def _problems(body: object, model: type = PatientRecord) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return caught.value


@pytest.mark.parametrize(
    "records",
    [
        [{}] * DEFAULT_BATCH_LIMIT,  # every field missing, in every record
        [dict.fromkeys(DEFAULT_RECORD, "x")] * DEFAULT_BATCH_LIMIT,  # every field of the wrong type
        [unknown_keys(BATCH_UNKNOWN_KEYS)] * DEFAULT_BATCH_LIMIT,  # 314,000 problems if every one were built
    ],
    ids=["empty", "strings", "unknown-keys"],
)
def test_batch_validation_stops_after_enough_problems(records: list[dict[str, object]]) -> None:
    problems = _problems({"records": records}, batch_request_model(DEFAULT_BATCH_LIMIT))
    assert MAX_REPORTED_ERRORS <= problems.error_count() < MAX_REPORTED_ERRORS + MAX_PROBLEMS_PER_RECORD


def test_a_valid_batch_still_validates_every_record() -> None:
    records = [{**DEFAULT_RECORD, "Age": age} for age in range(1, 14)] * 50
    batch = batch_request_model(DEFAULT_BATCH_LIMIT).model_validate({"records": records})
    age = FEATURE_NAMES.index("Age")
    assert [record.as_row()[age] for record in batch.records] == [r["Age"] for r in records]  # type: ignore[attr-defined]


def test_a_late_invalid_record_is_found() -> None:
    records = [dict(DEFAULT_RECORD)] * (DEFAULT_BATCH_LIMIT - 1) + [{**DEFAULT_RECORD, "Age": 99}]
    problems = _problems({"records": records}, batch_request_model(DEFAULT_BATCH_LIMIT)).errors()
    assert [(p["loc"], p["type"]) for p in problems] == [
        (("records", DEFAULT_BATCH_LIMIT - 1, "Age"), "less_than_equal")
    ]


def test_many_unknown_keys_are_one_problem() -> None:
    problems = _problems(unknown_keys(SINGLE_UNKNOWN_KEYS)).errors()
    assert len(problems) == 1
    assert problems[0]["ctx"]["count"] == SINGLE_UNKNOWN_KEYS


def test_a_few_unknown_keys_are_named_one_by_one() -> None:
    problems = _problems({**DEFAULT_RECORD, "Colour": "blue", "Shoe": 42}).errors()
    assert sorted((p["loc"], p["type"]) for p in problems) == [
        (("Colour",), "extra_forbidden"),
        (("Shoe",), "extra_forbidden"),
    ]


def test_the_result_columns_carry_the_care_access_reasons_at_the_end() -> None:
    """A clinic reading the batch file must see who is outside the care system: their level and class may be low."""
    assert RESULT_COLUMNS[:7] == ("prediction", "proba_0", "proba_1", "proba_2", "risk", "risk_level", "model_version")
    assert RESULT_COLUMNS[-1] == "care_access"
    both = CareAccess(not_checked=True, no_coverage=True, cost_barrier=False, message="m")
    assert both.note == "not checked in 5 years; no coverage"
    cost = CareAccess(not_checked=False, no_coverage=False, cost_barrier=True, message="m")
    assert cost.note == "cost kept from a doctor"


def test_every_access_answer_has_its_flag_its_words_and_its_reason() -> None:
    assert list(CARE_GAPS) == list(CARE_ACCESS)
    assert [gap.field for gap in CARE_GAPS.values()] == [name for name in CareAccess.model_fields if name != "message"]
