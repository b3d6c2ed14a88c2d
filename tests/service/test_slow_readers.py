"""Clients slower than the service at taking their answers, on a real server started as `python -m service`.

Review 5: answers waiting for their clients were outside every budget, so 1,500 connections from one client, each
reading its 1,000-record batch's answer 2 KB every 3 s, held 393 MB on the 512 MiB task (R5-1); the kernel let a
connection's receive buffer grow to 1.3 MB behind an answer still being sent (R5-4); answers cut at the stop were
logged as 200 and nowhere else (R5-2). The limits here are tiny, so that one or two connections reach them.
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.http_protocol import answer_bytes_at_most
from service.settings import Settings
from tests.service.helpers import Server, metric, read_answer, record, serving, wait_ready

#: About 58 KB of answer for 100 records, far past the tiny buffers below.
RECORDS = 100
#: The kernel's buffers of the servers here (Linux doubles them): an answer of 58 KB waits in the service.
SOCKET_BUFFER = "4096"


#: Slow clients are not cut: no minimum rate, two minutes before a stalled answer is.
NOT_CUT = {
    "SERVICE_SEND_BUFFER_BYTES": SOCKET_BUFFER,
    "SERVICE_MIN_SEND_BYTES_PER_SECOND": "0",
    "SERVICE_SEND_TIMEOUT_SECONDS": "120",
}


def _started(
    trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, settings: dict[str, str]
) -> Iterator[Server]:
    """A real server with `settings`, its model loaded."""
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        wait_ready(server.url)
        yield server


def _batch_request(records: int = RECORDS) -> bytes:
    body = json.dumps({"records": [record(Age=1 + i % 13) for i in range(records)]}).encode()
    head = b"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


def _slow_client(server: Server) -> socket.socket:
    """A connection whose client takes little at a time (a 4 KB receive buffer), its batch sent."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(2)
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.sendall(_batch_request())
    return sock


def _dropped(log: str) -> list[dict[str, Any]]:
    """The `answer_dropped` lines of a server's log, and their `answer_dropped_more` counts."""
    return [json.loads(line) for line in log.splitlines() if '"answer_dropped' in line]


def _access_lines(log: str) -> list[dict[str, Any]]:
    """The access lines of a server's log (one per request the app handled)."""
    return [line for line in map(json.loads, log.splitlines()) if line.get("message") == "request"]


