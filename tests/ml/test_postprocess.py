"""The one-row forms of calibration and the decision rule (`calibrate_row`, `decide_row`, the service's one-row
path) against the numpy forms every other caller uses: one formula, two spellings, held together here."""

from __future__ import annotations

import numpy as np
import pytest

from ml.inference.postprocess import calibrate, calibrate_row, decide, decide_row
from ml.manifest import Calibration, DecisionRule
from ml.schema import N_CLASSES

_CALIBRATIONS = [
    Calibration(),
    Calibration(temperature=1.7, bias=(0.3, -1.2, 0.4)),
    Calibration(temperature=0.05, bias=(-3.0, 2.0, 0.0)),  # sharp: large logits
]
_RULES = [DecisionRule.from_weights((1.0, 1.0, 1.0)), DecisionRule.from_weights((0.2, 1.0, 0.45))]


@pytest.mark.parametrize("calibration", _CALIBRATIONS)
def test_one_row_calibration_is_numpy_s_bit_for_bit(calibration: Calibration) -> None:
    """Bit for bit: the service writes each float's shortest form, so an ulp is another answer (review 22, F1:
    with `math.exp`, 3 in 1,000 of these rows differed on a machine whose numpy has AVX-512)."""
    raw = np.random.default_rng(7).normal(scale=4.0, size=(2_000, N_CLASSES))
    expected = calibrate(raw, calibration)
    actual = np.array([calibrate_row(row, calibration) for row in raw.tolist()])
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("rule", _RULES)
def test_one_row_decision_is_numpy_s(rule: DecisionRule) -> None:
    proba = calibrate(np.random.default_rng(8).normal(scale=2.0, size=(2_000, N_CLASSES)), Calibration())
    assert [decide_row(row, rule) for row in proba.tolist()] == decide(proba, rule).tolist()


def test_one_row_decision_takes_the_first_of_equal_classes_as_argmax() -> None:
    rule = DecisionRule.from_weights((1.0, 1.0, 1.0))
    for tied in ([0.25, 0.375, 0.375], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]):
        assert decide_row(tied, rule) == decide(np.array([tied]), rule)[0]
