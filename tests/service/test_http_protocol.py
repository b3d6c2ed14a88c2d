"""What uvicorn answers itself, on a real server started as `make serve` starts it (`service.http_protocol`).

Issue 15: slow clients were never timed out, uvicorn's own 400s were plain text, and every answer said
`server: uvicorn`. Deadlines are shortened to 1 s here so the tests wait little. Responses leave in one write
(`CoalescedWrites`): checked on a fake transport, and on the real server with pipelined and large answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.http_protocol import CoalescedWrites
from tests.service.helpers import Server, record, serving

QUICK = {"SERVICE_HEADER_TIMEOUT_SECONDS": "1", "SERVICE_BODY_TIMEOUT_SECONDS": "1"}


@pytest.fixture(scope="module")
def quick_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with serving(str(trained_model_dir), log, settings=QUICK) as server:
        yield server


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read `count` responses from one connection, in order (one may arrive in the same packet as the next): the
    status, headers and body (Content-Length bytes) of each."""
    answers = []
    with sock.makefile("rb") as stream:
        for _ in range(count):
            status_line = stream.readline()
            assert status_line, "the connection closed before an answer"
            headers = {}
            while (line := stream.readline().decode("latin-1").strip()) != "":
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            answers.append((int(status_line.split()[1]), headers, stream.read(int(headers.get("content-length", 0)))))
    return answers


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    return _answers(sock, 1)[0]


def _error(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"] == "application/json", (status, headers, body)
    answer: dict[str, Any] = json.loads(body)
    assert set(answer) == {"error", "reason", "errors", "request_id"}
    assert answer["request_id"] == headers["x-request-id"]
    return answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /health?q=" + b"a" * 81_920 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["bad-content-length", "transfer-encoding-and-content-length", "80-kb-query", "unknown-method"],
)
def test_malformed_requests_get_the_json_error_shape(quick_server: Server, request_bytes: bytes) -> None:
    with _connect(quick_server) as sock:
        sock.sendall(request_bytes)
        status, headers, body = _answer(sock)
    assert status == 400
    answer = _error(status, headers, body)
    assert answer["error"] == "bad_request"
    assert answer["errors"][0]["field"] == "request"
    assert "not valid HTTP/1.1" in answer["reason"]


def test_a_trickled_head_is_cut_off_with_408(quick_server: Server) -> None:
    with _connect(quick_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line that ends the head
        status, headers, body = _answer(sock)
        assert sock.recv(1) == b""  # closed
    assert status == 408
    assert _error(status, headers, body)["error"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed(quick_server: Server) -> None:
    with _connect(quick_server) as sock:
        assert sock.recv(1) == b""


def test_a_trickled_body_is_cut_off_with_408(quick_server: Server) -> None:
    with _connect(quick_server) as sock:
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        sock.sendall(head + b'{"HighBP"')
        status, headers, body = _answer(sock)
    assert status == 408
    answer = _error(status, headers, body)
    assert answer["error"] == "request_timeout"
    assert "did not arrive within 1 s" in answer["reason"]


def test_an_idle_keep_alive_connection_outlives_the_head_deadline(quick_server: Server) -> None:
    """Between requests only uvicorn's keep-alive timeout (75 s) applies: the load balancer reuses connections."""
    with _connect(quick_server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _answer(sock)[0] == 200
            time.sleep(2)


def test_no_server_header(quick_server: Server) -> None:
    with _connect(quick_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        _, headers, _ = _answer(sock)
    assert "server" not in headers


def test_over_the_concurrency_limit_is_a_json_503(trained_model_dir: Path, tmp_path: Path) -> None:
    limited = serving(str(trained_model_dir), tmp_path / "server.log", options=["--limit-concurrency", "2"])
    with limited as server, _connect(server) as first, _connect(server) as second:
        first.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # an open connection, still sending its head
        second.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = _answer(second)
    assert status == 503
    assert headers["retry-after"] == "1"
    assert _error(status, headers, body)["error"] == "overloaded"


class _RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _coalesced() -> tuple[CoalescedWrites, _RecordingTransport, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    transport = _RecordingTransport()
    return CoalescedWrites(transport, loop), transport, loop  # type: ignore[arg-type]


def test_a_response_head_and_body_leave_in_one_write() -> None:
    coalesced, transport, loop = _coalesced()
    try:
        coalesced.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        coalesced.write(memoryview(b"{}"))
        assert transport.sent == []  # nothing until the answering task yields
        loop.run_until_complete(asyncio.sleep(0))
        assert transport.sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        assert coalesced.get_extra_info("peername") == "info:peername"  # the rest is the transport's own
    finally:
        loop.close()


def test_pending_bytes_go_before_a_close_and_at_once_past_the_flush_size() -> None:
    coalesced, transport, loop = _coalesced()
    try:
        big = b"x" * CoalescedWrites.FLUSH_BYTES
        coalesced.write(b"head")
        coalesced.write(big)
        assert transport.sent == [b"head" + big]  # a large or streamed body does not wait
        coalesced.write(b"last")
        coalesced.close()
        assert transport.sent[-1] == b"last"
        assert transport.closed
        loop.run_until_complete(asyncio.sleep(0))  # the scheduled flush finds nothing left, and no open transport
        assert len(transport.sent) == 2
    finally:
        loop.close()


def test_bytes_for_a_lost_connection_are_dropped() -> None:
    coalesced, transport, loop = _coalesced()
    try:
        coalesced.write(b"answer")
        transport.closed = True  # the peer went away before the loop turned
        loop.run_until_complete(asyncio.sleep(0))
        assert transport.sent == []
    finally:
        loop.close()


def test_pipelined_requests_are_answered_whole_and_in_order(quick_server: Server) -> None:
    body = json.dumps(record()).encode()
    predict = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with _connect(quick_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + predict + b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = _answers(sock, 3)
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert json.loads(answers[0][2]) == {"status": "ok"}
    assert "screening" in json.loads(answers[1][2])
    assert json.loads(answers[2][2])["status"] == "ready"


def test_a_large_answer_arrives_whole(quick_server: Server) -> None:
    with _connect(quick_server) as sock:
        sock.sendall(b"GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = _answer(sock)
    assert status == 200
    assert len(body) == int(headers["content-length"]) > CoalescedWrites.FLUSH_BYTES
