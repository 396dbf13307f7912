"""Batch mode: one session's messages decided one by one, their effects committed together.

A batch is a fold of the single-message processor over the messages, against a staging view of the
store (the real store's reads overlaid with the batch's own uncommitted changes), followed by ONE
`commit_batch` of everything staged. So every message gets exactly the outcome the single-message path
would have given it in that order (same decisions, same quarantine reasons), and the batch costs one
store transaction instead of one per message (see docs/performance.md).

Failure rules, as the host's batch settle rules require (all messages of a batch are completed together
on return and all abandoned when the function raises):
- a transient store failure (read or commit) raises: nothing of the batch was written (or, on a store
  that had to split the commit, only whole runs that redelivery finds as duplicates) and the whole
  batch is redelivered;
- any other failure of the batch commit (a store limit, a bug) falls back to committing message by
  message, so one message's problem cannot hold back the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.engine.decide import ProcessingResult
from shared.engine.ledger import Ledger
from shared.engine.records import ParkedMessage, SessionChanges
from shared.envelope import SessionEnvelope
from shared.store.base import TransientStoreError

if TYPE_CHECKING:
    from shared.engine.processor import StreamProcessor

log = logging.getLogger("orders.processing")


class StagedSession:
    """One session's store as a batch sees it: reads fall through to the store unless the batch has
    already changed the row; `commit` stages (no I/O) and keeps each message's changes in order."""

    def __init__(self, store: Any, session_id: str) -> None:
        self._store = store
        self.session_id = session_id
        self._ledgers: dict[str, Ledger[Any]] = {}
        self._parked: dict[tuple[str, int], ParkedMessage | None] = {}  # None: released by this batch
        self.units: list[SessionChanges] = []

    def get_ledger(self, session_id: str, stream_key: str) -> Any:
        self._check(session_id)
        staged = self._ledgers.get(stream_key)
        if staged is not None:
            return staged.copy()
        return self._store.get_ledger(session_id, stream_key)

    def get_parked(self, session_id: str, stream_key: str, sequence: int) -> ParkedMessage | None:
        self._check(session_id)
        key = (stream_key, sequence)
        if key in self._parked:
            return self._parked[key]
        return self._store.get_parked(session_id, stream_key, sequence)

    def commit(self, changes: SessionChanges) -> None:
        self._check(changes.session_id)
        if changes.ledger is not None:
            # keep the version read from the store: the batch commit checks it once per stream
            self._ledgers[changes.ledger.stream_key] = changes.ledger.copy()
        for stream_key, sequence in changes.unpark:
            self._parked[(stream_key, sequence)] = None
        for parked in changes.park:
            self._parked[(parked.stream_key, parked.sequence)] = parked
        self.units.append(changes)

    def __getattr__(self, name: str) -> Any:  # anything else (operator reads) is the store's
        return getattr(self._store, name)

    def _check(self, session_id: str) -> None:
        if session_id != self.session_id:
            raise ValueError(f"a batch of session {self.session_id!r} touched session {session_id!r}")


def sessions_in_order(envelopes: Sequence[SessionEnvelope]) -> Iterator[list[SessionEnvelope]]:
    """Consecutive messages of one session (the host's batches hold one session; be safe anyway)."""
    group: list[SessionEnvelope] = []
    for envelope in envelopes:
        if group and envelope.session_id != group[0].session_id:
            yield group
            group = []
        group.append(envelope)
    if group:
        yield group


def process_batch(
    processor: StreamProcessor[Any, Any], envelopes: Sequence[SessionEnvelope], now: datetime | None = None
) -> list[ProcessingResult]:
    """One result per envelope, in order; one store commit per session in the batch.

    Raises TransientStoreError when the store fails: the caller must let the whole batch be redelivered.
    """
    from shared.engine.processor import StreamProcessor

    at = now or processor.clock()
    results: list[ProcessingResult] = []
    for group in sessions_in_order(envelopes):
        staged = StagedSession(processor.store, group[0].session_id)
        sequential = StreamProcessor(
            staged, processor.workflow, park_limit=processor.park_limit, clock=lambda: at
        )
        decided = [sequential.process(envelope) for envelope in group]
        try:
            processor.store.commit_batch(staged.session_id, staged.units)
        except TransientStoreError:
            raise
        except Exception as exc:
            log.warning(
                "batch commit failed; committing its messages one by one",
                extra={"session_id": staged.session_id, "messages": len(group), "error": type(exc).__name__},
            )
            decided = [processor.process(envelope) for envelope in group]
        results.extend(decided)
    return results
