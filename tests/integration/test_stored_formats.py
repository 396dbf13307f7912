"""Data written before the engine/workflow split still reads, and processing carries on from it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from shared.engine.outcomes import Outcome
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.sqlite import SqliteOrderStore
from tests.support.builders import body

V1_DUMP = Path(__file__).resolve().parents[1] / "fixtures" / "orders-store-v1.sql"


def test_a_v1_sqlite_store_is_migrated_in_place_and_processing_continues(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_DUMP.read_text(encoding="utf-8"))
    store = SqliteOrderStore(path, codec=ORDERS)
    try:
        ledger = store.get_ledger("cust-1", "ord-1")
        assert ledger is not None and ledger.order.state.value == "PLACED" and ledger.order_id == "ord-1"
        assert ledger.order.total is not None and str(ledger.order.total) == "20.50"
        assert sorted(ledger.parked) == [3]
        parked = store.get_parked("cust-1", "ord-1", 3)
        assert parked is not None and parked.stream_key == "ord-1" and parked.envelope.message_id == "m1"
        [record] = store.list_quarantine()
        assert (record.stream_key, record.sequence, record.reason) == ("ord-1", 2, "rule-violation")
        assert store.count_idempotency_records() == 1

        fixed = SessionEnvelope(
            body("payment.authorized", 2, data={"payment_id": "p", "amount": "20.50"}),
            "cust-1",
            "ord-1:2:replay-1",
        )
        result = OrderStepProcessor(store).process(fixed)
        assert result.outcome is Outcome.APPLIED and result.applied_sequences == (2, 3)
    finally:
        store.close()
    reopened = SqliteOrderStore(path, codec=ORDERS)  # already migrated: opening again changes nothing
    try:
        again = reopened.get_ledger("cust-1", "ord-1")
        assert again is not None and again.order.state.value == "RESERVED" and again.parked == {}
        assert reopened.count_idempotency_records() == 3
    finally:
        reopened.close()
