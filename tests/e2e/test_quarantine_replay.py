"""End to end: a step refused by a business rule is quarantined, later steps wait parked, and the
operator's corrected replay (`orders quarantine replay ID --body-file F`, real SDK through the emulator)
unblocks the order: the corrected step and the parked one apply, in order, exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from orders_cli.cli import main as orders
from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore
from tests.e2e.test_end_to_end import _orders_queue, _run_host, _settings
from tests.support.builders import body

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CUSTOMER, ORDER = "cust-replay", "ord-replay"


def _send(connection: str, queue: str, bodies: list[tuple[int, bytes]]) -> None:
    with (
        ServiceBusClient.from_connection_string(connection) as client,
        client.get_queue_sender(queue) as sender,
    ):
        sender.send_messages(
            [
                ServiceBusMessage(
                    raw, session_id=CUSTOMER, message_id=f"{ORDER}:{seq}", content_type="application/json"
                )
                for seq, raw in bodies
            ]
        )


def _ledger(db: Path) -> Any:
    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        return store.get_ledger(CUSTOMER, ORDER), store.list_quarantine(include_replayed=True)
    finally:
        store.close()


def test_corrected_replay_unblocks_the_order(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    queue = _orders_queue(fresh_queue)
    db = tmp_path / "orders.db"
    settings = _settings(servicebus_emulator, queue, db)
    ids: dict[str, Any] = {"customer": CUSTOMER, "order": ORDER}
    wrong_amount = {"payment_id": "pay-1", "amount": "99.99"}  # the order total is 25.50
    _send(
        servicebus_emulator.connection_string,
        queue,
        [
            (1, body("order.placed", 1, **ids)),
            (2, body("payment.authorized", 2, data=wrong_amount, **ids)),
            (3, body("inventory.reserved", 3, **ids)),
        ],
    )
    _run_host(settings, tmp_path)

    ledger, quarantine = _ledger(db)
    assert ledger.last_sequence == 1 and sorted(ledger.parked) == [3]
    [record] = quarantine
    assert (record.reason, record.sequence, record.status) == ("rule-violation", 2, "open")

    fixed = tmp_path / "fixed.json"
    fixed.write_text(body("payment.authorized", 2, **ids).decode(), encoding="utf-8")
    monkeypatch.setenv("ServiceBusConnection", servicebus_emulator.connection_string)
    code = orders(
        [
            "quarantine",
            "replay",
            record.id,
            "--body-file",
            str(fixed),
            "--queue",
            queue,
            "--store",
            f"sqlite:///{db}",
        ]
    )
    assert code == 0, capsys.readouterr().err
    _run_host(settings, tmp_path)

    ledger, quarantine = _ledger(db)
    assert [a.step for a in ledger.applied] == ["order.placed", "payment.authorized", "inventory.reserved"]
    assert ledger.parked == {} and ledger.order.state.value == "RESERVED"
    assert [(q.id, q.status) for q in quarantine] == [(record.id, "replayed")]
    assert servicebus_emulator.counts(queue)["total"] == 0
