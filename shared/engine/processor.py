"""The imperative shell around the pure core: read the ledger, decide, commit once.

One envelope in, exactly one outcome out, all its effects in one store commit (see `decide.py` for the
rules). Raises TransientStoreError when the store fails: nothing was written, the message is redelivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Generic, TypeVar

from shared.engine.decide import (
    Decision,
    ParkedMissing,
    ProcessingResult,
    admit,
    decide,
    quarantine_only,
    reject,
    unprocessable,
)
from shared.engine.ledger import DEFAULT_PARK_LIMIT
from shared.engine.outcomes import QuarantineReason
from shared.engine.records import ParkedMessage, utcnow
from shared.engine.workflow import ContractError, Step, Workflow
from shared.envelope import SessionEnvelope
from shared.store.base import (
    ConcurrencyConflict,
    OrderStore,
    StoreRejected,
    StoreUnavailable,
    TransientStoreError,
)

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

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    def process(self, envelope: SessionEnvelope) -> ProcessingResult:
        """Decide and commit. Raises TransientStoreError when the store fails: nothing was written.

        Any other failure is about this message (it would fail again on every redelivery), so the message
        is quarantined instead: `store-limit` when the store refused the decision as beyond one of its
        limits (StoreRejected: the detail names the limit), `unprocessable` when deciding or committing it
        failed otherwise; and when
        the store refuses even that record (a size limit), once more without application properties.
        A store that refuses that too is failing: StoreUnavailable.
        """
        now = self._clock()
        step = admit(self.workflow, envelope)
        decision: Decision | None = None
        failure: Exception | None = None
        for stage in _STAGES:
            try:
                candidate = self._stage(stage, envelope, step, now, decision, failure)
                if candidate is None:
                    continue
                decision = candidate
                self.store.commit(decision.changes)  # the one commit
                return decision.result
            except TransientStoreError:
                raise
            except Exception as exc:
                failure = exc
        raise StoreUnavailable(f"{type(failure).__name__} while storing a quarantine record") from failure

    def _stage(
        self,
        stage: str,
        envelope: SessionEnvelope,
        step: Step[P] | ContractError,
        now: datetime,
        previous: Decision | None,
        failure: Exception | None,
    ) -> Decision | None:
        """The decision to try committing at `stage`, or None to skip the stage."""
        if stage == "decide":
            if isinstance(step, ContractError):
                return reject(envelope, step, now)
            return self._decide(envelope, step, now)
        if stage == "quarantine":
            if isinstance(step, ContractError):
                return None  # the decision already was this quarantine record
            assert failure is not None
            if isinstance(failure, StoreRejected):  # its text names the limit, never ids or payload
                return quarantine_only(envelope, QuarantineReason.STORE_LIMIT, str(failure), now, step=step)
            detail = unprocessable(failure, "evaluating")
            return quarantine_only(envelope, QuarantineReason.UNPROCESSABLE, detail, now, step=step)
        if previous is None or previous.result.reason is None:
            return None
        return quarantine_only(
            envelope,
            previous.result.reason,
            previous.result.detail or "",
            now,
            step=None if isinstance(step, ContractError) else step,
            keep_metadata=False,
        )

    def _decide(self, envelope: SessionEnvelope, step: Step[P], now: datetime) -> Decision:
        sid = envelope.session_id
        ledger = self.store.get_ledger(sid, step.stream_key) or self.workflow.new_ledger(
            sid, step.stream_key, self.workflow.initial_state(sid, step.stream_key)
        )
        parked = _StoredParked(self.store, sid, step.stream_key)
        try:
            return decide(self.workflow, ledger, step, envelope, parked, now=now, park_limit=self.park_limit)
        except ParkedMissing as exc:  # the ledger and the parked rows disagree: someone else moved on
            raise ConcurrencyConflict(str(exc)) from exc


# What one message may commit, in order, until the store takes one: the decision; if deciding or
# committing it failed, an `unprocessable` quarantine record; that record without application properties.
_STAGES = ("decide", "quarantine", "without-properties")
