"""The local host's invocation semantics that need no broker: functionTimeout restarts the worker (every
in-flight invocation fails, as when the Functions host restarts the language worker process), and the
human console lines."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from devstack.host.console import ConsoleFormatter
from devstack.host.discovery import FunctionSpec
from devstack.host.runtime import FunctionTimeout, LocalHost, WorkerRestarted


def _spec(name: str, fn: Any) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        trigger_type="httpTrigger",
        trigger={"type": "httpTrigger", "name": "req"},
        trigger_arg="req",
        bindings=(),
        user_function=fn,
        takes_context=False,
        is_async=False,
        directory=".",
    )


def test_a_function_timeout_fails_every_in_flight_invocation(tmp_path: Path) -> None:
    host = LocalHost(tmp_path, configure_logging=False)
    host.function_timeout = 2.0
    host._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    release = threading.Event()
    slow_started, other_started = threading.Event(), threading.Event()

    def slow(req: Any) -> str:
        slow_started.set()
        release.wait(30)
        return "late"

    def other(req: Any) -> str:  # started after `slow`, so within its own timeout when slow overruns
        other_started.set()
        release.wait(30)
        return "late"

    results: dict[str, tuple[bool, Any]] = {}

    def run(name: str, fn: Any) -> None:
        results[name] = host.invoke(_spec(name, fn), lambda: None, {})

    threads = [threading.Thread(target=run, args=("slow", slow))]
    threads[0].start()
    assert slow_started.wait(10)
    time.sleep(1.0)  # `other` starts well after `slow`, so `slow` is the one that overruns first
    threads.append(threading.Thread(target=run, args=("other", other)))
    threads[1].start()
    assert other_started.wait(10)
    for t in threads:
        t.join(30)
    release.set()
    assert isinstance(results["slow"][1], FunctionTimeout) and not results["slow"][0]
    assert isinstance(results["other"][1], WorkerRestarted) and not results["other"][0]
    assert host.counters.failed == 2
    # the "restarted worker" (a fresh pool) takes new invocations
    assert host.invoke(_spec("after", lambda req: "ok"), lambda: None, {}) == (True, "ok")
    assert host._pool is not None
    host._pool.shutdown(wait=False)


def test_a_conversion_failure_fails_the_invocation_before_user_code(tmp_path: Path) -> None:
    from devstack.host.payload import ConversionError

    host = LocalHost(tmp_path, configure_logging=False)
    host._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    called: list[Any] = []

    def build() -> Any:
        raise ConversionError("trigger metadata field 'DeliveryCount' could not be converted (ValueError)")

    ok, error = host.invoke(_spec("f", called.append), build, {})
    assert not ok and isinstance(error, ConversionError) and called == []
    host._pool.shutdown(wait=False)


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
            error="ConversionError",
            detail="trigger metadata field 'DeliveryCount' could not be converted (ValueError)",
            duration_ms=3.2,
        )
    )
    assert "#12 process_order_step session=cust-1 message=ord-1:3 Failed (ConversionError" in line
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


def _failing_invocation_records(caplog: Any, tmp_path: Path, error: BaseException) -> list[logging.LogRecord]:
    host = LocalHost(tmp_path, configure_logging=False)
    host._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def fails(req: Any) -> None:
        raise error

    try:
        with caplog.at_level(logging.DEBUG, logger="devstack.host"):
            ok, raised = host.invoke(_spec("process_order_step", fails), lambda: None, {})
    finally:
        host._pool.shutdown(wait=False)
    assert not ok and raised is error
    return [r for r in caplog.records if r.name == "devstack.host"]


def test_an_expected_transient_store_failure_is_one_line_without_traceback(
    caplog: Any, tmp_path: Path
) -> None:
    """The app gives the message back after its retry burst (already logged as one line by the app):
    the host's record of that invocation is one line, no traceback, in either log format."""
    from azure_functions_logging import JsonFormatter

    from shared.store.base import ConcurrencyConflict, StoreUnavailable

    for error in (StoreUnavailable("database is locked"), ConcurrencyConflict("ledger o1 changed")):
        caplog.clear()
        records = _failing_invocation_records(caplog, tmp_path, error)
        assert len(records) == 1, [r.getMessage() for r in records]
        (record,) = records
        assert record.levelno == logging.WARNING and record.exc_info is None
        line = ConsoleFormatter().format(record)
        assert f"Failed ({type(error).__name__})" in line
        assert "\n" not in line and "Traceback" not in line
        as_json = json.loads(JsonFormatter().format(record))
        assert as_json["exception"] is None and as_json["extra"]["expected"] is True


def test_an_unexpected_exception_is_logged_with_its_traceback(caplog: Any, tmp_path: Path) -> None:
    """A bug in the function: logged at ERROR with the traceback (the Functions host logs every failed
    invocation at Error with the worker's exception and stack)."""
    from azure_functions_logging import JsonFormatter

    records = _failing_invocation_records(caplog, tmp_path, KeyError("missing-key"))
    assert len(records) == 1
    (record,) = records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    text = ConsoleFormatter().format(record)
    first, _, rest = text.partition("\n")
    assert "#1 process_order_step Failed (KeyError)" in first
    assert rest.startswith("Traceback (most recent call last):") and "in fails" in rest
    assert rest.rstrip().endswith("KeyError: 'missing-key'")
    as_json = json.loads(JsonFormatter().format(record))
    assert "Traceback" in as_json["exception"] and "\n" not in JsonFormatter().format(record)


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
