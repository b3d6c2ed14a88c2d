"""The external security test of the merged service (docs: `service-review-1`, findings F1-F14): each attack on a
real `python -m service`, and what the service must answer now.

Deadlines are 1 s (`QUICK`) where a test would otherwise wait for them, and 10 s where a test must tell a limit
from a deadline.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.helpers import Server, connect, metric, read_answer, read_answers, record, serving, wait_ready
from tests.service.test_http_protocol import QUICK, _closed_by_server, _error, _refused

HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def _predict(body: bytes | None = None) -> bytes:
    body = body if body is not None else json.dumps(record()).encode()
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


def _chunked(path: bytes, body: bytes, trailer: bytes = b"", content_type: bool = True) -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" % path
    head += b"Content-Type: application/json\r\n\r\n" if content_type else b"\r\n"
    return head + b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(body), body, trailer)


def _rss_mb(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) / 1024


@pytest.fixture(scope="module")
def quick(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with serving(str(trained_model_dir), log, settings=QUICK) as server:
        yield server


# -- F1: blank lines before a request ---------------------------------------------------------------------------


def test_a_stream_of_blank_lines_is_refused_after_a_kilobyte(quick: Server) -> None:
    """F1: 8 MB of CRLF were fed to the parser 4 bytes per Python step (19 s of a frozen loop, uncounted)."""
    status, answer = _refused(quick, b"\r\n" * 4_000_000)
    assert status == 400
    assert "blank lines" in answer["reason"]


def test_a_few_blank_lines_before_a_request_are_skipped(quick: Server) -> None:
    with connect(quick) as sock:
        sock.sendall(b"\r\n\r\n\r\n" + HEALTH)
        assert read_answer(sock)[0] == 200
        sock.sendall(b"\r\n" * 200 + HEALTH + b"\r\n")  # between requests too, each run counted on its own
        assert read_answer(sock)[0] == 200
        sock.sendall(b"\r\n" * 200 + HEALTH)
        assert read_answer(sock)[0] == 200


# -- F14: a header line is counted while it arrives ---------------------------------------------------------------


def test_an_unterminated_long_header_line_is_refused_at_once(quick: Server) -> None:
    """F14: a 40 KB header line that never ended got a 408 after the head deadline, not a 431."""
    started = time.monotonic()
    status, answer = _refused(quick, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 40_000)
    assert (status, answer["error"]) == (431, "headers_too_large")
    assert "X-Long" in answer["reason"] or "header line" in answer["reason"]
    assert time.monotonic() - started < 0.9  # before the 1 s head deadline


def test_an_unterminated_long_request_line_is_refused_at_once(quick: Server) -> None:
    status, answer = _refused(quick, b"GET /health?q=" + b"a" * 20_000)
    assert (status, answer["error"]) == (414, "uri_too_long")


# -- F2, F4: chunked bodies, their framing and their trailers ------------------------------------------------------


def test_a_trailer_line_past_the_header_line_limit_is_refused(quick: Server) -> None:
    """F2: one 16 MB trailer line held the loop 35.8 s (fed 4 KB at a time, its value grown with +=)."""
    request = _chunked(b"/predict", b"{}")[:-2] + b"X-T: " + b"a" * 4_000_000
    status, answer = _refused(quick, request)
    assert (status, answer["error"]) == (431, "headers_too_large")
    assert "trailer" in answer["reason"]


def test_chunk_framing_counts_against_the_body_limit(quick: Server) -> None:
    """F2: chunk extensions and framing were never counted: 3 MB of them around 3 KB of data passed."""
    chunk = b"1;" + b"e" * 900 + b"\r\n \r\n"
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, answer = _refused(quick, head + chunk * 3_500 + b"0\r\n\r\n")
    assert (status, answer["error"]) == (413, "body_too_large")


def test_trailers_never_become_request_headers(quick: Server) -> None:
    """F4: a trailer's Content-Type, X-Request-ID (and Authorization) were merged into the request's headers."""
    body = json.dumps(record()).encode()
    with connect(quick) as sock:
        sock.sendall(_chunked(b"/predict", body, b"Content-Type: application/json\r\n", content_type=False))
        status, headers, answer = read_answer(sock)
        assert status == 415, answer
        sock.sendall(_chunked(b"/predict", body, b"X-Request-ID: from-the-trailer\r\n"))
        status, headers, answer = read_answer(sock)
    assert status == 200, answer
    assert headers["x-request-id"] != "from-the-trailer"


def test_a_chunked_body_with_trailers_is_served_and_the_next_request_too(quick: Server) -> None:
    body = json.dumps(record()).encode()
    request = _chunked(b"/predict", body, b"X-Checksum: 1\r\nX-Other: 2\r\n")
    with connect(quick) as sock:
        sock.sendall(request + HEALTH)
        assert [status for status, _, _ in read_answers(sock, 2)] == [200, 200]
        for start in range(0, len(request), 5):  # framing split anywhere
            sock.sendall(request[start : start + 5])
        assert read_answer(sock)[0] == 200


# -- F3, F5: pipelined requests ----------------------------------------------------------------------------------


def test_a_pipelining_flood_is_read_no_faster_than_it_is_answered(quick: Server) -> None:
    """F3: the whole read buffer was parsed and each request queued: with a client reading its answers, 388,000
    requests queued in 10 s and RSS went 230 -> 931 MB. Now the next request is parsed once the one before is
    answered, and what the client sends meanwhile stays in the kernel's buffers."""
    before = _rss_mb(quick)
    flood = HEALTH * 500
    sock = connect(quick)
    sock.settimeout(None)

    def send() -> None:
        with contextlib.suppress(OSError):
            while True:
                sock.sendall(flood)

    def read() -> None:  # drains the answers meanwhile, until the test closes the connection (a reset then)
        with contextlib.suppress(OSError):
            sock.makefile("rb").read()

    for target in (read, send):
        threading.Thread(target=target, daemon=True).start()
    time.sleep(6)
    grown = _rss_mb(quick) - before
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    assert grown < 40, f"RSS grew {grown:.0f} MB under a pipelining flood"
    with connect(quick) as sock:  # and the server still answers
        sock.sendall(HEALTH)
        assert read_answer(sock)[0] == 200


