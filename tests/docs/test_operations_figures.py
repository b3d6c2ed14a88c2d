"""The operator's pages quote the service's limits and the stacks' stop timing by hand: each figure must be the
code's, or a change leaves the pages behind (review 4, R4-9 and R4-10: a 30 s body deadline where the code has
120 s, "the longest idle are closed" where silent connections go first, a rate example with no margin)."""

from __future__ import annotations

import pytest

from service.server import BACKLOG_ACCEPT_SECONDS
from service.settings import BODY_RATE_WINDOW_SECONDS, DROPPABLE_BODY_BYTES_PER_SECOND, Settings
from stacks.service_limits import MIB, service_limits
from stacks.workloads import PRE_STOP_SECONDS, STOP_SECONDS
from tests.docs.extensions import DOCS, ROOT

PAGES = {
    "operations": DOCS / "operations.md",
    "deploy": DOCS / "deploy.md",
    "readme": ROOT / "README.md",
    "api-guide": DOCS / "api-guide.md",
}
#: A full batch of compact JSON (about 330 KB), and the share of the body deadline an example rate may use.
BATCH_BYTES = 330_000
MARGIN = 0.75


def _text(page: str) -> str:
    return " ".join(PAGES[page].read_text(encoding="utf-8").split())


def _default(name: str) -> object:
    return Settings.model_fields[name].default


@pytest.mark.parametrize("page", ["operations", "deploy"])
def test_the_body_deadline_is_the_services(page: str) -> None:
    seconds = _default("body_timeout_seconds")
    assert isinstance(seconds, float)
    text = _text(page)
    assert f"body ({seconds:g} s)" in text or f"within {seconds:g} s (408" in text
    assert "within 30 s (408)" not in text
    assert "body (30 s)" not in text


@pytest.mark.parametrize("page", ["operations", "deploy", "readme"])
def test_no_page_says_the_longest_idle_connections_are_closed_first(page: str) -> None:
    """The service closes connections that have not sent a request first, keep-alive ones last."""
    text = _text(page)
    assert "longest idle are closed" not in text
    assert "longest idle closed" not in text


@pytest.mark.parametrize("page", ["operations", "api-guide"])
def test_the_rate_under_which_a_body_may_be_dropped_for_room_is_the_services(page: str) -> None:
    """Review 10, R10-1: the pages quote the rate under which a body still arriving may be dropped to make room in
    `max_pending_body_bytes`, and the window it is judged on."""
    text = _text(page)
    assert f"slower there than {DROPPABLE_BODY_BYTES_PER_SECOND // 1024} KB/s" in text
    assert f"last {BODY_RATE_WINDOW_SECONDS:g}-{2 * BODY_RATE_WINDOW_SECONDS:g} s" in text
    if page == "operations":
        assert f"({service_limits(512).max_pending_body_bytes // MIB} MiB on the 512 MiB task)" in text


def test_the_rate_a_full_batch_needs_leaves_a_margin_in_the_body_deadline() -> None:
    seconds = _default("body_timeout_seconds")
    assert isinstance(seconds, float)
    text = _text("operations")
    rate_kb = 4
    assert f"needs {rate_kb} KB a second to arrive with a margin" in text
    assert BATCH_BYTES / (rate_kb * 1000) <= MARGIN * seconds
    description = Settings.model_fields["body_timeout_seconds"].description
    assert description is not None
    assert f"arrive at {rate_kb} KB a second" in description


def test_the_stop_is_described_as_the_code_does_it() -> None:
    text = _text("operations")
    assert f"taken for at most {BACKLOG_ACCEPT_SECONDS * 1000:g} ms" in text
    assert "are reset" in text
    assert f"each pod first sleeps {PRE_STOP_SECONDS} s" in text
    assert f"`terminationGracePeriodSeconds` is {PRE_STOP_SECONDS + STOP_SECONDS} s" in text
    assert f"stop timeout ({_default('stop_timeout_seconds'):g} s" in text or f"{STOP_SECONDS} s stop timeout" in text


def test_the_memory_limits_quoted_are_what_the_stacks_derive() -> None:
    small, large = service_limits(512), service_limits(1024)
    text = _text("operations")
    assert (
        f"for the default 512 MiB task {small.max_requests_in_flight} in flight, "
        f"{small.max_pending_body_bytes // MIB} MiB of bodies, {small.max_head_bytes_buffered // MIB} MiB of heads, "
        f"{small.max_unsent_answer_bytes // MIB} MiB of answers and {small.max_connections} connections of "
        f"{small.send_buffer_bytes // 1024} KiB buffers; {large.max_requests_in_flight} in flight and "
        f"{large.max_connections} connections of {large.send_buffer_bytes // 1024} KiB at 1 GiB"
    ) in text
    assert f"{small.max_requests_in_flight} in flight at 512 MiB" in _text("deploy")
