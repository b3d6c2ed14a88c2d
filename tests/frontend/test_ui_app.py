"""The Streamlit app through `AppTest`, over HTTP to real uvicorn servers (healthy, without model, slow, none)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from streamlit.testing.v1 import AppTest

from frontend import about
from frontend.client import ApiClient
from frontend.form import WHO_IT_IS_FOR, answer_key, is_yes_no
from frontend.result import (
    DISCLAIMER,
    SYNTHETIC_WARNING,
    factor_sentence,
    message,
    prediabetes_sentence,
)
from frontend.ui import SHOWN_ROWS
from ml.manifest import ScreeningLevel
from ml.schema import AGE_BANDS, CLASSES, DEFAULT_RECORD, FEATURE_NAMES, FEATURES, FeatureKind
from tests.servers import ROOT

APP = str(ROOT / "frontend" / "app.py")


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch):
    """Open the app against `url` (optionally with more UI_* settings) and check it drew without an exception."""

    def _start(url: str, **env: str) -> AppTest:
        monkeypatch.setenv("API_URL", url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(APP, default_timeout=30).run()
        assert not at.exception
        return at

    return _start


def widget(at: AppTest, name: str):
    return at.get_by_key(answer_key(name))


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_form_is_built_from_the_schema_with_plain_questions_and_defaults(start, api_url: str) -> None:
    at = start(api_url)
    for f in FEATURES:
        w = widget(at, f.name)
        assert w.label == f.question
        assert w.value == f.default
        if is_yes_no(f):
            assert w.type == "radio"
            assert w.options == ["No", "Yes"]
        elif f.kind is FeatureKind.DAYS:
            assert (w.type, w.min, w.max) == ("slider", f.minimum, f.maximum)
        elif f.kind is FeatureKind.CONTINUOUS:
            assert w.type == "number_input"
        else:
            assert w.options == [f.labels[code] for code in sorted(f.labels)]
    assert widget(at, "Age").options == list(AGE_BANDS.values())
    assert widget(at, "GenHlth").options[0] == "Excellent"
    assert at.button(key="predict").label == "Predict"


def test_predict_leads_with_one_message_then_prediabetes_factors_and_disclaimer(start, api_url: str) -> None:
    at = start(api_url)
    changes = {"HighBP": 1, "HighChol": 1, "BMI": 38.0, "GenHlth": 4, "Age": 11, "DiffWalk": 1}
    for name, value in changes.items():
        widget(at, name).set_value(value)
    click(at.run(), "predict")

    record = {**DEFAULT_RECORD, **changes}
    expected = ApiClient(api_url, timeout_seconds=10, connect_timeout_seconds=2).predict(record, explain=True)
    assert message(expected.screening) in texts(at.warning) + texts(at.info) + texts(at.error)
    shown = texts(at.markdown)
    assert prediabetes_sentence(expected.screening) in shown
    assert expected.explanation
    for factor in expected.explanation:
        assert factor_sentence(factor) in shown
    assert "points away" not in shown
    assert DISCLAIMER in shown
    assert f"Model version: {expected.model_version}" in texts(at.caption)
    # The session's model was trained on synthetic rows: the card and the page say so.
    assert SYNTHETIC_WARNING in texts(at.error)
    assert about.SYNTHETIC_INTRO in texts(at.error)


def test_the_card_carries_one_message_and_the_form_the_note_on_pregnancy(start, api_url: str) -> None:
    """No "Most likely status: No diabetes (71%)" beside "a blood test is advised"; the note that the survey counts
    diabetes only during pregnancy as none is help for the questions, not part of anyone's result."""
    at = click(start(api_url), "predict")
    card = texts(at.markdown) + texts(at.warning) + texts(at.info)
    assert "Most likely status" not in card
    assert "pregnan" not in card
    assert WHO_IT_IS_FOR in texts(at.caption)
    assert "gestational diabetes" in WHO_IT_IS_FOR


def test_a_person_not_checked_recently_is_told_why_a_blood_test_is_worth_having(start, api_url: str) -> None:
    at = start(api_url)
    widget(at, "CholCheck").set_value(0)
    click(at.run(), "predict")
    record = {**DEFAULT_RECORD, "CholCheck": 0}
    expected = ApiClient(api_url, timeout_seconds=10, connect_timeout_seconds=2).predict(record)
    assert expected.screening.care_access is not None
    assert expected.screening.care_access.message in texts(at.warning)
    assert "may be too low for you" in texts(at.warning)