def test_a_valid_request_before_one_past_a_head_limit_is_answered_first(quick: Server) -> None:
    """F5: a batch then a request with 101 headers in one packet: its client got only the 431."""
    batch = json.dumps({"records": [record(Age=1 + i % 13) for i in range(300)]}).encode()
    first = b"POST /predict/batch?explain=true HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    first += b"Content-Length: %d\r\n\r\n%s" % (len(batch), batch)
    second = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n"
    with connect(quick) as sock:
        sock.settimeout(60)
        sock.sendall(first + second)
        (status, _, body), (refused, headers, error) = read_answers(sock, 2)
    assert status == 200, body
    assert len(json.loads(body)["predictions"]) == 300
    assert (refused, _error(refused, headers, error)["error"]) == (431, "headers_too_large")


# -- F6: every parser error is a JSON 400 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_line", [b"CONNECT example.com:443 HTTP/1.1", b"GET http://[::1/ HTTP/1.1"], ids=["connect", "bad-url"]
)
def test_a_request_target_the_parser_cannot_split_is_a_json_400(quick: Server, request_line: bytes) -> None:
    """F6: no answer at all, and a 1.6 KB ERROR traceback in the log per request."""
    status, answer = _refused(quick, request_line + b"\r\nHost: x\r\n\r\n")
    assert (status, answer["error"]) == (400, "bad_request")
    assert "Traceback" not in quick.log.read_text()


# -- F7, F8: connections in a head, fresh connections, keep-alive ones ---------------------------------------------


