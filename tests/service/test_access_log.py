"""The access log's line: written by a shortcut (`service.observability`), the same line python-json-logger writes."""

import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pythonjsonlogger.json import JsonFormatter

from service import server
from service.observability import ACCESS_FIELDS, ACCESS_LOGGER, configure_logging, skip_unlogged_record_attributes
from service.settings import Settings
from tests.service.helpers import record


@pytest.fixture
def json_handler() -> Iterator[logging.Handler]:
    """The service's JSON handler, writing to a buffer for the test."""
    configure_logging("INFO")
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "service-json"]
    assert isinstance(handler, logging.StreamHandler)
    stream = handler.setStream(io.StringIO())
    yield handler
    handler.setStream(stream)


#: The logging module's switches `skip_unlogged_record_attributes` sets, for the whole process.
_SWITCHES = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


def _switches() -> dict[str, object]:
    return {name: getattr(logging, name) for name in _SWITCHES}


@pytest.fixture
def unlogged_attributes_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The switches as the service's process sets them, put back after the test."""
    for name, value in _switches().items():
        monkeypatch.setattr(logging, name, value)
    skip_unlogged_record_attributes()


def _access_record(**fields: object) -> logging.LogRecord:
    logger = logging.getLogger(ACCESS_LOGGER)
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, "request", (), None, extra=fields)


def _plain_formatter(handler: logging.Handler) -> JsonFormatter:
    """python-json-logger's own formatter with the service's settings: what the shortcut must equal."""
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields=formatter.rename_fields,
        datefmt=formatter.datefmt,
        reserved_attrs=list(formatter.reserved_attrs),
    )


def test_the_access_line_is_the_line_python_json_logger_writes(json_handler: logging.Handler) -> None:
    fields = {
        "request_id": "id-1",
        "method": "POST",
        "path": "/predict/é",  # escaped alike
        "route": "unmatched",
        "status": 422,
        "duration_ms": 0.417,
        "client": None,
    }
    assert tuple(fields) == ACCESS_FIELDS
    access = _access_record(**fields)
    line = json_handler.format(access)
    assert line == _plain_formatter(json_handler).format(access)
    assert json.loads(line) == {"time": json.loads(line)["time"], "level": "INFO", "logger": ACCESS_LOGGER} | {
        "message": "request",
        **fields,
    }


def test_other_access_records_take_the_usual_way(json_handler: logging.Handler) -> None:
    """A record of the access logger without the middleware's fields, or with an exception, is written whole."""
    partial = _access_record(request_id="id-2", note="not the middleware's")
    assert json.loads(json_handler.format(partial))["note"] == "not the middleware's"
    try:
        raise ValueError("boom")
    except ValueError:
        logger = logging.getLogger(ACCESS_LOGGER)
        failed = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(json_handler.format(failed))["exc_info"]


def test_each_request_logs_one_line_with_every_field(client: TestClient, json_handler: logging.Handler) -> None:
    answer = client.post("/predict", json=record(), headers={"X-Request-ID": "access-line-1"})
    assert answer.status_code == 200
    assert isinstance(json_handler, logging.StreamHandler)
    lines = [json.loads(line) for line in json_handler.stream.getvalue().splitlines()]
    (line,) = [line for line in lines if line.get("request_id") == "access-line-1"]
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert list(line)[4:] == list(ACCESS_FIELDS)
    assert (line["method"], line["path"], line["route"], line["status"]) == ("POST", "/predict", "/predict", 200)
    assert line["duration_ms"] > 0


@pytest.mark.usefixtures("unlogged_attributes_skipped")
def test_records_skip_the_attributes_no_line_writes(json_handler: logging.Handler) -> None:
    """The caller, thread and process of each record are not looked up (no line writes them): a record made in the
    service's process has none, and its line still has every field."""
    logger = logging.getLogger(ACCESS_LOGGER)
    stream = json_handler.stream  # type: ignore[attr-defined]
    kept: list[logging.LogRecord] = []
    keeper = logging.Handler()
    keeper.emit = kept.append  # type: ignore[method-assign]
    logger.addHandler(keeper)
    try:
        logger.info("request", extra={"request_id": "id-3"})
    finally:
        logger.removeHandler(keeper)
    (made,) = kept
    assert (made.pathname, made.funcName) == ("(unknown file)", "(unknown function)")
    assert (made.thread, made.threadName, made.process, made.processName) == (None, None, None, None)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] == "id-3"
    assert set(line) == {"time", "level", "logger", "message", "request_id"}


def test_making_the_app_leaves_the_process_s_logging_switches(
    make_client: Callable[..., TestClient], trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 22, F4: set by `create_app`, the switches took the callers out of the logs of every process embedding
    the app (tests, benchmarks: `(unknown file):0`) and dropped their `stack_info`; only the service's own process
    (`service.server.serve`) sets them now."""
    for name in _SWITCHES[1:]:
        monkeypatch.setattr(logging, name, True)  # the logging module's defaults
    monkeypatch.setattr(logging, "_srcfile", os.path.normcase(logging.addLevelName.__code__.co_filename))
    before = _switches()
    make_client(MODEL_URI=str(trained_model_dir))
    assert _switches() == before


def test_the_service_s_process_skips_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """`service.server.serve` (what `python -m service` runs) sets the switches before it makes the app: without
    it the 6-12 us they save of every request were silently gone."""
    for name, value in _switches().items():
        monkeypatch.setattr(logging, name, value)
    monkeypatch.setattr(logging, "logThreads", True)
    seen: list[dict[str, object]] = []

    def making_the_app(settings: Settings) -> None:
        seen.append(_switches())
        raise RuntimeError("stop before serving")

    monkeypatch.setattr(server, "create_app", making_the_app)
    with pytest.raises(RuntimeError, match="stop before serving"):
        server.serve(Settings(MODEL_URI="unused"))
    assert [switches["logThreads"] for switches in seen] == [False]
