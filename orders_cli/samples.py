"""Sample stored records (an order ledger, an idempotency record) for the store contract tests and the
storage benchmark: built directly, without a message, when what is measured is the store."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shared.domain.model import LineItem, Order, OrderState
from shared.engine.ledger import AppliedStep
from shared.engine.records import IdempotencyRecord
from shared.order_workflow import OrderLedger

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_ledger(customer: str, order_id: str, *, steps: int = 1) -> OrderLedger:
    order = Order(
        customer_id=customer,
        order_id=order_id,
        state=OrderState.PLACED,
        currency="EUR",
        total=Decimal("12.50"),
        items=(LineItem(sku="sku-1", quantity=2, unit_price=Decimal("6.25")),),
    )
    applied = [
        AppliedStep(sequence=i, step="place", content_hash=f"h{i}", message_id=f"m{i}", applied_at=T0)
        for i in range(1, steps + 1)
    ]
    return OrderLedger(customer, order_id, order, last_sequence=steps, applied=applied, updated_at=T0)


def make_idem(customer: str, order_id: str, sequence: int, at: datetime = T0) -> IdempotencyRecord:
    return IdempotencyRecord(
        session_id=customer,
        stream_key=order_id,
        sequence=sequence,
        content_hash=f"hash-{sequence}",
        message_id=f"m-{order_id}-{sequence}",
        recorded_at=at,
    )
