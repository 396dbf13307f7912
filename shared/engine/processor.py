"""The imperative shell around the pure core: read the ledger, decide, commit once.

One envelope in, exactly one outcome out, all its effects in one store commit (see `decide.py` for the
rules). Raises TransientStoreError when the store fails: nothing was written, the message is redelivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from shared.engine.decide import (
    DEFAULT_PARK_LIMIT,
    Decision,
    ParkedMissing,
    ProcessingResult,
    admit,
    decide,
    reject,
)
from shared.engine.records import ParkedMessage, utcnow
from shared.engine.workflow import ContractError, Workflow
from shared.envelope import SessionEnvelope
from shared.store.base import ConcurrencyConflict, OrderStore

S = TypeVar("S")
P = TypeVar("P")

__all__ = ["DEFAULT_PARK_LIMIT", "ProcessingResult", "StreamProcessor"]


class _StoredParked(Mapping[int, ParkedMessage]):
    """The stream's parked messages, read from the store only when the decision asks for one."""

    def __init__(self, store: OrderStore, session_id: str, stream_key: str) -> None:
        self._store, self._session_id, self._stream_key = store, session_id, stream_key

    def __getitem__(self, sequence: int) -> ParkedMessage:
        parked = self._store.get_parked(self._session_id, self._stream_key, sequence)
        if parked is None:
            raise KeyError(sequence)
        return parked

    def __iter__(self) -> Iterator[int]:  # the ledger lists the sequences; the decision never iterates
        return iter(())

    def __len__(self) -> int:
        return 0


class StreamProcessor(Generic[S, P]):
    def __init__(
        self,
        store: OrderStore,
        workflow: Workflow[S, P],
        *,
        park_limit: int = DEFAULT_PARK_LIMIT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if park_limit < 1:
            raise ValueError("park_limit must be at least 1")
        self.store = store
        self.workflow = workflow
        self.park_limit = park_limit
        self._clock = clock

    def process(self, envelope: SessionEnvelope) -> ProcessingResult:
        """Decide and commit. Raises TransientStoreError when the store fails: nothing was written."""
        decision = self._decide(envelope, self._clock())
        self.store.commit(decision.changes)  # the one commit
        return decision.result

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    def process_batch(self, envelopes: Sequence[SessionEnvelope]) -> list[ProcessingResult]:
        """One session's messages: one outcome each, in order, and one store commit (see `batch.py`)."""
        from shared.engine.batch import process_batch

        return process_batch(self, envelopes)

    def _decide(self, envelope: SessionEnvelope, now: datetime) -> Decision:
        step = admit(self.workflow, envelope)
        if isinstance(step, ContractError):
            return reject(envelope, step, now)
        sid = envelope.session_id
        ledger = self.store.get_ledger(sid, step.stream_key) or self.workflow.new_ledger(
            sid, step.stream_key, self.workflow.initial_state(sid, step.stream_key)
        )
        parked = _StoredParked(self.store, sid, step.stream_key)
        try:
            return decide(self.workflow, ledger, step, envelope, parked, now=now, park_limit=self.park_limit)
        except ParkedMissing as exc:  # the ledger and the parked rows disagree: someone else moved on
            raise ConcurrencyConflict(str(exc)) from exc
