"""`Metrics.scrape`: what the scrapes of `/metrics` cost the event loop, however many come at once."""

from __future__ import annotations

import asyncio

import pytest

from service import observability
from service.observability import SCRAPE_RENDER_SECONDS, Metrics


def _counting_renders(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The loop time of each rendering of the registry's text."""
    renders: list[float] = []
    render = observability.generate_latest

    def counted(registry: object) -> bytes:
        renders.append(asyncio.get_running_loop().time())
        return render(registry)  # type: ignore[arg-type]

    monkeypatch.setattr(observability, "generate_latest", counted)
    return renders


def test_scrapes_at_once_share_one_rendering_and_renderings_are_spaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review 16, F7: each scrape rendered the registry's text on the event loop (10-35 ms), and 20-100 scrapers
    at once (never refused) held `/health` 0.4-2.2 s. Scrapes that arrive together share one rendering, begun after
    they arrived (a count made before a scrape is in its answer), and renderings begin `SCRAPE_RENDER_SECONDS`
    apart at least."""
    renders = _counting_renders(monkeypatch)

    async def scenario() -> None:
        metrics = Metrics()
        metrics.observe("GET", "/health", 200, 0.001)
        first = await asyncio.gather(*(metrics.scrape() for _ in range(50)))
        assert len(renders) == 1  # the old code: 50
        assert len(set(first)) == 1
        metrics.observe("GET", "/health", 200, 0.001)
        again = await asyncio.gather(*(metrics.scrape() for _ in range(50)))
        assert len(renders) == 2
        assert renders[1] - renders[0] >= SCRAPE_RENDER_SECONDS
        line = 'http_requests_total{method="GET",route="/health",status="200"} 2.0'
        assert line in again[0].decode()

    asyncio.run(scenario())


def test_a_scraper_gone_does_not_fail_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """What it does not count: a scrape cancelled (its client gone) while it waits leaves the rendering to the
    others."""
    renders = _counting_renders(monkeypatch)

    async def scenario() -> None:
        metrics = Metrics()
        gone = asyncio.ensure_future(metrics.scrape())
        staying = asyncio.ensure_future(metrics.scrape())
        await asyncio.sleep(0)
        gone.cancel()
        assert b"http_requests_total" in await staying
        assert len(renders) == 1

    asyncio.run(scenario())
