"""`/docs` without a CDN (a CDN could change what runs in the reader's browser), switchable, and counted under its
own route label."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

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
