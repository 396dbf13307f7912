"""The local host's invocation semantics that need no broker: functionTimeout restarts the worker (every
in-flight invocation fails, as when the Functions host restarts the language worker process), and the
human console lines."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.host.console import ConsoleFormatter
from devstack.host.payload import http_request
from devstack.host.runtime import FunctionTimeout, LocalHost, WorkerRestarted

SCRATCH_APP = """
import threading

import azure.functions as func

from shared.store.base import ConcurrencyConflict, StoreUnavailable

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
release = threading.Event()
started = {"slow": threading.Event(), "other": threading.Event()}


def _wait(name):
    started[name].set()
    release.wait(30)
    return func.HttpResponse("late")


@app.route(route="slow")
def slow(req: func.HttpRequest) -> func.HttpResponse:
    return _wait("slow")


@app.route(route="other")
def other(req: func.HttpRequest) -> func.HttpResponse:
    return _wait("other")


@app.route(route="after")
def after(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="unavailable")
def unavailable(req: func.HttpRequest) -> func.HttpResponse:
    raise StoreUnavailable("database is locked")


@app.route(route="conflict")
def conflict(req: func.HttpRequest) -> func.HttpResponse:
    raise ConcurrencyConflict("ledger o1 changed")


@app.route(route="bug")
def bug(req: func.HttpRequest) -> func.HttpResponse:
    return {}["missing-key"]
"""


@pytest.fixture
def scratch_host(tmp_path: Path) -> Any:
    """A host whose worker (azure-functions-runtime) loaded a scratch app of HTTP functions."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(SCRATCH_APP)
    (app_dir / "host.json").write_text('{"version": "2.0"}')
    host = LocalHost(app_dir, settings_path=tmp_path / "none.json", configure_logging=False)
    host.prepare()
    yield host
    sys.modules["function_app"].release.set()
    host.stop()


def _call(host: LocalHost, name: str) -> tuple[bool, Any]:
    [spec] = [s for s in host.functions if s.name == name]
    url = f"http://127.0.0.1/api/{name}"
    return host.invoke(spec, lambda: http_request("GET", url, {}, {}, {}, b""), {})


def test_a_function_timeout_fails_every_in_flight_invocation(scratch_host: LocalHost) -> None:
    host = scratch_host
    app = sys.modules["function_app"]
    host.function_timeout = 2.0
    results: dict[str, tuple[bool, Any]] = {}

    def run(name: str) -> None:
        results[name] = _call(host, name)

    threads = [threading.Thread(target=run, args=("slow",))]
    threads[0].start()
    assert app.started["slow"].wait(10)
    time.sleep(1.0)  # `other` starts well after `slow`, so `slow` is the one that overruns first
    threads.append(threading.Thread(target=run, args=("other",)))
    threads[1].start()
    assert app.started["other"].wait(10)
    for t in threads:
        t.join(30)
    app.release.set()
    assert isinstance(results["slow"][1], FunctionTimeout) and not results["slow"][0]
    assert isinstance(results["other"][1], WorkerRestarted) and not results["other"][0]
    assert host.counters.failed == 2
    # the restarted worker (the library's fresh thread pool) takes new invocations
    ok, returned = _call(host, "after")
    assert ok and returned.http.body.bytes == b"ok"


def _record(message: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("devstack.host", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_console_lines() -> None:
    fmt = ConsoleFormatter()
    line = fmt.format(
        _record(
            "invocation",
            n=12,
            function="process_order_step",
            session_id="cust-1",
            message_id="ord-1:3",
            status="Failed",
            error="FunctionTimeout",
            detail="process_order_step overran functionTimeout (300 s)",
            duration_ms=3.2,
        )
    )
    assert "#12 process_order_step session=cust-1 message=ord-1:3 Failed (FunctionTimeout" in line
    assert line.endswith("3 ms") and "\n" not in line
    block = fmt.format(
        _record(
            "local host started",
            functions=[
                {
                    "function": "f",
                    "trigger": "httpTrigger",
                    "url": "http://127.0.0.1:7071/api/x",
                    "methods": ["GET"],
                },
                {"function": "g", "trigger": "serviceBusTrigger", "entity": "q", "sessions": True},
            ],
            http="auth levels are not enforced locally",
        )
    )
    assert (
        "f: [GET] http://127.0.0.1:7071/api/x" in block
        and "g: serviceBusTrigger - queue q (sessions)" in block
    )
    assert "not enforced locally" in block


def _failing_invocation_records(caplog: Any, host: LocalHost, name: str) -> list[logging.LogRecord]:
    with caplog.at_level(logging.DEBUG, logger="devstack.host"):
        ok, _ = _call(host, name)
    assert not ok
    return [r for r in caplog.records if r.name == "devstack.host" and r.getMessage() == "invocation"]


def test_an_expected_transient_store_failure_is_one_line_without_traceback(
    caplog: Any, scratch_host: LocalHost
) -> None:
    """The app gives the message back after its retry burst (already logged as one line by the app):
    the host's record of that invocation is one line, no traceback, in either log format. The host knows
    the exception only by the worker's RpcException (`StoreUnavailable: ...`)."""
    from azure_functions_logging import JsonFormatter

    for name, error in (("unavailable", "StoreUnavailable"), ("conflict", "ConcurrencyConflict")):
        caplog.clear()
        records = _failing_invocation_records(caplog, scratch_host, name)
        assert len(records) == 1, [r.getMessage() for r in records]
        (record,) = records
        assert record.levelno == logging.WARNING and record.exc_info is None
        line = ConsoleFormatter().format(record)
        assert f"Failed ({error})" in line
        assert "\n" not in line and "Traceback" not in line
        as_json = json.loads(JsonFormatter().format(record))
        assert as_json["exception"] is None and as_json["extra"]["expected"] is True


def test_an_unexpected_exception_is_logged_with_its_traceback(caplog: Any, scratch_host: LocalHost) -> None:
    """A bug in the function: logged at ERROR with the worker's traceback (the Functions host logs every
    failed invocation at Error with the RpcException's message and stack)."""
    from azure_functions_logging import JsonFormatter

    records = _failing_invocation_records(caplog, scratch_host, "bug")
    assert len(records) == 1
    (record,) = records
    assert record.levelno == logging.ERROR
    text = ConsoleFormatter().format(record)
    first, _, rest = text.partition("\n")
    assert "bug Failed (KeyError" in first
    assert rest.startswith("Traceback (most recent call last):") and "in bug" in rest
    assert rest.rstrip().endswith("KeyError: 'missing-key'")
    as_json = json.loads(JsonFormatter().format(record))
    assert "Traceback" in as_json["extra"]["stack_trace"] and "\n" not in JsonFormatter().format(record)


def test_the_host_is_not_idle_before_every_receiver_has_looked_at_the_queue(tmp_path: Path) -> None:
    """run_until_idle must not stop a host whose first session accept is slower than idle_seconds (a
    loaded machine): until each receiver's first accept/attach is over, nothing counts as idleness."""
    host = LocalHost(tmp_path, configure_logging=False)
    host._unpolled = 2
    host._last_activity -= 60  # long ago: without the rule this host would already look idle
    assert host.idle_for() == 0.0
    assert host.wait_until_idle(0.05, timeout=0.3) is False
    host._polled_once()
    assert host.idle_for() == 0.0
    host._polled_once()
    assert host.wait_until_idle(0.05, timeout=2.0) is True
