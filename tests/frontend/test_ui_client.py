"""The UI's HTTP client against real servers: answers parsed in class order, each failure its own error type."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from frontend.client import (
    ApiClient,
    InvalidInputError,
    ServiceNotReadyError,
    ServiceTimeoutError,
    ServiceUnreachableError,
)
from ml.schema import CLASSES, DEFAULT_RECORD, FEATURE_NAMES


def defaults() -> dict[str, float | int | str | None]:
    return {**DEFAULT_RECORD}


def client(url: str, timeout: float = 10.0) -> ApiClient:
    return ApiClient(url, timeout_seconds=timeout, connect_timeout_seconds=2.0)


def test_prediction_has_three_probabilities_in_class_order_and_factors(api_url: str) -> None:
    result = client(api_url).predict(defaults(), explain=True)
    assert len(result.probabilities.ordered()) == len(CLASSES)
    assert math.isclose(sum(result.probabilities.ordered()), 1.0, abs_tol=1e-6)
    assert result.label == CLASSES[result.prediction].label
    assert result.model_version
    assert result.explanation
    assert {f.feature for f in result.explanation} <= set(FEATURE_NAMES)


def test_probabilities_follow_the_class_order_of_the_raw_answer(api_url: str) -> None:
    """Checked against the service's JSON read with plain httpx, not against the client itself."""
    record = {**defaults(), "HighBP": 1, "BMI": 40, "GenHlth": 5, "Age": 11}
    raw = httpx.post(f"{api_url}/predict", json=record, timeout=10).raise_for_status().json()
    expected = tuple(raw["probabilities"][c.name] for c in CLASSES)
    assert len(set(expected)) == len(CLASSES)  # distinct, so any other order would fail
    result = client(api_url).predict(record, explain=False)
    assert result.probabilities.ordered() == expected
    assert (result.prediction, result.label, result.model_version) == (
        raw["prediction"],
        raw["label"],
        raw["model_version"],
    )


def test_prediction_without_explanation_has_no_factors(api_url: str) -> None:
    assert client(api_url).predict(defaults(), explain=False).explanation is None


def test_model_info_names_the_version(api_url: str) -> None:
    info = client(api_url).model_info()
    assert info.model_version
    assert "weighted_f1" in info.metrics.test
    assert info.batch_limit == 1_000


def test_batch_answers_every_record_in_order(api_url: str) -> None:
    api = client(api_url)
    records = [defaults(), {**defaults(), "HighBP": 1, "BMI": 40, "GenHlth": 5, "Age": 11}]
    batch = api.predict_batch(records)
    singles = [api.predict(r, explain=False) for r in records]
    for b, s in zip(batch, singles, strict=True):
        assert b.probabilities.ordered() == pytest.approx(s.probabilities.ordered())


def test_out_of_range_value_is_reported_with_its_field(api_url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        client(api_url).predict({**defaults(), "Age": 14})
    assert [e.field for e in caught.value.errors] == ["Age"]
    assert "Age" in caught.value.message


def test_batch_errors_carry_the_record_index(api_url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        client(api_url).predict_batch([defaults(), defaults(), {**defaults(), "GenHlth": 9}])
    assert [(e.index, e.field) for e in caught.value.errors] == [(2, "GenHlth")]


def test_nothing_listening_is_unreachable(down_api_url: str) -> None:
    with pytest.raises(ServiceUnreachableError, match="cannot be reached"):
        client(down_api_url).predict(defaults())


def test_service_without_model_is_not_ready(unready_api_url: str) -> None:
    api = client(unready_api_url)
    with pytest.raises(ServiceNotReadyError, match="cannot make predictions right now") as caught:
        api.ready()
    assert caught.value.detail  # the service's reason, for whoever runs it
    with pytest.raises(ServiceNotReadyError):
        api.predict(defaults())


def test_slow_service_times_out_quickly(slow_api_url: str) -> None:
    start = time.monotonic()
    with pytest.raises(ServiceTimeoutError, match=r"did not answer within 0\.5 seconds"):
        client(slow_api_url, timeout=0.5).predict(defaults())
    assert time.monotonic() - start < 3