@pytest.fixture(scope="module")
def crowded(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """At most 60 connections, 20 idle, 1 MB of heads in all; a 10 s head deadline (to tell a limit from it)."""
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    settings = {
        "SERVICE_MAX_CONNECTIONS": "60",
        "SERVICE_MAX_IDLE_CONNECTIONS": "20",
        "SERVICE_MAX_HEAD_BYTES_BUFFERED": "1048576",
    }
    soft_nofile = ["prlimit", "--nofile=1024:8192"]  # as the container tests run it
    with serving(str(trained_model_dir), log, settings=settings, command_prefix=soft_nofile) as server:
        yield server


def _held(server: Server, count: int, data: bytes, pause: float = 0.005) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = connect(server)
        if data:
            sock.sendall(data)
        held.append(sock)
        time.sleep(pause)
    time.sleep(0.3)
    return held


def test_connections_stuck_in_a_head_are_bounded_in_number(crowded: Server) -> None:
    """F7: 1,100 connections each refreshing an unfinished head locked out /health (nofile 1024); the oldest
    connections in a head are answered 503 `overloaded` (review 5, R5-7: a head may be a whole request) and closed
    past `max_connections`, and new clients are served."""
    held = _held(crowded, 100, b"GET /health HTTP/1.1\r\nX-A: a")
    try:
        closed = [_shed_with_503(sock) for sock in held]
        assert all(closed[:30]), "the oldest connections in a head were answered and closed"
        assert not any(closed[-20:]), "the newest were kept"
        with connect(crowded) as sock:
            sock.sendall(HEALTH)
            assert read_answer(sock)[0] == 200
    finally:
        for sock in held:
            sock.close()


def _shed_with_503(sock: socket.socket) -> bool:
    """Whether the server answered `sock` 503 `overloaded` (read without waiting), and closed it."""
    sock.setblocking(False)
    try:
        answer = sock.recv(65536)
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)
    sock.settimeout(5)
    with sock.makefile("rb") as stream:
        answer += stream.read()  # up to the server's close
    return answer.startswith(b"HTTP/1.1 503 ") and b'"error":"overloaded"' in answer


def test_the_bytes_of_unfinished_heads_have_a_global_budget(crowded: Server) -> None:
    """F7: 4,000 connections each holding a 63 KB unfinished head took RSS from 232 to 496 MB."""
    partial = b"GET /health HTTP/1.1\r\nHost: x\r\n" + (b"X-Filler: " + b"v" * 15_000 + b"\r\n") * 4
    held = _held(crowded, 40, partial)  # 60 KB each, 2.4 MB in all, against a 1 MB budget
    try:
        closed = [_closed_by_server(sock) for sock in held]
        assert all(closed[:20]), "the oldest unfinished heads were dropped"
        assert not any(closed[-10:])
    finally:
        for sock in held:
            sock.close()


def test_fresh_silent_connections_are_dropped_before_keep_alive_ones(crowded: Server) -> None:
    """F8: 600 silent connections a second pushed out a client's keep-alive connection, and its next POST failed."""
    kept = _held(crowded, 5, b"")
    for sock in kept:
        sock.sendall(HEALTH)
        assert read_answer(sock)[0] == 200
    silent = _held(crowded, 40, b"", pause=0.02)
    try:
        assert not any(_closed_by_server(sock) for sock in kept)
        for sock in kept:
            sock.sendall(_predict())
            assert read_answer(sock)[0] == 200
        deadline = time.monotonic() + 10  # the silent ones go once past their grace (`IDLE_GRACE_SECONDS`)
        while not all(_closed_by_server(sock) for sock in silent[:20]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_closed_by_server(sock) for sock in silent[:20])
        assert not any(_closed_by_server(sock) for sock in kept)
    finally:
        for sock in kept + silent:
            sock.close()


def test_the_open_file_limit_is_raised_to_its_hard_limit(crowded: Server) -> None:
    """F7: the service ran with the soft nofile of whoever started it (1,024 in the container tests)."""
    limits = Path(f"/proc/{crowded.process.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\S+)\s+(\S+)", limits).groups()  # type: ignore[union-attr]
    assert soft == hard


# -- F9: graceful shutdown ---------------------------------------------------------------------------------------


