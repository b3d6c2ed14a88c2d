"""The page: a form for one person, a batch tab for a CSV file, and the service's status in the sidebar.

Every call to the service goes through `frontend.client`; its errors are shown as plain messages with a way to
try again, and anything unexpected is logged and shown as a short apology, never as a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from frontend import about
from frontend.batch import (
    BatchOutcome,
    CsvFileError,
    CsvTable,
    cached_read,
    csv_file,
    errors_frame,
    predict_table,
    results_frame,
)
from frontend.client import ApiClient, ApiError
from frontend.form import Answers, render_form, reset_answers
from frontend.result import render_prediction
from frontend.settings import Settings
from ml.contract import ModelResponse, PredictionResponse
from ml.manifest import ScreeningLevel
from ml.schema import CLASSES, DEFAULT_RECORD, FEATURES, FEATURES_BY_NAME

logger = logging.getLogger("frontend")

TITLE = "Diabetes screening"
#: Rows of a batch's results shown on the page (the download has them all).
SHOWN_ROWS = 1_000


@dataclass(frozen=True)
class SingleOutcome:
    """The last answer to "Predict": the answers it was for, and a result or the error to show."""

    answers: Answers
    result: PredictionResponse | None
    error: ApiError | None


@dataclass(frozen=True)
class BatchRun:
    """The last batch run: which file it was for, and its outcome or the error to show."""

    digest: str
    outcome: BatchOutcome | None
    error: ApiError | None


@st.cache_resource(show_spinner=False)
def _client(base_url: str, timeout_seconds: float, connect_timeout_seconds: float) -> ApiClient:
    return ApiClient(base_url, timeout_seconds=timeout_seconds, connect_timeout_seconds=connect_timeout_seconds)


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon=":material/health_and_safety:", layout="wide")
    st.set_option("client.showErrorDetails", "none")
    st.set_option("client.toolbarMode", "minimal")
    # The tables' own "Download as CSV" would write the user's cells as they are (formulas included): the app's
    # download buttons write them neutralised (`frontend.batch.csv_file`).
    st.set_option("client.disableDataExport", True)
    try:
        settings = Settings()  # type: ignore[call-arg]  # API_URL comes from the environment
    except ValidationError as exc:
        st.error(
            "This app is not configured: set the environment variable API_URL to the prediction service's address, "
            f"for example API_URL=http://127.0.0.1:8000 (problem: {_first_error(exc)})."
        )
        return
    client = _client(settings.base_url, settings.timeout_seconds, settings.connect_timeout_seconds)
    try:
        _page(client, settings)
    except Exception:
        logger.exception("unexpected error while drawing the page")
        st.error(
            "Something went wrong in this app. Reload the page to start again; if it keeps happening, tell the "
            "people who run it."
        )


def _page(client: ApiClient, settings: Settings) -> None:
    st.title(TITLE)
    info = _model_info(client)
    intro = about.intro(info if isinstance(info, ModelResponse) else None)
    if isinstance(info, ModelResponse) and info.synthetic:
        st.error(intro, icon=":material/science:")
    else:
        st.markdown(intro)
    single, many = st.tabs(["One person", "Many people (CSV file)"])
    with single:
        _single_tab(client)
    with many:
        _batch_tab(client, settings)
    with st.sidebar:
        _service_status(_model_info(client))  # asked again if a prediction just showed the service is back


def _single_tab(client: ApiClient) -> None:
    answers = render_form()
    predict_col, reset_col, _ = st.columns([1, 1, 4])
    predict = predict_col.button("Predict", type="primary", key="predict", width="stretch")
    reset_col.button("Start over", key="reset", on_click=reset_answers, width="stretch")
    last: SingleOutcome | None = st.session_state.get("single_outcome")
    retry = last is not None and last.error is not None and _pressed("single_retry")
    if predict or retry:
        last = _predict_one(client, answers)
        st.session_state["single_outcome"] = last
        if last.result is not None and isinstance(st.session_state.get("model_info"), ApiError):
            del st.session_state["model_info"]  # the service is back: let the sidebar ask again
    if last is None:
        return
    if last.error is not None:
        _show_failure(last.error, "single_retry")
    elif last.result is not None:
        render_prediction(last.result, stale=last.answers != answers)


def _predict_one(client: ApiClient, answers: Answers) -> SingleOutcome:
    record = {name: int(v) if FEATURES_BY_NAME[name].integer else v for name, v in answers.items()}
    with st.spinner("Asking the model..."):
        try:
            return SingleOutcome(answers, client.predict(record, explain=True), None)
        except ApiError as exc:
            return SingleOutcome(answers, None, exc)


def _batch_tab(client: ApiClient, settings: Settings) -> None:
    st.markdown(
        f"Upload a CSV file with one row per person and a header naming the {len(FEATURES)} columns below (other "
        "columns are kept and returned untouched). Each row is checked; you get either a list of the values to fix, "
        "with their row number, or a table of predictions to download."
    )
    with st.expander(f"The {len(FEATURES)} columns and their allowed values"):
        st.dataframe(_columns_help(), hide_index=True, width="stretch")
    template = pd.DataFrame([dict(DEFAULT_RECORD)])
    _download_csv("Download an example file", template, "diabetes-screening-example.csv", key="batch_template")
    uploaded = st.file_uploader("CSV file", type=["csv"], key="batch_file", max_upload_size=settings.upload_limit_mb)
    if uploaded is None:
        return
    content = uploaded.getvalue()
    try:
        table = cached_read(st.session_state, content, max_rows=settings.batch_max_rows)
    except CsvFileError as exc:
        st.error(str(exc))
        return
    st.caption(f"{table.row_count:,} rows read from {uploaded.name}.")
    digest = hashlib.sha256(content).hexdigest()
    last: BatchRun | None = st.session_state.get("batch_run")
    if last is not None and last.digest != digest:
        last = None
    retry = last is not None and last.error is not None and _pressed("batch_retry")
    if st.button("Predict all rows", type="primary", key="batch_predict") or retry:
        last = _predict_many(client, table, digest)
        st.session_state["batch_run"] = last
    if last is None:
        return
    if last.error is not None:
        _show_failure(last.error, "batch_retry")
    elif last.outcome is not None and last.outcome.errors:
        _show_row_errors(last.outcome)
    elif last.outcome is not None:
        _show_predictions(table, last.outcome)


def _predict_many(client: ApiClient, table: CsvTable, digest: str) -> BatchRun:
    bar = st.progress(0.0, text="Sending rows to the model...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"{done:,} of {total:,} rows checked")

    try:
        batch_limit = client.model_info().batch_limit  # the service says how many records one request may hold
        outcome = predict_table(client, table, batch_size=batch_limit, progress=progress)
    except ApiError as exc:
        return BatchRun(digest, None, exc)
    finally:
        bar.empty()
    return BatchRun(digest, outcome, None)


def _show_row_errors(outcome: BatchOutcome) -> None:
    rows = {e.row for e in outcome.errors}
    st.error(
        f"{len(outcome.errors):,} value(s) in {len(rows):,} row(s) need fixing before any prediction is made. "
        "Row 1 is the first line under the header."
    )
    frame = errors_frame(outcome.errors)
    st.dataframe(frame, hide_index=True, width="stretch")
    _download_csv("Download the list of problems (CSV)", frame, "problems.csv", key="batch_errors_download")


def _show_predictions(table: CsvTable, outcome: BatchOutcome) -> None:
    frame = results_frame(table, outcome.predictions)
    counts = frame["risk_level"].value_counts()
    summary = ", ".join(f"{int(counts.get(level.value, 0)):,} {level.value}" for level in ScreeningLevel)
    st.success(f"{len(frame):,} rows predicted. Risk of pre-diabetes or diabetes: {summary}.")
    # Sending 100,000 rows to the browser took 240 MB of the UI's memory: the page shows the first ones.
    shown = _shown_results(table, frame.head(SHOWN_ROWS))
    st.dataframe(
        shown, hide_index=True, width="stretch", column_config=_RESULT_COLUMNS, column_order=list(shown.columns)
    )
    if len(frame) > SHOWN_ROWS:
        st.caption(f"The first {SHOWN_ROWS:,} of {len(frame):,} rows; the download has them all.")
    _download_csv("Download results (CSV)", frame, "predictions.csv", key="batch_download", primary=True)
    st.warning("These are screening estimates, not diagnoses.", icon=":material/medical_information:")


#: How the shown results are headed; the download keeps `ml.contract.RESULT_COLUMNS` as they are.
_RESULT_COLUMNS: dict[str, Any] = {
    "risk_level": st.column_config.TextColumn("Risk level"),
    "risk": st.column_config.NumberColumn("Risk of pre-diabetes or diabetes", format="percent"),
    "care_access": st.column_config.TextColumn(
        "Outside care",
        width="large",
        help="Why the person is outside the care system. Then a blood test is worth having whatever the level, "
        "and the estimate may be too low.",
    ),
    "prediction": st.column_config.TextColumn(
        "Class as given", help="The model's class for the answers as given; the risk and its level are what to act on."
    ),
    **{
        f"proba_{c.id}": st.column_config.NumberColumn(
            f"As given: {c.label}",
            help="The model's chance for the answers as given; the risk and its level are what to act on.",
            format="percent",
        )
        for c in CLASSES
    },
}


def _shown_results(table: CsvTable, results: pd.DataFrame) -> pd.DataFrame:
    """The results as a person reads them: their own columns (an id, a name) first, then the level, the risk and the
    care note, the answers, and last the model's class (by its label) and chances for the answers as given, which
    for a person outside care can say "No diabetes 96%" beside a raised level. Not the model version (the download
    has it)."""
    own = [name for name in table.columns if name not in FEATURES_BY_NAME]
    answers = [name for name in table.columns if name in FEATURES_BY_NAME]
    leading = ["risk_level", "risk", "care_access"]
    shown = results[[*own, *leading, *answers, *(f"proba_{c.id}" for c in CLASSES), "prediction"]]
    return shown.assign(prediction=shown["prediction"].map({c.id: c.label for c in CLASSES}))


def _model_info(client: ApiClient) -> ModelResponse | ApiError:
    """`GET /model`, asked once per session and again after a failure when the user asks (or a prediction works)."""
    info: ModelResponse | ApiError | None = st.session_state.get("model_info")
    if info is None or (isinstance(info, ApiError) and _pressed("model_info_retry")):
        try:
            info = client.model_info()
        except ApiError as exc:
            info = exc
        st.session_state["model_info"] = info
    return info


def _service_status(info: ModelResponse | ApiError) -> None:
    st.header("About the model")
    if isinstance(info, ApiError):
        _show_failure(info, "model_info_retry", "Check again")
        return
    if info.synthetic:
        st.error("Trained on **made-up (synthetic) data**: its results are examples only.", icon=":material/science:")
    else:
        st.markdown(about.learnt_from(info))
    st.markdown("\n".join(f"- {sentence}" for sentence in about.track_record(info)))
    st.caption(f"Version {info.model_version}, trained {info.created_at:%Y-%m-%d}.")


def _columns_help() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Column": [f.name for f in FEATURES],
            "Question": [f.question for f in FEATURES],
            "Allowed values": [f.allowed_values() for f in FEATURES],
        }
    )


def _show_failure(error: ApiError, retry_key: str, retry_label: str = "Try again") -> None:
    """The error in plain words and a button to try again (read back with `_pressed` on the next run)."""
    st.error(error.message, icon=":material/cloud_off:")  # the details (the service's address) are in the log
    st.button(retry_label, key=retry_key)


def _pressed(key: str) -> bool:
    """Whether the button `key` was clicked to start this run; readable before the button is drawn again."""
    return bool(st.session_state.get(key, False))


def _download_csv(label: str, frame: pd.DataFrame, file_name: str, *, key: str, primary: bool = False) -> None:
    """A download button that does not rerun the page (the shown results stay as they are); the file is written
    (neutralised, `frontend.batch.csv_file`) when it is clicked, not on every rerun."""
    st.download_button(
        label,
        functools.partial(csv_file, frame),
        file_name=file_name,
        mime="text/csv",
        type="primary" if primary else "secondary",
        key=key,
        on_click="ignore",
    )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
    return f"{where}: {error.get('msg', 'invalid')}"
