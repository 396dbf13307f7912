"""Issue 19, point 1, as it was found: a session id of 128 emoji (legal for Service Bus) escapes to a
1,536-character Table key. Through the real SDK, the emulator and the local host on Table Storage
(Azurite), in both trigger modes, such messages are quarantined at their first delivery, next to normal
traffic on other sessions: nothing is retried, abandoned or dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from orders_cli.traffic import PublishPlan, expected_final_state, generate_messages
from shared.order_workflow import ORDERS
from shared.service import reset_service
from shared.store.table import TableOrderStore
from tests.e2e.test_end_to_end import _orders_queue, _run_host
from tests.support.e2e import publish
from tests.support.hostile import valid_doc
from tests.support.modes import MODES, trigger_cardinality

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.timeout(180)]

EMOJI_SESSION = "\U0001f600" * 128


@pytest.fixture(autouse=True)
def _fresh_service() -> Iterator[None]:
    reset_service()
    yield
    reset_service()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    with trigger_cardinality(request.param) as setting:
        yield setting


def test_a_session_id_no_table_key_holds_is_quarantined_at_first_delivery(
    servicebus_emulator: Any,
    fresh_queue: Any,
    azurite: Any,
    azurite_table_name: str,
    tmp_path: Path,
    mode: dict[str, str],
) -> None:
    queue = _orders_queue(fresh_queue)
    normal = generate_messages(PublishPlan(customers=4, orders_per_customer=1, seed=41))
    publish(servicebus_emulator, queue, normal)
    odd = [
        ServiceBusMessage(
            json.dumps(valid_doc("cust-1", "ord-1", sequence=n)).encode(),
            session_id=EMOJI_SESSION,
            message_id=f"emoji-{n}",
            content_type="application/json",
        )
        for n in (1, 2, 3)
    ]
    client = ServiceBusClient.from_connection_string(servicebus_emulator.connection_string)
    with client, client.get_queue_sender(queue) as sender:
        sender.send_messages(odd)

    settings = {
        "ServiceBusConnection": servicebus_emulator.connection_string,
        "ORDERS_QUEUE_NAME": queue,
        "OrderStoreConnection": azurite.connection_string,
        "ORDERS_TABLE_NAME": azurite_table_name,
        **mode,
    }
    host = _run_host(settings, tmp_path)
    assert host.counters.abandoned == 0, "a message was retried: a permanent refusal treated as transient"
    assert host.counters.completed == len(normal) + len(odd)
    assert servicebus_emulator.active_count(queue) == 0 and servicebus_emulator.dead_letter_count(queue) == 0

    store = TableOrderStore.from_connection_string(
        azurite.connection_string, azurite_table_name, codec=ORDERS
    )
    try:
        quarantined = {q.message_id: (q.session_id, q.reason) for q in store.list_quarantine()}
        assert quarantined == {f"emoji-{n}": (EMOJI_SESSION, "session-mismatch") for n in (1, 2, 3)}
        applied = {(x.customer_id, x.order_id): [a.step for a in x.applied] for x in store.list_ledgers()}
        assert applied == expected_final_state(normal)
    finally:
        store.close()
