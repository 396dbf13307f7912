"""An in-memory store: the fake for unit tests, with the same contract as the real ones.

It keeps ledger objects (copies), so it needs no StateCodec, and returns them typed as it got them
(`Any`: whichever workflow's ledger type the test commits)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.engine.ledger import Ledger
from shared.engine.records import IdempotencyRecord, ParkedMessage, QuarantineRecord, SessionChanges
from shared.store.base import ConcurrencyConflict, StoreUnavailable


class InMemoryOrderStore:
    def __init__(self) -> None:
        self._ledgers: dict[tuple[str, str], Ledger[Any]] = {}
        self._parked: dict[tuple[str, str, int], ParkedMessage] = {}
        self._idempotency: dict[tuple[str, str, int], IdempotencyRecord] = {}
        self._quarantine: dict[str, QuarantineRecord] = {}
        self._versions = itertools.count(1)
        self.commits = 0
        self.fail_next_commit: Exception | None = None  # lets unit tests simulate outages
        self.evictions: list[str | None] = []  # nothing is cached; recorded so tests can see the calls
        self.reopened = 0

    def get_ledger(self, session_id: str, stream_key: str) -> Any:  # the ledger type it was given, or None
        ledger = self._ledgers.get((session_id, stream_key))
        return ledger.copy() if ledger else None

    def get_parked(self, session_id: str, stream_key: str, sequence: int) -> ParkedMessage | None:
        return self._parked.get((session_id, stream_key, sequence))

    def commit(self, changes: SessionChanges) -> None:
        if self.fail_next_commit is not None:
            error, self.fail_next_commit = self.fail_next_commit, None
            raise error
        sid = changes.session_id
        if changes.ledger is not None:
            key = (sid, changes.ledger.stream_key)
            current = self._ledgers.get(key)
            if (current.version if current else None) != changes.ledger.version:
                raise ConcurrencyConflict(f"ledger {key} changed since it was read")
        for p in changes.park:
            if (sid, p.stream_key, p.sequence) in self._parked:
                raise ConcurrencyConflict(f"parked {p.stream_key}/{p.sequence} already exists")
        for stream_key, seq in changes.unpark:
            if (sid, stream_key, seq) not in self._parked:
                raise ConcurrencyConflict(f"parked {stream_key}/{seq} is gone")
        # all checks passed: apply
        for stream_key, seq in changes.unpark:
            del self._parked[(sid, stream_key, seq)]
        for p in changes.park:
            self._parked[(sid, p.stream_key, p.sequence)] = p
        for r in changes.idempotency:
            self._idempotency[(sid, r.stream_key, r.sequence)] = r
        for q in changes.quarantine:
            self._quarantine[q.id] = q
        if changes.ledger is not None:
            changes.ledger.version = str(next(self._versions))
            self._ledgers[(sid, changes.ledger.stream_key)] = changes.ledger.copy()
        self.commits += 1

    def evict(self, session_id: str | None = None) -> None:
        self.evictions.append(session_id)

    def reopen(self) -> None:
        self.reopened += 1

    def list_ledgers(self, session_id: str | None = None) -> list[Any]:
        return [
            ledger.copy()
            for (sid, _), ledger in sorted(self._ledgers.items())
            if session_id is None or sid == session_id
        ]

    def list_parked(self, session_id: str | None = None) -> list[ParkedMessage]:
        return [p for k, p in sorted(self._parked.items()) if session_id is None or k[0] == session_id]

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