def test_connections_accepted_before_the_listener_closes_are_still_answered(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """F9: 16 requests were reset when the listener closed: connections accepted but without a head yet were
    closed at once. They get a grace period now, and the request that comes in it is answered (and closed)."""
    settings = {"SERVICE_DRAIN_SECONDS": "1", "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "5"}
    with serving(str(trained_model_dir), tmp_path / "server.log", settings=settings) as server:
        assert wait_ready(server.url).status_code == 200
        server.process.send_signal(signal.SIGTERM)
        opened = [connect(server) for _ in range(8)]  # during the drain, silent until the listener closed
        time.sleep(1.3)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health", timeout=2)
        answers = []
        for sock in opened:
            with sock, contextlib.suppress(OSError):
                sock.sendall(HEALTH)
                status, headers, _ = read_answer(sock)
                answers.append((status, headers.get("connection")))
        server.process.wait(10)
    assert answers == [(200, "close")] * 8


# -- F10: what the metrics and the logs count ----------------------------------------------------------------------


def test_a_client_that_goes_away_is_not_a_server_error(quick: Server) -> None:
    """F10: 50 clients that sent 1 byte of a 100-byte body and left were counted as 50 500s (the "any 5xx is a bug"
    alert fired), and the protocol's own 408s, 414s, 431s were neither counted nor logged."""
    before_500 = metric(quick, "http_requests_total", status="500")
    before_499 = metric(quick, "http_requests_total", status="499")
    for _ in range(5):
        with connect(quick) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            time.sleep(0.05)
    time.sleep(0.3)
    assert metric(quick, "http_requests_total", status="500") == before_500
    assert metric(quick, "http_requests_total", status="499") == before_499 + 5
    refused = metric(quick, "http_protocol_refusals_total", status="431")
    _refused(quick, b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 101 + b"\r\n")
    assert metric(quick, "http_protocol_refusals_total", status="431") == refused + 1
    assert '"status": 431' in quick.log.read_text()


def _logged_refusals(server: Server, status: int) -> tuple[int, int]:
    """The server's log lines of refusals with `status`, and how many refusals they tell of."""
    lines, told = 0, 0
    for line in server.log.read_text().splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("message") in ("refused", "refused_more") and entry.get("status") == status:
            lines += 1
            told += entry.get("count", 1)
    return lines, told


def test_a_flood_of_refusals_is_logged_as_counts_and_every_one_is_counted(quick: Server) -> None:
    """Issue 21, third review (9): each refusal was one log line, about 1,000 a second under a flood. Now each
    status and error gets its first refusal of a second in full and one line counting the rest; the lines still
    tell of every refusal, and the metrics count each one."""
    request = b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    started = time.monotonic()
    for _ in range(200):
        with connect(quick) as sock:
            sock.sendall(request)
            assert read_answer(sock)[0] == 414
    seconds = time.monotonic() - started
    refused = metric(quick, "http_protocol_refusals_total", status="414")
    assert refused >= 200
    deadline = time.monotonic() + 5
    while (logged := _logged_refusals(quick, 414))[1] < refused:  # the last second's count comes at its end
        assert time.monotonic() < deadline, (logged, refused)
        time.sleep(0.1)
    assert logged[1] == refused
    assert logged[0] <= 2 * (seconds + 2), f"{logged[0]} lines for {refused:g} refusals in {seconds:.1f} s"


# -- informational: requests HTTP/1.1 does not allow -----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # review 16, F5: was answered 200
        b"GET /health HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a, b\r\n\r\n",  # review 17, N5: two values folded into one
        b"GET /health HTTP/1.1\r\nHost: a/b\r\n\r\n",
    ],
    ids=["no-host", "http-2.0-line", "http-0.9", "two-hosts", "two-hosts-http-1.0", "folded-hosts", "host-with-a-path"],
)
def test_requests_http_1_1_does_not_allow_are_a_json_400(quick: Server, request_bytes: bytes) -> None:
    """RFC 9112 3.2: no Host, or more than one, is a 400."""
    status, answer = _refused(quick, request_bytes)
    assert (status, answer["error"]) == (400, "bad_request")


@pytest.mark.parametrize("host", [b"x", b"api.example.com:8080", b"10.0.0.1", b"[::1]:8000", b""])
def test_hosts_as_clients_send_them_are_served(quick: Server, host: bytes) -> None:
    """What `_check_host` does not count: names, ports, IPv4 and IPv6 literals, and the empty Host RFC 9112 allows."""
    with connect(quick) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        assert read_answer(sock)[0] == 200


def test_http_1_0_without_host_is_still_served(quick: Server) -> None:
    with connect(quick) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert read_answer(sock)[0] == 200
