"""function_app's entrypoints invoked the way Azure invokes them: loaded by Azure's worker library
(azure-functions-runtime) and called with InvocationRequests carrying the host's trigger input."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest

import function_app
from devstack.host.invoke import FunctionsWorker, WorkerFailure, functions_worker, received_message
from shared.order_workflow import ORDERS
from shared.service import MESSAGE_LOG_FIELDS, OrderService, reset_service
from shared.settings import AppSettings
from shared.store.base import StoreUnavailable
from shared.store.sqlite import SqliteOrderStore
from tests.support.builders import HAPPY_PATH, body

CANARY = "CANARY-payload-value-7731"


class InvocationContext(func.Context):
    """The minimal func.Context the host passes; a fresh invocation id per call."""

    def __init__(self, name: str) -> None:
        self._id = str(uuid.uuid4())
        self._name = name

    @property
    def invocation_id(self) -> str:
        return self._id

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return str(Path.cwd())

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None

    @property
    def thread_local_storage(self) -> Any:
        return None


def sb_message(
    raw: bytes, *, session: str = "cust-1", message_id: str, delivery_count: int = 1, seq: int = 1
) -> Any:
    """A received message as the Service Bus SDK hands it to the host (delivery_count: .NET's, 1-based)."""
    return received_message(
        raw,
        message_id=message_id,
        session_id=session,
        sequence_number=seq,
        prior_attempts=delivery_count - 1,
        enqueued_time_utc=datetime.now(UTC) - timedelta(milliseconds=250),
    )


@pytest.fixture(scope="module")
def worker() -> Iterator[FunctionsWorker]:
    with functions_worker() as w:
        yield w


@pytest.fixture
def service(tmp_path: Path) -> Iterator[OrderService]:
    store = SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS)
    # no retrying inside the invocation here (tests/unit/test_store_retry.py covers it): a failing store
    # must surface at once
    svc = OrderService(AppSettings(max_delivery_count=5, store_retry_seconds=0), store)
    reset_service(svc)
    yield svc
    reset_service(None)


_WORKER: list[FunctionsWorker] = []


@pytest.fixture(autouse=True)
def _current_worker(worker: FunctionsWorker) -> Iterator[None]:
    _WORKER.append(worker)
    yield
    _WORKER.pop()


def trigger(received: SimpleNamespace) -> None:
    """One InvocationRequest for process_order_step; WorkerFailure when the worker answers Failure."""
    _WORKER[-1].servicebus(received)


def outcome_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "orders.processing" and hasattr(r, "outcome")]


def test_bindings_are_what_the_docs_say() -> None:
    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    assert set(functions) == {"process_order_step", "purge_idempotency_records", "get_customer_orders"}
    [sb] = [b.get_dict_repr() for b in functions["process_order_step"].get_bindings()]
    assert {k: sb[k] for k in ("type", "name", "connection", "queueName", "isSessionsEnabled")} == {
        "type": "serviceBusTrigger",
        "name": "msg",
        "connection": "ServiceBusConnection",
        "queueName": "%ORDERS_QUEUE_NAME%",
        "isSessionsEnabled": True,
    }
    # What the worker reports to the host at indexing (the function.json equivalent): a binary binding,
    # so the host hands the body over as bytes and copies nothing from it into the trigger metadata.
    [raw] = [json.loads(b) for b in functions["process_order_step"].get_raw_bindings()]
    assert raw["dataType"].lower() == "binary"
    [timer] = [b.get_dict_repr() for b in functions["purge_idempotency_records"].get_bindings()]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == function_app.PURGE_SCHEDULE
    http = next(
        b.get_dict_repr() for b in functions["get_customer_orders"].get_bindings() if b.type == "httpTrigger"
    )
    assert http["route"] == "customers/{customer_id}/orders" and str(http["authLevel"]).endswith("FUNCTION")
    readme = Path("README.md").read_text(encoding="utf-8") if Path("README.md").exists() else ""
    assert "`dataType: binary`" in readme, "README bindings table does not say the trigger is binary"
    for name in (
        "process_order_step",
        "%ORDERS_QUEUE_NAME%",
        "ServiceBusConnection",
        "customers/{customer_id}/orders",
    ):
        assert name in readme, f"README does not document {name}"