def test_changing_an_answer_marks_the_result_as_out_of_date(start, api_url: str) -> None:
    at = click(start(api_url), "predict")
    assert "Press **Predict** again" not in texts(at.info)
    widget(at, "Smoker").set_value(1).run()
    assert "Press **Predict** again" in texts(at.info)
    click(at, "predict")
    assert "Press **Predict** again" not in texts(at.info)


def test_bmi_calculator_fills_in_the_bmi(start, api_url: str) -> None:
    at = start(api_url)
    at.number_input(key="bmi_height_cm").set_value(180.0)
    at.number_input(key="bmi_weight_kg").set_value(81.0).run()
    assert at.button(key="bmi_use").label == "Use BMI 25.0"
    click(at, "bmi_use")
    assert widget(at, "BMI").value == 25.0

    at.radio(key="bmi_units").set_value("Imperial (ft, in, lb)").run()
    at.number_input(key="bmi_height_ft").set_value(5)
    at.number_input(key="bmi_height_in").set_value(4)
    at.number_input(key="bmi_weight_lb").set_value(200.0).run()
    click(at, "bmi_use")
    assert widget(at, "BMI").value == 34.3


def test_impossible_height_and_weight_are_explained_and_not_used(start, api_url: str) -> None:
    at = start(api_url)
    at.number_input(key="bmi_height_cm").set_value(100.0)
    at.number_input(key="bmi_weight_kg").set_value(300.0).run()
    assert "outside the range the model knows (12 to 98)" in texts(at.error)
    assert at.button(key="bmi_use").disabled


def test_contradictory_answers_are_pointed_out(start, api_url: str) -> None:
    at = start(api_url)
    assert not at.main.warning
    widget(at, "GenHlth").set_value(1)
    widget(at, "PhysHlth").set_value(20).run()
    assert "You rated your health as excellent but had 20 days" in texts(at.warning)


def test_start_over_restores_the_defaults(start, api_url: str) -> None:
    at = start(api_url)
    widget(at, "Age").set_value(13)
    widget(at, "BMI").set_value(40.0).run()
    click(at, "reset")
    assert widget(at, "Age").value == 8
    assert widget(at, "BMI").value == 27.0


def page_text(at: AppTest) -> str:
    """Everything the page shows in text."""
    return "\n".join(texts(getattr(at, kind)) for kind in ("error", "warning", "info", "caption", "markdown"))


def test_service_down_gives_a_message_and_a_retry_that_recovers(
    start, down_api_url: str, api_url: str, monkeypatch, caplog
):
    at = click(start(down_api_url), "predict")
    assert "cannot be reached" in texts(at.error)
    assert not has_result(at)
    assert at.button(key="single_retry").label == "Try again"
    assert at.button(key="model_info_retry").label == "Check again"

    # The service's internal address maps the deployment for an attacker and means nothing to a user: log only.
    assert down_api_url.removeprefix("http://") not in page_text(at)
    logged = [r for r in caplog.records if r.name == "frontend.client"]
    assert logged
    assert all(r.api_url == down_api_url for r in logged)
    assert f"nothing answers at {down_api_url}" in logged[0].getMessage()

    monkeypatch.setenv("API_URL", api_url)  # the service is back
    click(at, "single_retry")
    assert has_result(at)
    assert "cannot be reached" not in texts(at.error)  # the sidebar asked again too
    assert "Tested on" in texts(at.sidebar.markdown)


def test_slow_service_times_out_with_a_message(start, slow_api_url: str) -> None:
    at = click(start(slow_api_url, UI_TIMEOUT_SECONDS="0.5"), "predict")
    assert "did not answer within 0.5 seconds" in texts(at.error)
    assert at.button(key="single_retry")
    assert not has_result(at)


def test_service_without_model_says_it_cannot_answer(start, unready_api_url: str) -> None:
    at = click(start(unready_api_url), "predict")
    assert "cannot make predictions right now" in texts(at.error)
    shown = page_text(at)
    assert unready_api_url.removeprefix("http://") not in shown
    assert "manifest.json" not in shown  # why the model is missing is for the people who run the service
    assert not has_result(at)


def test_missing_api_url_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "set the environment variable API_URL" in texts(at.error)


def batch_csv(rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["person", *FEATURE_NAMES])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def person(i: int, **changes: object) -> dict[str, object]:
    return {"person": f"p{i}", **DEFAULT_RECORD, **changes}


