"""BMI arithmetic and the notices about answers that contradict each other."""

from __future__ import annotations

import pytest

from frontend.checks import bmi_imperial, bmi_metric, check_calculated_bmi, review
from ml.schema import FEATURES


def answers(**changes: float) -> dict[str, float]:
    return {**{f.name: float(f.default) for f in FEATURES}, **changes}


def test_bmi_metric_and_imperial_agree() -> None:
    assert bmi_metric(180, 81) == pytest.approx(25.0)
    # 5 ft 11 in = 180.34 cm, 178.6 lb = 81.01 kg
    assert bmi_imperial(5, 11, 178.6) == pytest.approx(bmi_metric(180.34, 81.01), rel=1e-3)


def test_bmi_needs_positive_numbers() -> None:
    with pytest.raises(ValueError, match="positive"):
        bmi_metric(0, 70)


def test_calculated_bmi_outside_the_schema_range_is_explained() -> None:
    assert check_calculated_bmi(25.0) is None
    message = check_calculated_bmi(bmi_metric(100, 120))
    assert message is not None
    assert "120.0" in message
    assert "12 to 98" in message


def test_default_answers_raise_no_notice() -> None:
    assert review(answers()) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"GenHlth": 1, "PhysHlth": 20}, "PhysHlth"),
        ({"HighChol": 1, "CholCheck": 0}, "CholCheck"),
        ({"BMI": 13}, "BMI"),
        ({"BMI": 70}, "BMI"),
    ],
)
def test_contradictions_are_reported_next_to_the_field(changes: dict[str, float], field: str) -> None:
    assert [n.field for n in review(answers(**changes))] == [field]


def test_consistent_combinations_pass() -> None:
    assert review(answers(GenHlth=1, PhysHlth=3, HighChol=1, CholCheck=1, BMI=31)) == []
