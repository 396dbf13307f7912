"""End to end, with the queue's duplicate detection ON (as shipped: queue-wide, 10-minute window): message
ids that used to collide or be unsendable, and a quarantine replay inside the window.

Publisher's sender (real SDK) -> emulator -> local host running function_app.py -> SQLite store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from orders_cli.cli import main as orders
from orders_cli.traffic import CONTENT_TYPE, HAPPY_PATH, Expected, OutgoingMessage, encode, step_doc
from shared.contract import MAX_ID_LENGTH
from shared.engine.outcomes import Outcome
from shared.message_ids import step_message_id
from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore
from tests.e2e.test_end_to_end import _orders_queue, _run_host, _settings
from tests.support.e2e import publish

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _step(customer: str, order: str, sequence: int, step: str) -> OutgoingMessage:
    """One step as the publisher sends it (message id from shared/message_ids.py)."""
    return OutgoingMessage(
        session_id=customer,
        message_id=step_message_id(customer, order, sequence),
        body=encode(step_doc(customer, order, sequence, step)),
        content_type=CONTENT_TYPE,
        application_properties={"kind": "step"},
        kind="step",
        expected=Expected(Outcome.APPLIED),
        order_id=order,
        sequence=sequence,
        step=step,
    )


def _applied(db: Path) -> dict[tuple[str, str], list[str]]:
    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        return {(x.customer_id, x.order_id): [a.step for a in x.applied] for x in store.list_ledgers()}
    finally:
        store.close()


def test_same_order_id_for_two_customers_and_the_longest_ids_are_all_applied(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path
) -> None:
    """Order ids are per customer: two customers' `ord-1` must not collide in the queue-wide duplicate
    detection; 128-character customer and order ids (the contract's maximum) must be sendable."""
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    longest = ("c" * MAX_ID_LENGTH, "o" * MAX_ID_LENGTH)
    orders_sent = [("cust-a", "ord-1"), ("cust-b", "ord-1"), longest]
    messages = [
        _step(customer, order, seq, name)
        for customer, order in orders_sent
        for seq, name in enumerate(HAPPY_PATH, start=1)
    ]
    publish(servicebus_emulator, queue, messages)
    host = _run_host(_settings(servicebus_emulator, queue, db), tmp_path)

    assert _applied(db) == {key: list(HAPPY_PATH) for key in orders_sent}
    assert host.counters.completed == len(messages)
    assert servicebus_emulator.dead_letter_count(queue) == 0 and servicebus_emulator.active_count(queue) == 0


def test_a_replay_inside_the_duplicate_window_is_delivered_and_applied(
    servicebus_emulator: Any,
    fresh_queue: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Step 4 overflows the park limit (1) and is quarantined; once 1-3 are applied its ORIGINAL body is
    replayed a few seconds after it was first sent, well inside the 10-minute window. The replay goes out
    under a new derived id, so the broker keeps it and the app applies it."""
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    settings = _settings(servicebus_emulator, queue, db) | {"ORDERS_PARK_LIMIT": "1"}
    customer, order = "cust-replay", "ord-1"
    steps = {seq: _step(customer, order, seq, name) for seq, name in enumerate(HAPPY_PATH[:4], start=1)}
    publish(servicebus_emulator, queue, [steps[3], steps[4], steps[1], steps[2]])
    _run_host(settings, tmp_path)

    assert _applied(db) == {(customer, order): list(HAPPY_PATH[:3])}
    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        [record] = store.list_quarantine()
    finally:
        store.close()
    assert (record.reason, record.sequence, record.message_id) == (
        "resequence-overflow",
        4,
        steps[4].message_id,
    )

    monkeypatch.setenv("ServiceBusConnection", servicebus_emulator.connection_string)
    code = orders(
        ["quarantine", "replay", record.id, "--queue", queue, "--store", f"sqlite:///{db}", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert servicebus_emulator.active_count(queue) == 1  # the broker kept it
    _run_host(settings, tmp_path)

    assert _applied(db) == {(customer, order): list(HAPPY_PATH[:4])}
    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        assert store.list_quarantine() == []  # replayed: no longer open, and not quarantined again
        assert [q.status for q in store.list_quarantine(include_replayed=True)] == ["replayed"]
    finally:
        store.close()
    # Duplicate detection is on: the original id is still remembered, so a replay under it (what the command
    # did before) would have been dropped while the send reported success.
    with (
        ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client,
        client.get_queue_sender(queue) as sender,
    ):
        sender.send_messages(
            ServiceBusMessage(record.raw_body, session_id=customer, message_id=record.message_id)
        )
    assert servicebus_emulator.active_count(queue) == 0
    assert '"message_id"' in out and record.message_id not in out
