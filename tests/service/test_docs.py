"""`/docs` without a CDN (a CDN could change what runs in the reader's browser), switchable, and counted under its
own route label."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import docs
from service.docs import SWAGGER_UI


def test_the_docs_page_loads_swagger_ui_from_the_service(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert loaded, page.text
    for url in loaded:
        assert url.startswith("/docs/"), url  # same origin: nothing from a CDN
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content == (SWAGGER_UI / Path(url).name).read_bytes()
    assert "url: '/openapi.json'" in page.text


def test_only_the_pages_own_files_are_served(client: TestClient) -> None:
    for name in ("LICENSE", "..%2Fdocs.py", "swagger-ui.js"):
        answer = client.get(f"/docs/{name}")
        assert answer.status_code == 404, name
        assert answer.json()["error"] == "not_found"


def test_docs_and_schema_can_be_switched_off(make_client: Any, trained_model_dir: Path) -> None:
    client = make_client(MODEL_URI=str(trained_model_dir), docs_enabled=False)
    for path in ("/docs", "/docs/swagger-ui.css", "/openapi.json"):
        assert client.get(path).status_code == 404, path
    assert client.post("/predict", json={}).status_code == 422


def test_docs_and_schema_requests_have_their_own_route_label(client: TestClient) -> None:
    client.get("/docs")
    client.get("/docs/swagger-ui.css")
    client.get("/openapi.json")
    metrics = client.get("/metrics").text
    for route in ("/docs", "/docs/{asset}", "/openapi.json"):
        assert f'http_requests_total{{method="GET",route="{route}",status="200"}} 1.0' in metrics, route
    assert 'route="unmatched"' not in metrics


def test_the_openapi_document_is_rendered_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review 17, N4: FastAPI's own route rendered the document's JSON for every request (2.7 times a `/health`),
    and 100 clients fetching it took other clients' 1,000-record batches past 2 s. Rendered once, as served."""
    renders: list[int] = []
    render = docs.JSONResponse

    def counted(content: Any) -> Any:
        renders.append(1)
        return render(content)

    monkeypatch.setattr(docs, "JSONResponse", counted)
    client.app.state.openapi_document = None  # type: ignore[attr-defined]  # (another test may have had it rendered)
    answers = [client.get("/openapi.json") for _ in range(3)]
    assert len(renders) == 1  # the old route: 3
    assert {answer.content for answer in answers} == {answers[0].content}
    assert answers[0].headers["content-type"] == "application/json"
    assert answers[0].json() == client.app.openapi()  # type: ignore[attr-defined]
