"""function_app with ORDERS_TRIGGER_CARDINALITY=many, loaded by Azure's worker library: registered as a batch
trigger, invoked with the list the host builds (`...Array` metadata, decoded by the worker's converter), one
log line per message, one commit."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devstack.host.invoke import WorkerFailure, functions_worker, received_message
from shared.order_workflow import ORDERS
from shared.service import MESSAGE_LOG_FIELDS, OrderService, reset_service
from shared.settings import CARDINALITY_SETTING, AppSettings, SettingsError
from shared.store.base import StoreUnavailable
from shared.store.sqlite import SqliteOrderStore
from tests.functions.test_function_app import outcome_records
from tests.support.builders import HAPPY_PATH, body


def reload_app(monkeypatch: pytest.MonkeyPatch, cardinality: str | None) -> ModuleType:
    if cardinality is None:
        monkeypatch.delenv(CARDINALITY_SETTING, raising=False)
    else:
        monkeypatch.setenv(CARDINALITY_SETTING, cardinality)
    import function_app

    return importlib.reload(function_app)


@pytest.fixture
def batch_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    app = reload_app(monkeypatch, "many")
    yield app
    reload_app(monkeypatch, None)  # the other tests get the default (one) back


@pytest.fixture
def service(tmp_path: Path) -> Iterator[OrderService]:
    store = SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS)
    svc = OrderService(AppSettings(max_delivery_count=5, store_retry_seconds=0), store)
    reset_service(svc)
    yield svc
    reset_service(None)


def received(raw: bytes, message_id: str, seq: int, *, session: str = "cust-1", attempts: int = 0) -> Any:
    # some correlation ids null: the host's string arrays get shorter
    return received_message(
        raw,
        message_id=message_id,
        session_id=session,
        sequence_number=seq,
        prior_attempts=attempts,
        correlation_id=None if seq % 2 else "corr",
    )


def invoke(app: ModuleType, batch: list[Any]) -> None:
    """As the local host does it: a worker that loaded the app as it is now configured, one
    InvocationRequest with the batch."""
    with functions_worker() as worker:
        worker.servicebus_batch(batch)


def _trigger_binding(cardinality: str | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    reload_app(monkeypatch, cardinality)
    with functions_worker() as worker:
        return worker.binding("process_order_step")


def test_many_registers_the_same_function_as_a_batch_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        sb = _trigger_binding("many", monkeypatch)  # as the worker reports it to the host
    finally:
        reload_app(monkeypatch, None)
    assert (
        str(sb["cardinality"]).lower() == "many" and sb["name"] == "msgs" and sb["isSessionsEnabled"] is True
    )
    assert str(sb["dataType"]).lower() == "binary"
    assert sb["queueName"] == "%ORDERS_QUEUE_NAME%" and sb["connection"] == "ServiceBusConnection"


def test_one_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        for value in (None, "one", " ONE "):
            sb = _trigger_binding(value, monkeypatch)
            assert str(sb.get("cardinality", "one")).lower() == "one" and sb["name"] == "msg"
    finally:
        reload_app(monkeypatch, None)


def test_a_bad_value_fails_indexing_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        with pytest.raises(SettingsError) as err:
            reload_app(monkeypatch, "several")
        assert str(err.value) == "ORDERS_TRIGGER_CARDINALITY must be one of one, many, not 'several'"
    finally:
        reload_app(monkeypatch, None)


def test_a_batch_applies_every_message_logs_one_line_each_and_commits_once(
    batch_app: ModuleType,
    service: OrderService,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    steps = [received(body(name, i), f"ord-1:{i}", 100 + i) for i, name in enumerate(HAPPY_PATH, start=1)]
    steps.insert(2, received(b"\xff not json", "junk-1", 50))
    commits: list[int] = []
    original = service.store.commit_batch

    def counting(*args: Any) -> None:
        commits.append(1)
        original(*args)

    monkeypatch.setattr(service.store, "commit_batch", counting)
    invoke(batch_app, steps)
    [ledger] = service.store.list_ledgers("cust-1")
    assert [a.step for a in ledger.applied] == HAPPY_PATH
    assert [q.message_id for q in service.store.list_quarantine()] == ["junk-1"]
    records = outcome_records(caplog)
    assert [r.__dict__["outcome"] for r in records] == [
        "applied",
        "applied",
        "quarantined",
        "applied",
        "applied",
        "applied",
    ]
    assert [r.__dict__["message_id"] for r in records] == [s.message_id for s in steps]
    for record in records:
        for field in MESSAGE_LOG_FIELDS:
            assert field in record.__dict__, field
        assert record.__dict__["batch_size"] == 6
    assert commits == [1]


def test_a_transient_failure_fails_the_whole_batch_with_a_retry_line_each(
    batch_app: ModuleType,
    service: OrderService,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)

    def down(*_: Any, **__: Any) -> None:
        raise StoreUnavailable("table endpoint unreachable")

    monkeypatch.setattr(service.store, "commit_batch", down)
    steps = [
        received(body("order.placed", 1), "ord-1:1", 1, attempts=4),
        received(body("order.placed", 1, order="ord-2"), "ord-2:1", 2),
    ]
    with pytest.raises(WorkerFailure) as failed:
        invoke(batch_app, steps)
    assert failed.value.type_name == "StoreUnavailable"
    retry = [r for r in caplog.records if getattr(r, "outcome", None) == "retry"]
    assert [r.__dict__["message_id"] for r in retry] == ["ord-1:1", "ord-2:1"]
    assert [r.__dict__["final_attempt"] for r in retry] == [True, False]
    assert service.store.list_ledgers() == []
