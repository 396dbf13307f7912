"""End to end: `orders why` reads the dead-letter queue with the real SDK against the emulator. An order's
step 2 is dead-lettered by a receiver (as Service Bus or an app would), its later steps wait parked in
the SQLite store; the story finds step 2 in the DLQ and prints `orders dlq show seq:N` for it, and that
command, run as printed, shows the message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from orders_cli.cli import main as orders
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.sqlite import SqliteOrderStore
from tests.e2e.test_end_to_end import _orders_queue
from tests.support.builders import body

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_why_finds_the_missing_step_in_the_emulators_dlq(
    servicebus_emulator: Any,
    fresh_queue: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ServiceBusConnection", raising=False)
    conn = servicebus_emulator.connection_string
    queue = _orders_queue(fresh_queue)
    with ServiceBusClient.from_connection_string(conn) as client:
        with client.get_queue_sender(queue) as sender:
            sender.send_messages(
                ServiceBusMessage(body("payment.authorized", 2), session_id="cust-1", message_id="ord-1:2")
            )
        with client.get_queue_receiver(queue, session_id="cust-1", max_wait_time=5) as receiver:
            (message,) = receiver.receive_messages(max_message_count=1, max_wait_time=10)
            receiver.dead_letter_message(message, reason="PaymentServiceDown", error_description="test")
    store = SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS)
    processor = OrderStepProcessor(store)
    for n, (seq, step) in enumerate([(1, "order.placed"), (3, "inventory.reserved"), (4, "order.shipped")]):
        processor.process(SessionEnvelope(body(step, seq), "cust-1", f"ord-1:{seq}", sequence_number=n + 1))
    store.close()

    target = ["--store", "sqlite:///orders.db", "--connection", conn, "--queue", queue]
    assert orders(["why", "ord-1", *target, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dead_letter_queue"]["checked"] is True and doc["dead_letter_queue"]["total"] == 1
    (letter,) = [e for e in doc["events"] if e["kind"] == "dead-lettered"]
    assert (
        letter["sequence"] == 2
        and letter["reason"] == "PaymentServiceDown"
        and letter["step"] == ("payment.authorized")
    )
    assert [(e["kind"], e["sequence"]) for e in doc["events"] if e["kind"] != "dead-lettered"] == [
        ("applied", 1), ("parked", 3), ("parked", 4)
    ]  # fmt: skip
    (problem,) = doc["problems"]
    assert "sequence 2 is in the dead-letter queue (PaymentServiceDown)" in problem["problem"]
    assert problem["command"] == f"orders dlq show {letter['ref']} --queue {queue}"

    assert orders(["why", "ord-1", *target]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"in DLQ\s+2\s+payment\.authorized\s+PaymentServiceDown {letter['ref']}", out), out
    shown = [*problem["command"].split()[1:], "--connection", conn, "--json"]
    assert orders(shown) == 0  # the printed command, with the connection it leaves out (a secret)
    (shown_message,) = json.loads(capsys.readouterr().out)["messages"]
    assert shown_message["message_id"] == "ord-1:2" and shown_message["reason"] == "PaymentServiceDown"