def _wait_for(condition_met: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition_met():
            return
        time.sleep(0.05)
    raise AssertionError(f"never {what}")


def _queues(server: Server, client: socket.socket) -> tuple[int, int] | None:
    """The server's (send, receive) queues of its connection to `client` (from /proc/net/tcp); None once closed."""
    server_port = int(server.url.rsplit(":", 1)[1])
    client_port = client.getsockname()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == server_port and int(fields[2].split(":")[1], 16) == client_port:
            if fields[3] != "01":  # 01: established
                return None
            sent, received = fields[4].split(":")
            return int(sent, 16), int(received, 16)
    return None


def _answer_held(server: Server, client: socket.socket) -> bool:
    """The answer to `client` started and waits for it: its first bytes are readable, the kernel's queue is full."""
    queues = _queues(server, client)
    return queues is not None and queues[0] > 0 and bool(select.select([client], [], [], 0)[0])


# -- R5-1: a budget of the answers held for slow clients -----------------------------------------------------------


@pytest.fixture(scope="module")
def budget_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Answers held past 64 KiB (the smallest budget) refuse new requests; slow clients are not cut by rate, nor
    dropped for the budget (their grace outlasts the tests)."""
    yield from _started(
        trained_model_dir,
        tmp_path_factory,
        {**NOT_CUT, "SERVICE_MAX_UNSENT_ANSWER_BYTES": str(64 * 1024), "SERVICE_SEND_GRACE_SECONDS": "120"},
    )


def test_answers_held_for_slow_clients_have_a_budget_past_which_new_requests_wait(budget_server: Server) -> None:
    """R5-1: answers were released from every budget once written, so slow readers piled them in the process
    (585 answers, 393 MB). Two slow clients' answers now pass the budget: a new request whose answer could be held
    (a batch larger than the kernel's send buffer takes, a path whose answer has no known bound) gets the JSON 503
    `overloaded` with `Retry-After` before its body is read while the holders are within their grace; the probes,
    the metrics and whatever the kernel's buffer takes whole (a single prediction, explained or not, a 1-record
    batch: refused, slow readers got 88% of others' `/predict` 503, review 6, R6-1, then 56 of 58 of their explained
    predictions and 1-record batches, review 7, R7-1) still answer; once the clients have gone, requests are served
    again."""
    holders = [_slow_client(budget_server) for _ in range(2)]
    try:
        _wait_for(lambda: all(_answer_held(budget_server, holder) for holder in holders), "held the answers")
        refused = [("POST", "/predict/batch", {"records": [record()] * 10}), ("GET", "/model", None)]
        for method, path, body in refused:
            response = httpx.request(method, f"{budget_server.url}{path}", json=body, timeout=10)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"] == "overloaded"
            assert response.headers["retry-after"] == "1"
        answered = [
            ("/predict", record()),
            ("/predict?explain=true", record()),
            ("/predict/batch", {"records": [record()]}),
        ]
        for path, body in answered:
            response = httpx.post(f"{budget_server.url}{path}", json=body, timeout=10)
            assert response.status_code == 200, (path, response.text)
        assert httpx.get(f"{budget_server.url}/health", timeout=10).status_code == 200
        assert httpx.get(f"{budget_server.url}/ready", timeout=10).status_code == 200
        assert metric(budget_server, "http_unsent_answer_bytes") > 64 * 1024
    finally:
        for holder in holders:
            holder.close()
    _wait_for(lambda: metric(budget_server, "http_unsent_answer_bytes") == 0, "released the answers")
    assert httpx.post(f"{budget_server.url}/predict", json=record(), timeout=10).status_code == 200
    assert '"answer_dropped"' not in budget_server.log.read_text()  # clients that leave are not answers cut


def test_an_answer_larger_than_the_budget_taken_at_once_is_served(budget_server: Server) -> None:
    """The budget refuses new requests, never the answer under way: a 1,000-record batch's answer, alone past the
    budget while the kernel takes it, is served whole, again and again, and leaves nothing counted."""
    for _ in range(3):
        response = httpx.post(f"{budget_server.url}/predict/batch", json={"records": [record()] * 1000}, timeout=30)
        assert response.status_code == 200
        assert len(response.content) > 64 * 1024
    assert metric(budget_server, "http_unsent_answer_bytes") == 0


# -- R7-1: the budget goes to who reads fastest ------------------------------------------------------------------


@pytest.fixture(scope="module")
def room_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The budget of `budget_server`, its holders past their grace after half a second, never cut by rate."""
    yield from _started(
        trained_model_dir,
        tmp_path_factory,
        {**NOT_CUT, "SERVICE_MAX_UNSENT_ANSWER_BYTES": str(64 * 1024), "SERVICE_SEND_GRACE_SECONDS": "0.5"},
    )


def _read_to_end(sock: socket.socket, start: bytes) -> bytes:
    """The answer whose first bytes were `start`, read to its last byte (its `Content-Length`)."""
    sock.settimeout(10)
    answer = start
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, _ = answer.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert length
    while len(answer) < len(head) + 4 + int(length.group(1)):
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before its answer's end"
        answer += chunk
    return answer


def _reset(sock: socket.socket) -> bool:
    """Whether the server reset the connection (read what is left of its answer until then)."""
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    return False


def test_a_full_budget_drops_its_slowest_holder_past_its_grace_rather_than_refuse_a_newcomer(
    room_server: Server,
) -> None:
    """R7-1: readers just above the minimum rate held the budget for as long as they read, and every other client's
    batches got 503. Now a newcomer whose answer may be held takes the room of the holder whose client received
    the least a second, once past its grace: the newcomer is answered, the holder that read nothing is reset (an
    `answer_dropped` line with its request id, `http_connections_shed_total{reason="unsent_budget"}`), the one that
    read part of its answer is not, and reads all of it."""
    stalled, reading = _slow_client(room_server), _slow_client(room_server)
    try:
        _wait_for(lambda: _answer_held(room_server, stalled) and _answer_held(room_server, reading), "held the answers")
        head = stalled.recv(512)  # its request id; the rest of its answer it never reads
        taken = b""
        while len(taken) < 16 * 1024:
            taken += reading.recv(65536)
        assert metric(room_server, "http_unsent_answer_bytes") > 64 * 1024
        time.sleep(0.6)  # both past their grace
        response = httpx.post(f"{room_server.url}/predict/batch", json={"records": [record()] * RECORDS}, timeout=10)
        assert response.status_code == 200, response.text
        assert _reset(stalled)
        answer = _read_to_end(reading, taken)
        assert answer.startswith(b"HTTP/1.1 200")
        assert len(json.loads(answer.partition(b"\r\n\r\n")[2])["predictions"]) == RECORDS
    finally:
        stalled.close()
        reading.close()
    assert metric(room_server, "http_connections_shed_total", reason="unsent_budget") == 1
    request_id = re.search(rb"x-request-id: (\w+)", head, re.IGNORECASE)
    assert request_id
    dropped = _dropped(room_server.log.read_text())
    assert [(line["limit"], line["request_id"]) for line in dropped] == [
        ("unsent_budget", request_id.group(1).decode())
    ]


def test_the_bound_on_an_answer_holds_for_the_longest_answers(budget_server: Server) -> None:
    """`answer_bytes_at_most` exempts what fits in the kernel's send buffer from the budget: it must bound real
    answers, head included. The longest records are those of people outside the care system (their `care_access`
    message), explained."""
    outside = record(CholCheck=0, AnyHealthcare=0, NoDocbcCost=1, GenHlth=5, BMI=45, Age=13, HighBP=1, HighChol=1)
    batch = {"records": [outside] * RECORDS}
    body = json.dumps(batch).encode()
    for path, explain in [("/predict", False), ("/predict", True), ("/predict/batch", False), ("/predict/batch", True)]:
        sent = outside if path == "/predict" else batch
        response = httpx.post(f"{budget_server.url}{path}", params={"explain": explain}, json=sent, timeout=30)
        assert response.status_code == 200, response.text
        size = len(response.content) + sum(len(name) + len(value) + 4 for name, value in response.headers.items())
        most = answer_bytes_at_most(path, explain, len(body), Settings())
        assert most is not None
        assert size + len("HTTP/1.1 200 OK\r\n\r\n") <= most, (path, explain, size, most)


# -- R5-1: a minimum rate for the answers held ------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_in_flight_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two requests handled at once; slow clients are not cut."""
    yield from _started(trained_model_dir, tmp_path_factory, {**NOT_CUT, "SERVICE_MAX_REQUESTS_IN_FLIGHT": "2"})


def test_slow_downloads_do_not_hold_the_places_in_flight(two_in_flight_server: Server) -> None:
    """Review 7, R7-4: a request held its place in flight until the app returned, and a streamed answer (the docs'
    1.7 MB script, `FileResponse`) returns only once its client has read it: 11 slow downloads took every place,
    `/predict` and `/metrics` answered 503. Its place is now freed when its answer starts; `/metrics` is admitted
    like the probes."""
    server = two_in_flight_server
    port = int(server.url.rsplit(":", 1)[1])
    readers = []
    try:
        for _ in range(2):  # as many as the places in flight, each once the one before has started
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n")
            readers.append(sock)
            _wait_for(lambda: _answer_held(server, sock), "held the download")  # noqa: B023 (called at once)
        for _ in range(3):
            assert httpx.post(f"{server.url}/predict", json=record(), timeout=10).status_code == 200
            assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200
    finally:
        for reader in readers:
            reader.close()


@pytest.fixture(scope="module")
def paced_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Answers held must leave at 20 KB/s after half a second."""
    paced = {"SERVICE_MIN_SEND_BYTES_PER_SECOND": "20000", "SERVICE_SEND_GRACE_SECONDS": "0.5"}
    yield from _started(trained_model_dir, tmp_path_factory, NOT_CUT | paced)


def _read_slowly(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Read 1 KB every 0.1 s (10 KB/s) for up to `seconds`: what came, and whether the server reset the connection."""
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            chunk = sock.recv(1024)
        except TimeoutError:  # nothing came for a while: read on
            continue
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, False
        received += chunk
    return received, False


def test_a_client_reading_slower_than_the_minimum_rate_is_cut_logged_and_counted(paced_server: Server) -> None:
    """R5-1: a client reading its answer at 700 B/s was never cut (14 minutes for a 580 KB answer). At 10 KB/s,
    under the 20 KB/s asked here, its connection is reset within seconds, one `answer_dropped` line names its
    request id, and `http_connections_shed_total{reason="send_rate"}` counts it. Review 7, R7-8: its access line
    and `http_requests_total` said 200, written as the app returned; now they say 499, once the answer is dropped."""
    with _slow_client(paced_server) as sock:
        received, reset = _read_slowly(sock, 20)
    assert reset, f"not cut: {len(received):,} bytes read"
    assert received.startswith(b"HTTP/1.1 200")
    request_id = re.search(rb"x-request-id: (\w+)", received, re.IGNORECASE)
    assert request_id
    _wait_for(lambda: metric(paced_server, 'http_connections_shed_total{reason="send_rate"}') >= 1, "counted")
    logged_id = request_id.group(1).decode()
    _wait_for(
        lambda: any(line["request_id"] == logged_id for line in _access_lines(paced_server.log.read_text())), "logged"
    )
    log = paced_server.log.read_text()
    dropped = _dropped(log)
    assert any(line.get("request_id") == request_id.group(1).decode() for line in dropped), dropped
    assert all(line["limit"] == "send_rate" for line in dropped)
    (access,) = [line for line in _access_lines(log) if line["request_id"] == request_id.group(1).decode()]
    assert (access["status"], access["not_delivered"]) == (499, "send_rate")
    assert metric(paced_server, "http_requests_total", route="/predict/batch", status="499") >= 1


def test_a_client_taking_its_answer_at_once_is_not_cut(paced_server: Server) -> None:
    """The rate measures what the client received, not what left the service's buffer: the kernel takes more of an
    answer only in steps, so a client reading steadily looked stalled for seconds at a time."""
    with _slow_client(paced_server) as sock:
        status, _, body = read_answer(sock)
    assert status == 200
    assert len(json.loads(body)["predictions"]) == RECORDS


# -- R5-4: the kernel's receive buffer ---------------------------------------------------------------------------


def _send_until_full(sock: socket.socket, data: bytes) -> int:
    """Send `data` again and again until the kernels (the client's and the server's buffers) take no more."""
    sock.setblocking(False)
    sent = 0
    try:
        while True:
            sent += sock.send(data)
    except BlockingIOError:
        return sent


def test_requests_pipelined_behind_an_answer_being_sent_hold_a_bounded_receive_buffer(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """R5-4: behind an answer its client was not reading, 1.2 MB of pipelined requests waited in the server's
    receive queue, the kernel having grown the buffer to 1.3 MB (only the send buffer was set). With
    `receive_buffer_bytes` at 4 KiB (8 KiB in the kernel), the queue stays within it."""
    settings = {"SERVICE_SEND_BUFFER_BYTES": SOCKET_BUFFER, "SERVICE_RECEIVE_BUFFER_BYTES": SOCKET_BUFFER}
    with serving(str(trained_model_dir), tmp_path / "server.log", settings=settings) as server:
        wait_ready(server.url)
        with _slow_client(server) as sock:
            _wait_for(lambda: _answer_held(server, sock), "held the answer")
            pipelined = _send_until_full(sock, b"GET /model HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
            queues = _queues(server, sock)
        assert queues is not None
        assert queues[1] <= 2 * int(SOCKET_BUFFER), f"{queues[1]:,} bytes in the receive queue, {pipelined:,} sent"


# -- R5-2: answers cut at the stop --------------------------------------------------------------------------------


def test_answers_cut_at_the_stop_are_logged_with_their_request_id(trained_model_dir: Path, tmp_path: Path) -> None:
    """R5-2: at SIGTERM an answer its client reads slowly gets half the shutdown timeout, then its connection is
    dropped; the access log said 200 and nothing else told of the cut. Now the first cut is an `answer_dropped`
    line (rule `shutdown`) with its request id, the others a count logged before the process exits (its loop
    stopped before the count's second was over, and 23 of 24 cuts went unlogged); the stop still ends within the
    drain and half the shutdown timeout. Their access lines say 499 with the rule (review 7, R7-8: 200)."""
    settings = {
        "SERVICE_DRAIN_SECONDS": "0.5",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "4",
        "SERVICE_SEND_BUFFER_BYTES": SOCKET_BUFFER,
        "SERVICE_MIN_SEND_BYTES_PER_SECOND": "0",
    }
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        wait_ready(server.url)
        readers = [_slow_client(server) for _ in range(3)]
        try:
            _wait_for(lambda: all(_answer_held(server, sock) for sock in readers), "held the answers")
            heads = [sock.recv(1024) for sock in readers]
            server.process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            server.process.wait(15)
            exited_after = time.monotonic() - stopped_at
        finally:
            for sock in readers:
                sock.close()
    assert exited_after < 0.5 + 4, exited_after
    request_ids = {
        match.group(1).decode() for head in heads if (match := re.search(rb"x-request-id: (\w+)", head, re.I))
    }
    first, *more = _dropped(log.read_text())
    assert (first["message"], first["limit"]) == ("answer_dropped", "shutdown")
    assert first["request_id"] in request_ids
    assert [(line["message"], line["count"]) for line in more] == [("answer_dropped_more", 2)]
    cut = [line for line in _access_lines(log.read_text()) if line["request_id"] in request_ids]
    assert [(line["status"], line["not_delivered"]) for line in cut] == [(499, "shutdown")] * 3  # R7-8: were 200
    assert '"level": "ERROR"' not in log.read_text()
