"""What the reliability tests share: a crashing store wrapper, a redelivery loop, invariant checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.engine.outcomes import Outcome
from shared.engine.processor import ProcessingResult
from shared.engine.records import SessionChanges
from shared.envelope import SessionEnvelope
from shared.store.base import StoreUnavailable, TransientStoreError
from shared.store.memory import InMemoryOrderStore


class CrashingStore(InMemoryOrderStore):
    """An in-memory store whose commits fail (nothing written) or "crash after commit" on a schedule.

    `plan` yields, per commit, one of: "ok", "fail" (raise before writing: a store outage) or
    "lost-ack" (write, then raise: the host died after the commit but before completing the message,
    so the broker redelivers a message whose effects are already stored).
    """

    def __init__(self, plan: Iterable[str] = ()) -> None:
        super().__init__()
        self._plan: Iterator[str] = iter(plan)
        self.failures = 0
        self.lost_acks = 0

    def commit(self, changes: SessionChanges) -> None:
        action = next(self._plan, "ok")
        if action == "fail":
            self.failures += 1
            raise StoreUnavailable("simulated outage")
        super().commit(changes)
        if action == "lost-ack":
            self.lost_acks += 1
            raise StoreUnavailable("simulated crash after commit")


@dataclass(slots=True)
class Ledger:
    """What the harness saw: per broker message, the final outcome, and every result."""

    results: list[ProcessingResult] = field(default_factory=list)
    final: dict[int, Outcome] = field(default_factory=dict)  # index in the published list -> outcome
    deliveries: int = 0


def deliver_all(
    handle: Callable[[SessionEnvelope], ProcessingResult],
    messages: list[SessionEnvelope],
    *,
    max_deliveries: int = 50,
) -> Ledger:
    """Deliver each message until it is settled, the way the host's abandon/redeliver loop does.

    Only TransientStoreError may escape `handle`; any other exception propagates and fails the test.
    """
    seen = Ledger()
    for index, env in enumerate(messages):
        attempt = env
        for delivery in range(1, max_deliveries + 1):
            seen.deliveries += 1
            try:
                result = handle(attempt)
            except TransientStoreError:
                attempt = _redelivered(env, delivery + 1)
                continue
            seen.results.append(result)
            seen.final[index] = result.outcome
            break
        else:
            raise AssertionError(f"message {index} never settled in {max_deliveries} deliveries")
    return seen


def _redelivered(env: SessionEnvelope, delivery_count: int) -> SessionEnvelope:
    return SessionEnvelope(
        body=env.body,
        session_id=env.session_id,
        message_id=env.message_id,
        delivery_count=delivery_count,
        sequence_number=env.sequence_number,
        enqueued_time=env.enqueued_time,
        content_type=env.content_type,
        correlation_id=env.correlation_id,
        application_properties=env.application_properties,
    )


def store_problems(store: InMemoryOrderStore, park_limit: int) -> list[str]:
    """Invariants any store state must keep, whatever was delivered."""
    problems: list[str] = []
    idem: dict[tuple[str, str, int], Any] = dict(store._idempotency)
    parked_rows: dict[tuple[str, str], set[int]] = {(k[0], k[1]): set() for k in store._parked}
    for sid, order_id, seq in store._parked:
        parked_rows[(sid, order_id)].add(seq)
    ledgers = {(x.customer_id, x.order_id): x for x in store.list_ledgers()}
    for (sid, order_id), ledger in ledgers.items():
        seqs = [a.sequence for a in ledger.applied]
        if seqs != list(range(1, len(seqs) + 1)) or ledger.last_sequence != len(seqs):
            problems.append(f"{order_id}: applied sequences {seqs}, last {ledger.last_sequence}")
        for a in ledger.applied:
            rec = idem.get((sid, order_id, a.sequence))
            if rec is None or rec.content_hash != a.content_hash:
                problems.append(f"{order_id}/{a.sequence}: applied without its idempotency record")
        if len(ledger.parked) > park_limit:
            problems.append(f"{order_id}: {len(ledger.parked)} parked > limit {park_limit}")
        if set(ledger.parked) != parked_rows.get((sid, order_id), set()):
            problems.append(
                f"{order_id}: ledger parked {set(ledger.parked)} != rows {parked_rows.get((sid, order_id))}"
            )
        if any(s <= ledger.last_sequence for s in ledger.parked):
            problems.append(f"{order_id}: parked {sorted(ledger.parked)} at or below {ledger.last_sequence}")
    for sid, order_id, seq in idem:
        owner = ledgers.get((sid, order_id))
        if owner is None or not any(a.sequence == seq for a in owner.applied):
            problems.append(f"{order_id}/{seq}: idempotency record without its effect")
    for key in parked_rows:
        if key not in ledgers:
            problems.append(f"{key}: parked rows without a ledger")
    return problems
