"""End to end on the production store: publisher -> emulator -> local host (16 session threads) ->
Azure Table Storage (Azurite), with duplicates, shuffled steps and poison messages. Checks the Table
backend under the real flow: partition cache, one transaction per message, concurrent sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orders_cli.traffic import PublishPlan, expected_final_state, generate_messages
from shared.order_workflow import ORDERS
from shared.store.table import TableOrderStore
from tests.e2e.test_end_to_end import _orders_queue, _run_host
from tests.support.e2e import publish

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.timeout(180)]


def test_orders_flow_into_table_storage(
    servicebus_emulator: Any, fresh_queue: Any, azurite: Any, azurite_table_name: str, tmp_path: Path
) -> None:
    queue = _orders_queue(fresh_queue)
    messages = generate_messages(
        PublishPlan(customers=12, orders_per_customer=2, duplicates=0.1, shuffle=True, poison=7, seed=23)
    )
    publish(servicebus_emulator, queue, messages)
    settings = {
        "ServiceBusConnection": servicebus_emulator.connection_string,
        "ORDERS_QUEUE_NAME": queue,
        "OrderStoreConnection": azurite.connection_string,
        "ORDERS_TABLE_NAME": azurite_table_name,
    }
    host = _run_host(settings, tmp_path)
    assert host.counters.completed == len(messages) and host.counters.abandoned == 0
    assert servicebus_emulator.active_count(queue) == 0 and servicebus_emulator.dead_letter_count(queue) == 0

    store = TableOrderStore.from_connection_string(
        azurite.connection_string, azurite_table_name, codec=ORDERS
    )
    try:
        applied = {(x.customer_id, x.order_id): [a.step for a in x.applied] for x in store.list_ledgers()}
        expected = expected_final_state(messages)
        assert {k: applied.get(k) for k in expected} == expected
        poison = {m.message_id: m.expected_reason for m in messages if m.expected_outcome == "quarantined"}
        assert {q.message_id: q.reason for q in store.list_quarantine()} == poison
        assert store.list_parked() == []
        applied_count = sum(len(steps) for steps in applied.values())
        assert store.count_idempotency_records() == applied_count
    finally:
        store.close()