def upload(at: AppTest, content: bytes) -> AppTest:
    at.get_by_key("batch_file").set_value(("people.csv", content, "text/csv"))
    at.run()
    assert not at.exception
    return at


def has_result(at: AppTest) -> bool:
    shown = (texts(getattr(at, kind)) for kind in ("markdown", "info", "warning", "error"))  # coloured by level
    return any("Your estimated chance of having pre-diabetes or diabetes" in text for text in shown)


def table_with(at: AppTest, column: str):
    """The one data frame on the page that has `column` (the page also shows help and metrics tables)."""
    (frame,) = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def test_batch_upload_gives_a_predictions_table_to_download(start, api_url: str) -> None:
    at = upload(start(api_url), batch_csv([person(i, Age=1 + i % 13) for i in range(30)]))
    assert "30 rows read from people.csv" in texts(at.caption)
    click(at, "batch_predict")
    assert "30 rows predicted" in texts(at.success)
    table = table_with(at, "risk_level")
    assert len(table) == 30
    assert list(table["person"]) == [f"p{i}" for i in range(30)]
    assert set(table["risk_level"]) <= {level.value for level in ScreeningLevel}
    assert at.get_by_key("batch_download").label == "Download results (CSV)"


def test_the_batch_table_leads_with_the_users_id_and_names_the_class(start, api_url: str) -> None:
    """The table showed the class as a bare code (0, 1, 2) and the user's id column after the results."""
    at = click(upload(start(api_url), batch_csv([person(i, Age=1 + i % 13) for i in range(30)])), "batch_predict")
    table = table_with(at, "risk_level")
    assert list(table.columns[:4]) == ["person", "risk_level", "risk", "care_access"]
    assert list(table.columns[4 : 4 + len(FEATURE_NAMES)]) == list(FEATURE_NAMES)
    assert set(table["prediction"]) <= {c.label for c in CLASSES}


def test_a_large_batch_shows_its_first_rows_and_counts_them_all(start, api_url: str) -> None:
    """100,000 rows sent to the browser took 240 MB of the UI's memory; the download has every row."""
    rows = SHOWN_ROWS + 5
    at = click(upload(start(api_url), batch_csv([person(i) for i in range(rows)])), "batch_predict")
    assert f"{rows:,} rows predicted" in texts(at.success)
    assert len(table_with(at, "risk_level")) == SHOWN_ROWS
    assert f"The first {SHOWN_ROWS:,} of {rows:,} rows; the download has them all." in texts(at.caption)


def test_batch_with_bad_values_lists_row_column_value_and_reason(start, api_url: str) -> None:
    rows = [person(i) for i in range(5)]
    rows[2] = person(2, Income=9)
    at = click(upload(start(api_url), batch_csv(rows)), "batch_predict")
    assert "1 value(s) in 1 row(s) need fixing" in texts(at.error)
    problems = table_with(at, "Problem")
    assert list(problems.columns) == ["Row", "Column", "Value", "Problem"]
    assert problems.iloc[0][["Row", "Column", "Value"]].tolist() == [3, "Income", "9"]
    assert problems.iloc[0]["Problem"]


def test_batch_file_without_the_columns_is_refused(start, api_url: str) -> None:
    at = upload(start(api_url), b"name,age\nann,40\n")
    assert f"lacks {len(FEATURE_NAMES)} required column(s)" in texts(at.error)


def test_batch_with_service_down_offers_a_retry(start, down_api_url: str) -> None:
    at = click(upload(start(down_api_url), batch_csv([person(0)])), "batch_predict")
    assert "cannot be reached" in texts(at.error)
    assert at.button(key="batch_retry").label == "Try again"


def test_the_batch_table_leads_with_the_level_the_risk_and_the_care_note(start, api_url: str) -> None:
    """Not with "Chance: No diabetes 96%": the class columns are the model's for the answers as given."""
    rows = [person(0), person(1, CholCheck=0, AnyHealthcare=0)]
    at = click(upload(start(api_url), batch_csv(rows)), "batch_predict")
    (element,) = [d for d in at.dataframe if "risk_level" in d.value.columns]
    assert list(element.proto.column_order)[:4] == ["person", "risk_level", "risk", "care_access"]
    assert element.value["care_access"].tolist() == ["", "not checked in 5 years; no coverage"]
    labels = {name: column.get("label") for name, column in json.loads(element.proto.columns).items()}
    assert labels["care_access"] == "Outside care"
    assert all(labels[f"proba_{c.id}"].startswith("As given:") for c in CLASSES)