def test_trigger_applies_a_whole_order_and_logs_one_json_line_each(
    service: OrderService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for i, name in enumerate(HAPPY_PATH, start=1):
        trigger(sb_message(body(name, i), message_id=f"ord-1:{i}", seq=100 + i))
    [ledger] = service.store.list_ledgers("cust-1")
    assert [a.step for a in ledger.applied] == HAPPY_PATH
    records = outcome_records(caplog)
    assert [getattr(r, "outcome", None) for r in records] == ["applied"] * 5
    first = records[0].__dict__
    for field in MESSAGE_LOG_FIELDS:
        assert field in first, field
    assert first["sequence_number"] == 101 and first["lag_ms"] >= 250 and first["message_id"] == "ord-1:1"


def test_the_json_formatter_renders_fields_and_never_payload_values(
    service: OrderService, caplog: pytest.LogCaptureFixture
) -> None:
    from azure_functions_logging import JsonFormatter

    caplog.set_level(logging.INFO)
    poisoned = body(
        "order.placed",
        1,
        data={"items": [{"sku": CANARY, "quantity": 1, "unit_price": 1}], "currency": "EUR"},
    )
    trigger(sb_message(poisoned, message_id="ord-1:1"))
    trigger(sb_message(CANARY.encode(), message_id="m-bad"))
    trigger(sb_message(body("order.shipped", 2, data={"carrier": CANARY}), message_id="ord-1:2"))
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert lines and all(CANARY not in line for line in lines)
    docs = [json.loads(line) for line in lines if '"outcome"' in line]
    assert [d["extra"]["outcome"] for d in docs] == ["applied", "quarantined", "quarantined"]
    assert docs[1]["extra"]["reason"] == "malformed-json" and docs[2]["extra"]["reason"] == "schema-violation"


def test_bad_message_completes_normally_so_the_session_is_never_blocked(service: OrderService) -> None:
    trigger(sb_message(b"\xff\x00 not json", message_id="m-1", seq=9))  # must not raise
    [record] = service.store.list_quarantine()
    assert record.reason == "malformed-json" and record.raw_body == b"\xff\x00 not json"
    assert record.metadata["sequence_number"] == 9 and record.metadata["application_properties"] == {
        "source": "test"
    }


def test_transient_store_failure_raises_so_the_host_abandons(
    service: OrderService, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)

    def down(*_: Any, **__: Any) -> None:
        raise StoreUnavailable("table endpoint unreachable")

    monkeypatch.setattr(service.store, "commit", down)
    with pytest.raises(WorkerFailure) as failed:
        trigger(sb_message(body("order.placed", 1), message_id="ord-1:1", delivery_count=5))
    assert failed.value.type_name == "StoreUnavailable"
    retry = [r for r in caplog.records if getattr(r, "outcome", None) == "retry"]
    assert retry and getattr(retry[0], "final_attempt", None) is True and retry[0].levelno == logging.WARNING
    assert any("last delivery attempt" in r.getMessage() for r in caplog.records)


def test_timer_purges_old_idempotency_records(service: OrderService, worker: FunctionsWorker) -> None:
    trigger(sb_message(body("order.placed", 1), message_id="ord-1:1"))
    assert service.store.count_idempotency_records() == 1
    assert service.purge_idempotency_records(now=datetime.now(UTC) + timedelta(days=13)) == 0
    worker.timer("purge_idempotency_records", function_app.PURGE_SCHEDULE, None, None)
    assert service.store.count_idempotency_records() == 1
    assert service.purge_idempotency_records(now=datetime.now(UTC) + timedelta(days=15)) == 1
    [ledger] = service.store.list_ledgers()
    assert ledger.applied  # purging records never touches order state


def test_http_endpoint_returns_the_customers_orders(service: OrderService, worker: FunctionsWorker) -> None:
    trigger(sb_message(body("order.placed", 1), message_id="ord-1:1"))
    url = "http://127.0.0.1/api/customers/cust-1/orders"
    resp = worker.http("get_customer_orders", url, {"customer_id": "cust-1"})
    assert resp.status == 200
    doc = json.loads(resp.body)
    assert doc["orders"][0]["state"] == "PLACED" and doc["orders"][0]["applied_steps"] == ["order.placed"]
    bad = worker.http(
        "get_customer_orders", "http://127.0.0.1/api/customers/x/orders", {"customer_id": "../etc"}
    )
    assert bad.status == 400


HOSTILE_OVERRIDES: list[dict[str, Any]] = [
    {"SessionId": "cust-b"},
    {"sessionid": "cust-b"},
    {"MessageId": "forged-id"},
    {"DeliveryCount": "x"},
    {"DeliveryCount": 99},
    {"SequenceNumber": "not-a-number"},
    {"ContentType": "text/evil"},
    {"CorrelationId": "forged"},
    {"EnqueuedTimeUtc": "2000-01-01T00:00:00Z"},
    {"ApplicationProperties": {"forged": True}},
    {"UserProperties": "not-an-object"},
]


@pytest.mark.parametrize("override", HOSTILE_OVERRIDES, ids=lambda o: next(iter(o)))
def test_body_overrides_are_harmless_with_the_binary_binding(
    service: OrderService, override: dict[str, Any]
) -> None:
    """The message the host builds for the shipped (binary) binding, through azure.functions' own
    converter: the body cannot change the session, message id, delivery count or any other metadata."""
    from tests.support.worker_convert import servicebus_message

    data_type = str(_WORKER[-1].binding("process_order_step")["dataType"]).lower()
    doc = json.loads(body("order.placed", 1))
    raw = json.dumps({**doc, **override}).encode()
    received = SimpleNamespace(
        body=raw,
        message_id="ord-1:1",
        session_id="cust-1",
        content_type="application/json",
        correlation_id="corr",
        reply_to=None,
        reply_to_session_id=None,
        to=None,
        subject=None,
        partition_key=None,
        delivery_count=0,
        sequence_number=5,
        enqueued_time_utc=datetime.now(UTC),
        expires_at_utc=None,
        lock_token=uuid.uuid4(),
        dead_letter_source=None,
        application_properties={b"source": b"test"},
    )
    msg = servicebus_message(received, data_type)
    assert (msg.session_id, msg.message_id, msg.delivery_count) == ("cust-1", "ord-1:1", 1)
    assert (msg.sequence_number, msg.content_type, msg.correlation_id) == (5, "application/json", "corr")
    assert msg.application_properties == {"source": "test"} and msg.get_body() == raw
    trigger(received)
    records = service.store.list_quarantine() + [
        a for x in service.store.list_ledgers() for a in x.applied if x.customer_id == "cust-1"
    ]
    assert records, "the message was neither applied nor quarantined"
    assert [x.customer_id for x in service.store.list_ledgers()] in ([], ["cust-1"])
