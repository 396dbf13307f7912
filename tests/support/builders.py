"""Builders for order-step/v1 bodies and envelopes, so tests read as the scenario they describe."""

from __future__ import annotations

import itertools
import json
from typing import Any

from shared.envelope import SessionEnvelope

_broker_sequence = itertools.count(1)

DEFAULT_DATA: dict[str, dict[str, Any]] = {
    "order.placed": {
        "items": [
            {"sku": "sku-1", "quantity": 2, "unit_price": "10.25"},
            {"sku": "sku-2", "quantity": 1, "unit_price": 5},
        ],
        "currency": "EUR",
    },
    "payment.authorized": {"payment_id": "pay-1", "amount": "25.50"},
    "inventory.reserved": {"reservation_id": "res-1"},
    "order.shipped": {"carrier": "DHL", "tracking_number": "TRK-1"},
    "order.delivered": {},
    "order.cancelled": {"reason": "customer asked"},
}

HAPPY_PATH = ["order.placed", "payment.authorized", "inventory.reserved", "order.shipped", "order.delivered"]


def body(
    step_name: str,
    seq: int,
    *,
    customer: str = "cust-1",
    order: str = "ord-1",
    data: dict[str, Any] | None = None,
    **overrides: Any,
) -> bytes:
    doc: dict[str, Any] = {
        "schema": "order-step/v1",
        "customer_id": customer,
        "order_id": order,
        "sequence": seq,
        "step": step_name,
        "occurred_at": f"2026-11-01T10:00:{seq:02d}Z",
        "data": DEFAULT_DATA[step_name] if data is None else data,
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def envelope(
    raw: bytes,
    *,
    session: str = "cust-1",
    message_id: str | None = None,
    delivery_count: int = 1,
    sequence_number: int | None = None,
) -> SessionEnvelope:
    if message_id is None:
        try:
            doc = json.loads(raw)
            message_id = f"{doc['order_id']}:{doc['sequence']}"
        except (ValueError, KeyError, TypeError):
            message_id = f"msg-{next(_broker_sequence)}"
    return SessionEnvelope(
        body=raw,
        session_id=session,
        message_id=message_id,
        delivery_count=delivery_count,
        sequence_number=sequence_number if sequence_number is not None else next(_broker_sequence),
    )


def step(
    step_name: str, sequence: int, *, customer: str = "cust-1", order: str = "ord-1", **kw: Any
) -> SessionEnvelope:
    return envelope(body(step_name, sequence, customer=customer, order=order, **kw), session=customer)


def happy_path(customer: str = "cust-1", order: str = "ord-1") -> list[SessionEnvelope]:
    return [step(name, i, customer=customer, order=order) for i, name in enumerate(HAPPY_PATH, start=1)]
