"""Read models for people: what `orders status` and the HTTP endpoint show. Derived, never stored.

Generic over the workflow: the engine's ledger gives state, sequences and steps; the binding
(shared/workflows.py) names the keys (`customer_id`/`order_id` for orders); the workflow's own `view`
adds its fields (an order's total and currency).
"""

from __future__ import annotations

from typing import Any

from shared.engine.ledger import Ledger
from shared.engine.outcomes import Outcome
from shared.engine.records import QuarantineRecord
from shared.store.base import OrderStore
from shared.workflows import WorkflowBinding


def stream_view(binding: WorkflowBinding, ledger: Ledger[Any]) -> dict[str, Any]:
    workflow = binding.load()
    state = ledger.state
    waiting = ledger.next_sequence if ledger.parked and not workflow.is_terminal(state) else None
    return {
        **binding.ledger_keys(ledger),
        "state": workflow.status(state),
        "last_sequence": ledger.last_sequence,
        "applied_steps": [a.step for a in ledger.applied],
        "parked_sequences": sorted(ledger.parked),
        "waiting_for_sequence": waiting,
        **workflow.view(state),
    }


def quarantine_view(binding: WorkflowBinding, record: QuarantineRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "reason": record.reason,
        "session_id": record.session_id,
        "message_id": record.message_id,
        binding.stream_field: record.stream_key,
        "sequence": record.sequence,
    }


def status_report(
    binding: WorkflowBinding, store: OrderStore, session_id: str | None = None
) -> dict[str, Any]:
    """The `orders status --json` document: the streams (`orders`: the binding names it), outcomes,
    quarantine."""
    ledgers = store.list_ledgers(session_id)
    quarantine = [q for q in store.list_quarantine() if session_id is None or q.session_id == session_id]
    return {
        "workflow": str(binding.record),
        binding.stream_plural: [stream_view(binding, ledger) for ledger in ledgers],
        "outcomes": {
            Outcome.APPLIED.value: sum(len(ledger.applied) for ledger in ledgers),
            Outcome.DUPLICATE.value: sum(ledger.duplicates for ledger in ledgers),
            Outcome.PARKED.value: sum(len(ledger.parked) for ledger in ledgers),
            Outcome.QUARANTINED.value: len(quarantine),
        },
        "quarantine": [quarantine_view(binding, q) for q in quarantine],
    }
