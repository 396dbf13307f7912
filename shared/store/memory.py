"""An in-memory OrderStore: the fake for unit tests, with the same contract as the real ones."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime

from shared.records import IdempotencyRecord, OrderLedger, ParkedMessage, QuarantineRecord, SessionChanges
from shared.store.base import ConcurrencyConflict, StoreUnavailable


class InMemoryOrderStore:
    def __init__(self) -> None:
        self._ledgers: dict[tuple[str, str], OrderLedger] = {}
        self._parked: dict[tuple[str, str, int], ParkedMessage] = {}
        self._idempotency: dict[tuple[str, str, int], IdempotencyRecord] = {}
        self._quarantine: dict[str, QuarantineRecord] = {}
        self._versions = itertools.count(1)
        self.commits = 0
        self.fail_next_commit: Exception | None = None  # lets unit tests simulate outages
        self.evictions: list[str | None] = []  # nothing is cached; recorded so tests can see the calls
        self.reopened = 0

    def get_ledger(self, session_id: str, order_id: str) -> OrderLedger | None:
        ledger = self._ledgers.get((session_id, order_id))
        return ledger.copy() if ledger else None

    def get_parked(self, session_id: str, order_id: str, sequence: int) -> ParkedMessage | None:
        return self._parked.get((session_id, order_id, sequence))

    def commit(self, changes: SessionChanges) -> None:
        if self.fail_next_commit is not None:
            error, self.fail_next_commit = self.fail_next_commit, None
            raise error
        sid = changes.session_id
        if changes.ledger is not None:
            key = (sid, changes.ledger.order_id)
            current = self._ledgers.get(key)
            if (current.version if current else None) != changes.ledger.version:
                raise ConcurrencyConflict(f"ledger {key} changed since it was read")
        for p in changes.park:
            if (sid, p.order_id, p.sequence) in self._parked:
                raise ConcurrencyConflict(f"parked {p.order_id}/{p.sequence} already exists")
        for order_id, seq in changes.unpark:
            if (sid, order_id, seq) not in self._parked:
                raise ConcurrencyConflict(f"parked {order_id}/{seq} is gone")
        # all checks passed: apply
        for order_id, seq in changes.unpark:
            del self._parked[(sid, order_id, seq)]
        for p in changes.park:
            self._parked[(sid, p.order_id, p.sequence)] = p
        for r in changes.idempotency:
            self._idempotency[(sid, r.order_id, r.sequence)] = r
        for q in changes.quarantine:
            self._quarantine[q.id] = q
        if changes.ledger is not None:
            changes.ledger.version = str(next(self._versions))
            self._ledgers[(sid, changes.ledger.order_id)] = changes.ledger.copy()
        self.commits += 1

    def evict(self, session_id: str | None = None) -> None:
        self.evictions.append(session_id)

    def reopen(self) -> None:
        self.reopened += 1

    def list_ledgers(self, customer_id: str | None = None) -> list[OrderLedger]:
        return [
            ledger.copy()
            for (sid, _), ledger in sorted(self._ledgers.items())
            if customer_id is None or sid == customer_id
        ]

    def list_parked(self, customer_id: str | None = None) -> list[ParkedMessage]:
        return [p for k, p in sorted(self._parked.items()) if customer_id is None or k[0] == customer_id]

    def list_quarantine(self, *, include_replayed: bool = False) -> list[QuarantineRecord]:
        return sorted(
            (q for q in self._quarantine.values() if include_replayed or q.status == "open"),
            key=lambda q: (q.quarantined_at, q.id),
        )

    def get_quarantine(self, quarantine_id: str) -> QuarantineRecord | None:
        return self._quarantine.get(quarantine_id)

    def mark_replayed(self, quarantine_id: str, at: datetime) -> None:
        record = self._quarantine[quarantine_id]
        self._quarantine[quarantine_id] = replace(record, status="replayed", replayed_at=at)

    def purge_idempotency_records(self, older_than: datetime) -> int:
        old = [k for k, r in self._idempotency.items() if r.recorded_at < older_than]
        for k in old:
            del self._idempotency[k]
        return len(old)

    def count_idempotency_records(self) -> int:
        return len(self._idempotency)

    def close(self) -> None:
        pass


__all__ = ["InMemoryOrderStore", "StoreUnavailable"]
