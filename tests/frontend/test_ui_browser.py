"""End to end in headless Chromium: a real `streamlit run` server, talking to the real service.

Skipped only when /usr/bin/chromium is missing and REQUIRE_BROWSER_TESTS is not 1; CI sets it, so there a missing
browser fails the run instead of hiding the test.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_servers import running, streamlit_command

from frontend.client import ApiClient
from frontend.result import headline, level_sentence, percent, prediabetes_sentence, risk_sentence
from ml.schema import DEFAULT_RECORD
from tests.servers import free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Tall enough for the form and the answer on one screenshot (Streamlit scrolls inside the page, not the window).
VIEWPORT = {"width": 1400, "height": 2700}


def plain(markdown: str) -> str:
    """Text as the browser shows a Markdown sentence (bold marks gone)."""
    return markdown.replace("**", "")


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
        if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
            pytest.fail(f"{message} (REQUIRE_BROWSER_TESTS=1 forbids skipping)")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def ui_url(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with running(streamlit_command(port), f"{url}/_stcore/health", env={"API_URL": api_url}, log=log):
        yield url


def test_fill_the_form_predict_and_read_the_answer(chromium: Path, ui_url: str, api_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    answers = {**DEFAULT_RECORD, "HighBP": 1, "DiffWalk": 1, "BMI": 34.5, "Age": 11}
    expected = ApiClient(api_url, timeout_seconds=10, connect_timeout_seconds=2).predict(answers, explain=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(ui_url)
            predict = page.get_by_role("button", name="Predict", exact=True)
            expect(predict).to_be_visible(timeout=30_000)

            page.locator(".st-key-answer_HighBP").get_by_text("Yes", exact=True).click()
            page.locator(".st-key-answer_DiffWalk").get_by_text("Yes", exact=True).click()
            bmi = page.locator(".st-key-answer_BMI input")
            bmi.fill("34.5")
            bmi.press("Tab")
            page.locator(".st-key-answer_Age").click()
            page.get_by_role("option", name="70-74", exact=True).click()
            expect(page.locator(".st-key-answer_Age input")).to_have_value("70-74")
            page.wait_for_timeout(500)  # let the last rerun settle before pressing the button
            predict.click()

            result = page.locator(".st-key-prediction_result")
            screening = expected.screening
            chance = f"Your estimated chance of having pre-diabetes or diabetes is {percent(screening.risk)}"
            expect(result).to_contain_text(chance, timeout=30_000)
            # The average is compared or stated, by level (`risk_sentence`): the whole sentence, not one wording.
            expect(result).to_contain_text(plain(risk_sentence(screening)))
            expect(result).to_contain_text(plain(headline(screening)))
            expect(result).to_contain_text(plain(level_sentence(screening)))
            expect(result).to_contain_text(plain(prediabetes_sentence(screening)))
            expect(result.locator('[data-testid="stVegaLiteChart"]')).to_have_count(1)
            text = result.inner_text()
            assert "Most likely status" not in text
            assert "points away" not in text
            assert text.count("this raised your estimate") + text.count("this lowered your estimate") == 5
            expect(result).to_contain_text("screening aid, not a diagnosis")
            expect(result).to_contain_text("Made-up model")  # the session's model learnt from synthetic rows
            expect(result).to_contain_text(f"Model version: {expected.model_version}")
            page.wait_for_timeout(1000)  # the chart draws after the text

            screenshot = tmp_path / "ui-prediction.png"
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 50_000


FORMULAS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1)", "\t=1+2"]


def _download(page: Any, key: str, folder: Path) -> list[dict[str, str]]:
    """Click the download button `key` and read the file the browser saved."""
    with page.expect_download(timeout=30_000) as download:
        page.locator(f".st-key-{key} button").click()
    path = folder / download.value.suggested_filename
    download.value.save_as(path)
    return list(csv.DictReader(io.StringIO(path.read_text(), newline="")))


def test_downloaded_csv_files_open_as_values_not_formulas(chromium: Path, ui_url: str, tmp_path: Path) -> None:
    """A cell such as `=cmd|...` from an upload must not run as a formula when the download is opened."""
    from playwright.sync_api import expect, sync_playwright

    good = tmp_path / "people.csv"
    good.write_text(_csv([{"id": text, **DEFAULT_RECORD} for text in FORMULAS]))
    bad = tmp_path / "bad-people.csv"
    bad.write_text(_csv([{"id": "p1", **DEFAULT_RECORD, "Sex": FORMULAS[0]}]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            page.goto(ui_url)
            page.get_by_role("tab", name="Many people (CSV file)").click()
            upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')

            upload.set_input_files(good)
            expect(page.get_by_text("4 rows read from people.csv")).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Predict all rows").click()
            predictions = _download(page, "batch_download", tmp_path)

            upload.set_input_files(bad)
            expect(page.get_by_text("1 rows read from bad-people.csv")).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Predict all rows").click()
            problems = _download(page, "batch_errors_download", tmp_path)
        finally:
            browser.close()
    assert [row["id"] for row in predictions] == [f"'{text}" for text in FORMULAS]
    assert {row["BMI"] for row in predictions} == {str(DEFAULT_RECORD["BMI"])}
    assert [(row["Column"], row["Value"]) for row in problems] == [("Sex", f"'{FORMULAS[0]}")]


def _csv(rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_the_api_docs_render_with_nothing_from_another_origin(chromium: Path, api_url: str) -> None:
    """A CDN could change the code `/docs` runs in the user's browser: every file is the service's own."""
    from playwright.sync_api import expect, sync_playwright

    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{api_url}/docs")
            expect(page.get_by_text("POST/predict/batch")).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    assert requested
    assert all(url.startswith(api_url) for url in requested), requested
