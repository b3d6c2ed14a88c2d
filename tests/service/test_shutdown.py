"""A stop under load, as ECS and Kubernetes stop a task on every deploy: SIGTERM to a real `python -m service`.

Issue 21: SIGTERM must make `/ready` answer 503 at once, let every request already accepted finish, and exit within
the stop timeout. 32 clients keep `POST /predict` going on keep-alive connections; when SIGTERM arrives, `/ready`
must say 503 within a second while their requests are still served. The clients then stop sending a second before
the drain ends (the load balancer has taken the task out of rotation by then), and a request whose body is still
arriving when the service stops listening must still be answered: 503 `shutting_down` at once (it has not started,
and waiting for it would keep the stop going). Every request sent is counted: zero may fail.

Second security review: 300 bodies trickling in at SIGTERM made every stop last the full timeout and logged 300
CancelledError tracebacks (N6); a flood of connections during the stop kept the listener open until the stop
timeout killed the process (N4).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.service.helpers import Server, connect, read_answer, record, serving, wait_ready

CLIENTS = 32
DRAIN_SECONDS = 4.0
SHUTDOWN_TIMEOUT_SECONDS = 10


@dataclass
class _Load:
    """`CLIENTS` threads sending `POST /predict` until `stop`; every outcome counted, with the time of its answer."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        return threads

    def _client(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        body = json.dumps(record()).encode()
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        while not self.stop.is_set():
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                outcome = str(response.status)
                if response.getheader("connection") == "close":
                    connection.close()
            except ConnectionRefusedError:  # never accepted: the service stopped listening
                outcome = "refused"
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                connection.close()
            with self.lock:
                self.outcomes.append((time.monotonic(), outcome))
            if outcome == "refused":
                return


def _slow_request(server: Server, answers: list[tuple[int, bytes]], release: threading.Event) -> None:
    """A request accepted before SIGTERM whose body's last bytes come only after the service stopped listening (it
    is answered then, so they may find the connection closed)."""
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(record()).encode()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        sock.sendall(head % len(body) + body[:10])
        release.wait(60)
        with contextlib.suppress(OSError):
            sock.sendall(body[10:])
        with sock.makefile("rb") as stream:
            status = int(stream.readline().split()[1])
            answers.append((status, stream.read().partition(b"\r\n\r\n")[2]))  # closed after it: read to the end


def test_sigterm_under_load_drains_answers_every_accepted_request_and_exits(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    settings = {
        "SERVICE_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_SECONDS),
        "SERVICE_ACCESS_LOG": "false",
        "SERVICE_MIN_BODY_BYTES_PER_SECOND": "0",  # the slow request's body pauses for seconds
        "SERVICE_BODY_STALL_SECONDS": "0",
    }
    with serving(str(trained_model_dir), tmp_path / "server.log", settings=settings) as server:
        assert wait_ready(server.url).status_code == 200
        load = _Load(server.url)
        threads = load.run()
        slow_answers: list[tuple[int, bytes]] = []
        release = threading.Event()
        slow = threading.Thread(target=_slow_request, args=(server, slow_answers, release), daemon=True)
        slow.start()
        time.sleep(2)  # under load
        assert len(load.outcomes) > 50

        server.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        ready = httpx.get(f"{server.url}/ready", timeout=5)
        ready_after = time.monotonic() - stopped_at
        assert ready.status_code == 503
        assert ready.json()["error"] == "shutting_down"
        assert ready_after < 1.0
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200  # alive: liveness must not fail

        time.sleep(DRAIN_SECONDS - 1)  # the load balancer has stopped sending by now
        load.stop.set()
        for thread in threads:
            thread.join(30)
        time.sleep(1.5)  # the drain is over: the service no longer listens, the slow request is still open
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health", timeout=5)
        release.set()
        slow.join(30)

        server.process.wait(DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS)
        exited_after = time.monotonic() - stopped_at

    outcomes = Counter(outcome for _, outcome in load.outcomes)
    during_drain = [outcome for at, outcome in load.outcomes if at > stopped_at]
    assert outcomes == {"200": outcomes["200"]}, outcomes  # no failure, no refusal: the listener outlived the load
    assert len(during_drain) > 50  # and the service kept answering while it drained
    assert [status for status, _ in slow_answers] == [503]
    assert json.loads(slow_answers[0][1])["error"] == "shutting_down"
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert exited_after < DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS


def _trickling(server: Server, count: int) -> list[socket.socket]:
    host, port = server.url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        sockets.append(sock)
    return sockets


def test_bodies_still_arriving_at_the_stop_are_answered_at_once(trained_model_dir: Path, tmp_path: Path) -> None:
    """N6: bodies trickling in (not paced here, so only the stop acts on them) are answered 503 `shutting_down`
    when the service stops listening, and the process exits without waiting out the shutdown timeout or logging
    an error."""
    settings = {
        "SERVICE_DRAIN_SECONDS": "1",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "10",
        "SERVICE_STOP_TIMEOUT_SECONDS": "15",
        "SERVICE_MIN_BODY_BYTES_PER_SECOND": "0",
    }
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        sockets = _trickling(server, 60)
        try:
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            answers = []
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")
                with sock.makefile("rb") as stream:
                    status_line = stream.readline()
                    answers.append((status_line.split()[1:2], stream.read()))
            server.process.wait(15)
            exited_after = time.monotonic() - stopped_at
        finally:
            for sock in sockets:
                sock.close()
    assert all(status == [b"503"] for status, _ in answers), answers
    assert all(b'"error":"shutting_down"' in answer for _, answer in answers)
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert exited_after < 1 + 10 - 3  # well inside the shutdown timeout: nothing was waited for
    text = log.read_text()
    assert "Traceback" not in text
    assert "CancelledError" not in text
    assert '"level": "ERROR"' not in text


def test_an_upload_under_way_at_the_stop_is_let_finish_and_answered(trained_model_dir: Path, tmp_path: Path) -> None:
    """Issue 21, third review (6): an honest upload in progress when the service stopped listening was cut with 503
    `shutting_down`, although the stop had 20 s to spare. A body arriving fast enough to be in within half the
    shutdown timeout now finishes and is answered; a trickling one is still refused at once."""
    settings = {
        "SERVICE_DRAIN_SECONDS": "0.5",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "10",
        "SERVICE_STOP_TIMEOUT_SECONDS": "15",
        "SERVICE_MIN_BODY_BYTES_PER_SECOND": "0",
    }
    body = json.dumps({"records": [record(Age=1 + i % 13) for i in range(1000)]}).encode()
    head = b"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    sent_all_at: list[float] = []
    with serving(str(trained_model_dir), tmp_path / "server.log", settings=settings) as server:
        host, port = server.url.removeprefix("http://").split(":")
        upload = socket.create_connection((host, int(port)), timeout=30)
        started = threading.Event()

        def send() -> None:  # about 160 KB a second: 2 s for the body, 8 times as fast as the stop needs
            upload.sendall(head % len(body))
            for at in range(0, len(body), 16_000):
                with contextlib.suppress(OSError):  # cut (the old behaviour): the answer says so
                    upload.sendall(body[at : at + 16_000])
                started.set()
                time.sleep(0.1)
            sent_all_at.append(time.monotonic())

        [trickling] = _trickling(server, 1)
        sender = threading.Thread(target=send)
        sender.start()
        try:
            assert started.wait(10)
            server.process.send_signal(signal.SIGTERM)
            with trickling.makefile("rb") as stream:  # refused when the listener closes, after the drain
                trickling_answer = stream.readline()
            refused_at = time.monotonic()
            sender.join(30)
            with upload.makefile("rb") as stream:
                upload_answer = stream.readline()
            server.process.wait(15)
        finally:
            sender.join(30)
            upload.close()
            trickling.close()
    assert trickling_answer.split()[1] == b"503"
    assert refused_at < sent_all_at[0], "the stop reached the protocol after the upload was sent: nothing tested"
    assert upload_answer.split()[1] == b"200", upload_answer


def test_bodies_whose_heads_end_after_the_listener_closed_are_refused_within_the_stop(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """Review 4, R4-3: a body whose head ended after the listener closed (on a keep-alive connection in its grace, or
    a head still arriving at the close) had only the normal deadlines: at 2 KB/s it outlived the shutdown timeout,
    uvicorn cancelled it (a plain-text 500) and logged a CancelledError traceback. It now has half the shutdown
    timeout, as a body under way at the stop, then 503 `shutting_down`; the stop waits for nothing more."""
    settings = {
        "SERVICE_DRAIN_SECONDS": "0.5",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "4",
        "SERVICE_STOP_TIMEOUT_SECONDS": "8",
    }
    head = b"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        assert wait_ready(server.url).status_code == 200
        host, port = server.url.removeprefix("http://").split(":")
        idle = socket.create_connection((host, int(port)), timeout=15)
        heading = socket.create_connection((host, int(port)), timeout=15)
        try:
            idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(65536).startswith(b"HTTP/1.1 200")
            heading.sendall(head)  # the head's last line comes after the close
            server.process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            _wait_until_the_listener_closed(server)
            idle.sendall(head + b"\r\n")  # within its grace after the close
            heading.sendall(b"\r\n")
            answers = {}
            while len(answers) < 2 and time.monotonic() - stopped_at < 15:  # 2 KB a second, until answered
                for name, sock in (("idle", idle), ("heading", heading)):
                    if name not in answers:
                        with contextlib.suppress(OSError):
                            sock.sendall(b" " * 200)
                        if select.select([sock], [], [], 0)[0]:
                            answers[name] = sock.recv(65536)
                            answered_after = time.monotonic() - stopped_at
                time.sleep(0.1)
            server.process.wait(15)
        finally:
            idle.close()
            heading.close()
    for name, answer in answers.items():
        assert answer.startswith(b"HTTP/1.1 503"), (name, answer[:200])
        assert b'"error":"shutting_down"' in answer
    assert sorted(answers) == ["heading", "idle"]
    assert answered_after < 0.5 + 4 / 2 + 1, answered_after  # the drain and half the shutdown timeout, not all of it
    text = log.read_text()
    assert "Traceback" not in text
    assert '"level": "ERROR"' not in text


def test_an_answer_the_client_does_not_read_at_the_stop_ends_within_it(trained_model_dir: Path, tmp_path: Path) -> None:
    """Review 4, R4-4: answers are no longer taken whole by the kernel (its send buffer is bounded), so an answer a
    client does not read waits in the service: at the stop it has half the shutdown timeout, as a body still
    arriving, then the connection is dropped; the stop does not wait out the whole timeout and log an error."""
    settings = {"SERVICE_DRAIN_SECONDS": "0.5", "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "6"}
    body = json.dumps({"records": [record(Age=1 + i % 13) for i in range(1000)]}).encode()
    head = b"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        assert wait_ready(server.url).status_code == 200
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        with client:
            client.sendall(head % len(body) + body)
            assert select.select([client], [], [], 30)[0]  # the answer started
            server.process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            server.process.wait(15)
            exited_after = time.monotonic() - stopped_at
    assert exited_after < 0.5 + 6 - 1, exited_after  # the drain and half the shutdown timeout, not all of it
    assert '"level": "ERROR"' not in log.read_text()


def _wait_until_the_listener_closed(server: Server) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{server.url}/health", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.05)
    raise AssertionError("the listener stayed open")


def test_a_connection_flood_during_the_stop_does_not_keep_the_listener_open(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """N4: a client connecting and closing in a loop kept the backlog from emptying, so the listener never closed
    and the process ran until the stop timeout killed it (exit 1, an ERROR). Now the backlog taken at the stop is
    bounded and the process stops on its own."""
    settings = {"SERVICE_DRAIN_SECONDS": "0", "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "5"}
    settings["SERVICE_STOP_TIMEOUT_SECONDS"] = "10"
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        host, port = server.url.removeprefix("http://").split(":")

        def flood(stop: threading.Event) -> None:
            while not stop.is_set():
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.connect((host, int(port)))
                sock.close()

        exited_after = _sigterm_during(server, flood, threads=2, after=1, wait=15)
    assert server.process.returncode in (0, -signal.SIGTERM)  # the stop timeout's watchdog exits 1
    # Its own stop: 2-3 s of registering and closing the 2,048 queued connections on a busy machine, 5.5 s at load 8
    assert exited_after < 10 - 1
    assert "stop timeout reached" not in log.read_text()


def test_sigterm_under_a_flood_of_batches_closes_the_listener_after_the_drain(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """Third review: clients sending 1,000-record batches back to back, each on a new connection, kept the stop
    taking the listener's queue (each accept gave the busy loop a turn while they refilled it, and the listener
    still accepted) until the stop timeout killed the process, cutting the requests under way. Now the listener
    closes when the drain ends, the queue it had is answered, and later connections are refused."""
    settings = {
        "SERVICE_DRAIN_SECONDS": "2",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "12",
        "SERVICE_STOP_TIMEOUT_SECONDS": "20",
        "SERVICE_BATCH_QUEUE_SECONDS": "5",
        "SERVICE_ACCESS_LOG": "false",
    }
    log = tmp_path / "server.log"
    outcomes: list[str] = []
    with serving(str(trained_model_dir), log, settings=settings) as server:
        assert wait_ready(server.url).status_code == 200
        host, port = server.url.removeprefix("http://").split(":")
        body = json.dumps({"records": [record()] * 1000}).encode()

        def client(stop: threading.Event) -> None:
            while not stop.is_set():
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    connection.request("POST", "/predict/batch", body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    outcomes.append(str(response.status))
                except ConnectionRefusedError:  # never accepted: the listener is closed
                    outcomes.append("refused")
                    time.sleep(0.05)
                except (OSError, http.client.HTTPException) as exc:
                    outcomes.append(type(exc).__name__)
                finally:
                    connection.close()

        exited_after = _sigterm_during(server, client, threads=100, after=3, wait=25)
    text = log.read_text()
    answered = Counter(outcomes)
    assert "stop timeout reached" not in text
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert exited_after < 2 + 12 + 1
    assert answered["200"] > 0
    resets = answered.pop("ConnectionResetError", 0)
    assert set(answered) <= {"200", "503", "refused"}, answered  # no connection cut mid-answer
    # A refusal at the stop whose client is still sending closes at once when no place to linger is left (review 7,
    # R7-7: open); since batches wait for room with their bodies unread, 8 and 2 resets (among ~7,900 answers) were
    # seen in two of about fifteen runs. More than one in 500 is a regression.
    assert resets <= sum(answered.values()) / 500, (resets, answered)
    assert "drain over" in text
    assert "listener closed" in text


def _sigterm_during(
    server: Server, work: Callable[[threading.Event], None], *, threads: int, after: float, wait: float
) -> float:
    """SIGTERM to `server` `after` seconds into `work` (run in `threads` threads until the event is set); the seconds
    it took to exit, waited for at most `wait`."""
    stop = threading.Event()
    workers = [threading.Thread(target=work, args=(stop,), daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(after)
        server.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        server.process.wait(wait)
        return time.monotonic() - stopped_at
    finally:
        stop.set()
        for worker in workers:
            worker.join(35)


def _wait_for_line(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log"
        time.sleep(0.02)


def test_a_repeated_sigterm_does_not_cut_the_drain_and_sigint_does(trained_model_dir: Path, tmp_path: Path) -> None:
    """Review 5, R5-5: a second SIGTERM during the drain (a supervisor re-sending it, `kubectl delete` repeated)
    closed the listener at once, unlogged, while the load balancer still sent requests. Now repeated SIGTERMs are
    ignored, logged once, and requests are served until the drain is over; SIGINT still means "now"."""
    settings = {"SERVICE_DRAIN_SECONDS": "20", "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "2"}
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        assert wait_ready(server.url).status_code == 200
        server.process.send_signal(signal.SIGTERM)
        _wait_for_line(log, "SIGTERM: draining")
        for _ in range(3):
            server.process.send_signal(signal.SIGTERM)
        _wait_for_line(log, "SIGTERM again: ignored")  # the old code: the listener closed, no such line
        with httpx.Client(timeout=5) as client:  # a new connection each: the listener is open
            assert client.get(f"{server.url}/health", headers={"Connection": "close"}).status_code == 200
            assert client.get(f"{server.url}/ready", headers={"Connection": "close"}).status_code == 503
        assert "drain over" not in log.read_text()
        server.process.send_signal(signal.SIGINT)
        server.process.wait(15)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert messages.count("SIGTERM again: ignored, the stop goes on (SIGINT stops at once)") == 1
    assert "SIGINT while draining: the drain is cut short, closing the listener now" in messages
    assert "stop timeout reached" not in " ".join(messages)


def test_a_body_begun_after_the_listener_closed_is_refused_once_its_rate_shows_it_cannot_arrive(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """Review 5, R5-6: a body whose head ended after the listener closed was held half the shutdown timeout (10 s
    here) before its 503, even when its rate showed it could never arrive. 500 bytes of a 100 KB body in the first
    second: 503 `shutting_down` a second after its head, not at the half timeout."""
    settings = {
        "SERVICE_DRAIN_SECONDS": "1",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "20",
        "SERVICE_MIN_BODY_BYTES_PER_SECOND": "0",  # neither the minimum rate nor a stall cuts it off first
        "SERVICE_BODY_STALL_SECONDS": "0",
    }
    log = tmp_path / "server.log"
    with serving(str(trained_model_dir), log, settings=settings) as server:
        assert wait_ready(server.url).status_code == 200
        with connect(server, timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(sock)[0] == 200
            server.process.send_signal(signal.SIGTERM)
            _wait_for_line(log, "listener closed")  # the connection, idle, has a second to send its next request
            sock.sendall(b"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b" " * 500)
            sent = time.monotonic()
            status, _, answer = read_answer(sock)
            answered_after = time.monotonic() - sent
        server.process.wait(15)
    assert (status, json.loads(answer)["error"]) == (503, "shutting_down")
    assert answered_after < 5, answered_after  # the old code: 10 s, half the shutdown timeout
