"""Read models for people: what `orders status` and the HTTP endpoint show. Derived, never stored.

Part of the order workflow (they name order fields); the engine and stores never import them.
"""

from __future__ import annotations

from typing import Any

from shared.domain.model import Order
from shared.engine.ledger import Ledger
from shared.engine.outcomes import Outcome
from shared.engine.records import QuarantineRecord
from shared.store.base import OrderStore


def order_view(ledger: Ledger[Order]) -> dict[str, Any]:
    order = ledger.state
    waiting = ledger.next_sequence if ledger.parked and not order.state.is_terminal else None
    return {
        "customer_id": order.customer_id,
        "order_id": order.order_id,
        "state": order.state.value,
        "last_sequence": ledger.last_sequence,
        "applied_steps": [a.step for a in ledger.applied],
        "parked_sequences": sorted(ledger.parked),
        "waiting_for_sequence": waiting,
        "total": None if order.total is None else str(order.total),
        "currency": order.currency,
    }


def quarantine_view(record: QuarantineRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "reason": record.reason,
        "session_id": record.session_id,
        "message_id": record.message_id,
        "order_id": record.stream_key,
        "sequence": record.sequence,
    }


def status_report(store: OrderStore, customer_id: str | None = None) -> dict[str, Any]:
    """The `orders status --json` document."""
    ledgers = store.list_ledgers(customer_id)
    quarantine = [q for q in store.list_quarantine() if customer_id is None or q.session_id == customer_id]
    return {
        "orders": [order_view(ledger) for ledger in ledgers],
        "outcomes": {
            Outcome.APPLIED.value: sum(len(ledger.applied) for ledger in ledgers),
            Outcome.DUPLICATE.value: sum(ledger.duplicates for ledger in ledgers),
            Outcome.PARKED.value: sum(len(ledger.parked) for ledger in ledgers),
            Outcome.QUARANTINED.value: len(quarantine),
        },
        "quarantine": [quarantine_view(q) for q in quarantine],
    }
