"""Logs carry ids and outcomes, never payload values: a canary planted in every body field must not
appear in any log line, for every outcome (applied, duplicate, parked, each quarantine reason, retry)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from azure_functions_logging import JsonFormatter

from shared.engine.outcomes import Outcome, QuarantineReason
from shared.envelope import SessionEnvelope
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store.base import StoreUnavailable
from shared.store.memory import InMemoryOrderStore

CANARY = "CANARY-7f3a9c"


def doc(seq: int, step: str, data: dict[str, Any], order: str = "ord-1", **extra: Any) -> bytes:
    body = {
        "schema": "order-step/v1",
        "customer_id": "cust-1",
        "order_id": order,
        "sequence": seq,
        "step": step,
        "occurred_at": f"2026-11-01T10:00:{seq:02d}Z",
        "data": data,
    }
    body.update(extra)
    return json.dumps(body).encode()


PLACED = {
    "items": [{"sku": f"{CANARY}-sku", "quantity": 1, "unit_price": "10"}],
    "currency": "EUR",
    "note": CANARY,  # extra informational data is kept and hashed, never logged
}


def env(raw: bytes, message_id: str, delivery_count: int = 1) -> SessionEnvelope:
    return SessionEnvelope(
        raw, "cust-1", message_id, delivery_count=delivery_count, application_properties={"p": CANARY}
    )


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything any logger writes, formatted by the app's JsonFormatter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_no_payload_value_reaches_the_logs_for_any_outcome(captured: io.StringIO) -> None:
    store = InMemoryOrderStore()
    service = OrderService(AppSettings(park_limit=2, max_delivery_count=3), store)
    cases: list[tuple[SessionEnvelope, Outcome, QuarantineReason | None]] = [
        (
            env(doc(2, "payment.authorized", {"payment_id": CANARY, "amount": "10"}), "m2"),
            Outcome.PARKED,
            None,
        ),
        (env(doc(1, "order.placed", PLACED), "m1"), Outcome.APPLIED, None),
        (env(doc(1, "order.placed", PLACED), "m1-again"), Outcome.DUPLICATE, None),
        (
            env(doc(1, "order.placed", {**PLACED, "note": CANARY + "-other"}), "m1-changed"),
            Outcome.QUARANTINED,
            QuarantineReason.CONFLICTING_DUPLICATE,
        ),
        (
            env(doc(3, "order.shipped", {"carrier": CANARY, "tracking_number": CANARY}), "m3"),
            Outcome.QUARANTINED,
            QuarantineReason.INVALID_TRANSITION,
        ),
        (
            env(doc(1, "order.placed", PLACED, order="ord-2"), "m4"),
            Outcome.APPLIED,
            None,
        ),
        (
            env(doc(2, "payment.authorized", {"payment_id": CANARY, "amount": "999"}, order="ord-2"), "m5"),
            Outcome.QUARANTINED,
            QuarantineReason.RULE_VIOLATION,
        ),
        (env(doc(4, "order.delivered", {}, order="ord-2"), "m6"), Outcome.PARKED, None),
        (env(doc(5, "order.delivered", {}, order="ord-2"), "m7"), Outcome.PARKED, None),
        (
            env(doc(6, "order.cancelled", {"reason": CANARY}, order="ord-2"), "m8"),
            Outcome.QUARANTINED,
            QuarantineReason.RESEQUENCE_OVERFLOW,
        ),
        (
            env(b'{"x": "' + CANARY.encode() + b'"', "m9"),
            Outcome.QUARANTINED,
            QuarantineReason.MALFORMED_JSON,
        ),
        (
            env(doc(1, CANARY, {"reason": CANARY}), "m10"),
            Outcome.QUARANTINED,
            QuarantineReason.SCHEMA_VIOLATION,
        ),
        (
            env(doc(1, "order.placed", PLACED, **{CANARY: CANARY}), "m11"),
            Outcome.QUARANTINED,
            QuarantineReason.SCHEMA_VIOLATION,
        ),
        (
            env(doc(1, "order.placed", PLACED, customer_id="someone-else"), "m12", delivery_count=3),
            Outcome.QUARANTINED,
            QuarantineReason.SESSION_MISMATCH,
        ),
        (env(CANARY.encode() + b"\xff", "m13"), Outcome.QUARANTINED, QuarantineReason.MALFORMED_JSON),
    ]
    for envelope, outcome, reason in cases:
        result = service.handle(envelope)
        assert (result.outcome, result.reason) == (outcome, reason), envelope.message_id
    store.fail_next_commit = StoreUnavailable("down")  # the in-invocation retry logs once it recovers
    assert service.handle(env(doc(3, "inventory.reserved", {"reservation_id": CANARY}), "m14")).outcome
    no_retry = OrderService(AppSettings(park_limit=2, max_delivery_count=3, store_retry_seconds=0), store)
    store.fail_next_commit = StoreUnavailable("down")  # and so does giving the message back to the host
    with pytest.raises(StoreUnavailable):
        no_retry.handle(env(doc(4, "payment.captured", {"payment_id": CANARY}), "m14b", delivery_count=3))

    lines = captured.getvalue().splitlines()
    assert len(lines) >= len(cases) + 1  # one line per message at least: the capture works
    assert all(json.loads(line)["logger"] for line in lines)  # every line is the JSON formatter's
    leaking = [line for line in lines if CANARY.lower() in line.lower()]
    assert leaking == []
    assert store.list_quarantine()  # the bodies (and the canary) are kept where they belong
    assert any(CANARY in q.body for q in store.list_quarantine())
