"""End to end: every hostile body of tests/support/hostile.py, published with the real azure-servicebus SDK
to the embedded emulator and processed by the local Functions host (function_app.py's trigger) on SQLite.

Each hostile body has its own session, with a valid message queued right behind it. Expected: nothing
dead-lettered or abandoned, each hostile body quarantined with its reason (or applied where the contract
allows it), and every valid message behind one applied: no session is blocked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import MessageSizeExceededError

from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore
from tests.support.builders import body
from tests.support.e2e import local_host
from tests.support.hostile import corpus
from tests.support.modes import MODES, trigger_cardinality

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
BEHIND = "ord-behind"
# Application properties named like broker metadata: the envelope still takes them from the broker.
SPOOFED_PROPERTIES: dict[str | bytes, Any] = {
    "SessionId": "someone-else",
    "MessageId": "x",
    "DeliveryCount": "x",
}


@pytest.mark.parametrize("cardinality", MODES)
def test_hostile_bodies_are_quarantined_and_their_sessions_go_on(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, cardinality: str
) -> None:
    queue = fresh_queue(
        requires_session=True, requires_duplicate_detection=True, max_delivery_count=10, lock_duration="PT30S"
    )
    db = tmp_path / "orders.db"
    count = len(corpus("h-00", "ord-h"))
    # one session per hostile body; bodies meant to be valid name their own session's customer
    cases = {f"h-{i:02d}": corpus(f"h-{i:02d}", "ord-h")[i] for i in range(count)}
    messages = []
    for session, case in cases.items():
        messages += [
            ServiceBusMessage(
                case.body,
                session_id=session,
                message_id=f"hostile-{case.name}",
                content_type="application/json",
                application_properties=SPOOFED_PROPERTIES,
            ),
            ServiceBusMessage(
                body("order.placed", 1, customer=session, order=BEHIND),
                session_id=session,
                message_id=f"behind-{session}",
                content_type="application/json",
            ),
        ]
    client = ServiceBusClient.from_connection_string(servicebus_emulator.connection_string)
    refused = (
        set()
    )  # what Service Bus Standard refuses (256 KB messages, as the emulator does): never delivered
    with client, client.get_queue_sender(queue) as sender:
        for message in messages:  # one by one: a batch holds at most 256 KB on Standard
            try:
                sender.send_messages(message)
            except MessageSizeExceededError:
                refused.add(str(message.message_id))
    assert refused == {f"hostile-{c.name}" for c in cases.values() if len(c.body) > 256 * 1024}

    started = time.perf_counter()
    with trigger_cardinality(cardinality) as mode:  # many: the hostile body and the one behind, one batch
        host = local_host(
            servicebus_emulator, queue, tmp_path, settings={"ORDERS_MAX_DELIVERY_COUNT": "10", **mode}
        )
        host.run_until_idle(1.0, timeout=150)
    elapsed = time.perf_counter() - started

    assert servicebus_emulator.dead_letter_count(queue) == 0
    assert servicebus_emulator.active_count(queue) == 0
    assert host.counters.abandoned == 0
    assert host.counters.completed == 2 * len(cases) - len(refused)

    store = SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS)
    try:
        quarantined = {q.message_id: q for q in store.list_quarantine()}
        ledgers = {(x.customer_id, x.order_id): x for x in store.list_ledgers()}
    finally:
        store.close()
    for session, case in cases.items():
        if f"hostile-{case.name}" in refused:
            assert f"hostile-{case.name}" not in quarantined, case.name
        elif case.outcome == "quarantined":
            record = quarantined.get(f"hostile-{case.name}")
            assert record is not None, case.name
            assert (record.reason, record.session_id) == (case.reason, session), case.name
            assert record.metadata["session_id"] == session  # from the broker, not the spoofed property
        else:
            assert [a.step for a in ledgers[(session, "ord-h")].applied] == ["order.placed"], case.name
        behind = ledgers.get((session, BEHIND))
        assert behind is not None and [a.sequence for a in behind.applied] == [1], case.name
    assert len(quarantined) == sum(c.outcome == "quarantined" for c in cases.values()) - len(refused)
    print(
        json.dumps(
            {
                "hostile": len(cases),
                "quarantined": len(quarantined),
                "completed": host.counters.completed,
                "dead_lettered": servicebus_emulator.dead_letter_count(queue),
                "host_s": round(elapsed, 1),
            }
        )
    )
