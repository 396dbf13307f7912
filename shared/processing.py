"""The message pipeline: one envelope in, exactly one outcome out, all its effects in one store commit.

Order of decisions for a well-formed message of order O with sequence N (next expected: E):
  N already applied or parked  -> duplicate (same content) or quarantined conflicting-duplicate
  O is terminal                -> quarantined invalid-transition (never parked)
  N > E                        -> parked (up to park_limit, else quarantined resequence-overflow)
  N == E                       -> applied, then parked N+1, N+2, ... are applied in the same commit
A domain refusal of an in-sequence step quarantines it without advancing O: later steps wait parked
until a corrected message for N is replayed.

Only store failures leave `process` (TransientStoreError: the host abandons, the broker redelivers). Any
other exception while reading, hashing or evaluating a message is about that message and would fail again
on every redelivery, so it is quarantined as `unprocessable` (the detail names the exception type only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contract import ContractError, content_hash, parse_order_step
from shared.domain.model import DomainError, Order
from shared.domain.workflow import OrderWorkflow
from shared.envelope import SessionEnvelope
from shared.outcomes import Outcome, QuarantineReason
from shared.records import (
    AppliedStep,
    IdempotencyRecord,
    OrderLedger,
    ParkedMessage,
    QuarantineRecord,
    SessionChanges,
    utcnow,
)
from shared.store.base import ConcurrencyConflict, OrderStore, StoreUnavailable, TransientStoreError

DEFAULT_PARK_LIMIT = 50


@dataclass(frozen=True, slots=True)
class ProcessingResult:
    outcome: Outcome
    reason: QuarantineReason | None = None
    detail: str | None = None
    customer_id: str | None = None
    order_id: str | None = None
    sequence: int | None = None
    step: str | None = None
    applied_sequences: tuple[int, ...] = ()  # this message's and any parked ones it released
    quarantine_ids: tuple[str, ...] = ()  # this message's and any parked ones that could never apply
    order_state: str | None = None


@dataclass(slots=True)
class _Work:
    """One message's decision in progress."""

    envelope: SessionEnvelope
    message: Any
    ledger: OrderLedger
    changes: SessionChanges
    now: datetime
    applied: list[int] = field(default_factory=list)


class OrderStepProcessor:
    def __init__(
        self,
        store: OrderStore,
        *,
        park_limit: int = DEFAULT_PARK_LIMIT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if park_limit < 1:
            raise ValueError("park_limit must be at least 1")
        self.store = store
        self.park_limit = park_limit
        self._clock = clock

    def process(self, envelope: SessionEnvelope) -> ProcessingResult:
        """Decide and commit. Raises TransientStoreError when the store fails: nothing was written."""
        now = self._clock()
        try:
            message, digest = self._read(envelope)
        except ContractError as exc:
            return self._quarantine_alone(envelope, exc.reason, exc.detail, now)
        try:
            ledger = self.store.get_ledger(envelope.session_id, message.order_id) or OrderLedger(
                order=Order(customer_id=message.customer_id, order_id=message.order_id)
            )
            work = _Work(envelope, message, ledger, SessionChanges(envelope.session_id), now)
            return self._decide(work, digest)
        except TransientStoreError:
            raise
        except Exception as exc:  # a bug or a limit this message hits; retrying cannot help
            return self._quarantine_alone(
                envelope, QuarantineReason.UNPROCESSABLE, _unprocessable(exc, "evaluating"), now, message
            )

    def _read(self, envelope: SessionEnvelope) -> tuple[Any, str]:
        """The validated message and its content hash, or ContractError: whatever the body holds."""
        try:
            message = parse_order_step(envelope.body)
            if message.customer_id != envelope.session_id:
                raise ContractError(
                    QuarantineReason.SESSION_MISMATCH,
                    "the body's customer_id is not the message's session id",
                )
            return message, content_hash(message)
        except ContractError:
            raise
        except Exception as exc:  # the reader's bounds should make this unreachable; never a retry loop
            raise ContractError(QuarantineReason.UNPROCESSABLE, _unprocessable(exc, "reading")) from None

    def _quarantine_alone(
        self,
        envelope: SessionEnvelope,
        reason: QuarantineReason,
        detail: str,
        now: datetime,
        message: Any = None,
    ) -> ProcessingResult:
        """Commit only this message's quarantine record (no order changes).

        If the store refuses the record itself for a reason other than an outage (a size limit), it is
        written once more without application properties; a store that refuses even that is failing.
        """
        ids: dict[str, Any] = {}
        if message is not None:
            ids = {"order_id": message.order_id, "sequence": message.sequence, "step": message.step}
        customer_id = message.customer_id if message is not None else None
        record = QuarantineRecord.from_envelope(envelope, reason, detail, at=now, **ids)
        try:
            self.store.commit(SessionChanges(envelope.session_id, quarantine=[record]))
        except TransientStoreError:
            raise
        except Exception:
            record = QuarantineRecord.from_envelope(
                envelope, reason, detail, at=now, keep_metadata=False, **ids
            )
            try:
                self.store.commit(SessionChanges(envelope.session_id, quarantine=[record]))
            except TransientStoreError:
                raise
            except Exception as exc:
                raise StoreUnavailable(f"{type(exc).__name__} while storing a quarantine record") from exc
        return ProcessingResult(
            Outcome.QUARANTINED,
            reason,
            detail,
            customer_id=customer_id,
            quarantine_ids=(record.id,),
            **ids,
        )

    def _decide(self, work: _Work, digest: str) -> ProcessingResult:
        ledger, seq = work.ledger, work.message.sequence
        known = ledger.applied_hash(seq) or ledger.parked.get(seq)
        if known == digest:
            ledger.duplicates += 1
            return self._commit(work, Outcome.DUPLICATE)
        if known is not None or seq < ledger.next_sequence:
            where = "applied" if seq < ledger.next_sequence else "parked"
            return self._reject(
                work,
                QuarantineReason.CONFLICTING_DUPLICATE,
                f"sequence {seq} is already {where} with different content",
            )
        if ledger.order.state.is_terminal:
            return self._reject(
                work,
                QuarantineReason.INVALID_TRANSITION,
                f"order is {ledger.order.state.value} (terminal); {work.message.step} cannot follow",
            )
        if seq > ledger.next_sequence:
            if len(ledger.parked) >= self.park_limit:
                return self._reject(
                    work,
                    QuarantineReason.RESEQUENCE_OVERFLOW,
                    f"{len(ledger.parked)} messages already wait for sequence {ledger.next_sequence}",
                )
            ledger.parked[seq] = digest
            work.changes.park.append(
                ParkedMessage(work.envelope.session_id, ledger.order_id, seq, digest, work.envelope, work.now)
            )
            return self._commit(work, Outcome.PARKED)
        try:
            self._apply(work, work.message, work.envelope, digest)
        except DomainError as exc:
            return self._reject(work, QuarantineReason(exc.reason), str(exc))
        self._release_parked(work)
        return self._commit(work, Outcome.APPLIED)

    def _apply(self, work: _Work, message: Any, envelope: SessionEnvelope, digest: str) -> None:
        ledger = work.ledger
        ledger.order = OrderWorkflow.apply(ledger.order, message.step, message.to_command())
        ledger.last_sequence = message.sequence
        ledger.applied.append(
            AppliedStep(message.sequence, message.step, digest, envelope.message_id, work.now)
        )
        work.changes.idempotency.append(
            IdempotencyRecord(
                envelope.session_id, ledger.order_id, message.sequence, digest, envelope.message_id, work.now
            )
        )
        work.applied.append(message.sequence)

    def _release_parked(self, work: _Work) -> None:
        """Apply parked successors now due; quarantine what can never apply once the order is terminal.

        A parked message that no longer reads or applies (a stricter contract since it was parked, a
        domain refusal, anything it raises) is quarantined itself; the order stops before it.
        """
        ledger = work.ledger
        while ledger.next_sequence in ledger.parked and not ledger.order.state.is_terminal:
            parked = self._take_parked(work, ledger.next_sequence)
            try:
                message = parse_order_step(parked.envelope.body)
                self._apply(work, message, parked.envelope, parked.content_hash)
            except ContractError as exc:
                self._quarantine_parked(work, parked, exc.reason, exc.detail)
                return
            except DomainError as exc:
                self._quarantine(work, parked.envelope, QuarantineReason(exc.reason), str(exc), message)
                return
            except TransientStoreError:
                raise
            except Exception as exc:
                detail = _unprocessable(exc, "releasing")
                self._quarantine_parked(work, parked, QuarantineReason.UNPROCESSABLE, detail)
                return
        if ledger.order.state.is_terminal:
            for seq in sorted(ledger.parked):
                parked = self._take_parked(work, seq)
                self._quarantine_parked(
                    work,
                    parked,
                    QuarantineReason.INVALID_TRANSITION,
                    f"order became {ledger.order.state.value} (terminal) while sequence {seq} waited",
                )

    def _quarantine_parked(
        self, work: _Work, parked: ParkedMessage, reason: QuarantineReason, detail: str
    ) -> None:
        """Quarantine a parked message by what its parked row says (its body need not parse any more)."""
        step: str | None = None
        with contextlib.suppress(Exception):  # the step is informational; the record keeps the body
            step = parse_order_step(parked.envelope.body).step
        work.changes.quarantine.append(
            QuarantineRecord.from_envelope(
                parked.envelope,
                reason,
                detail,
                at=work.now,
                order_id=parked.order_id,
                sequence=parked.sequence,
                step=step,
            )
        )

    def _take_parked(self, work: _Work, seq: int) -> ParkedMessage:
        ledger = work.ledger
        parked = self.store.get_parked(work.envelope.session_id, ledger.order_id, seq)
        if parked is None:  # the ledger and the parked rows disagree: someone else moved on; re-read
            raise ConcurrencyConflict(f"parked message {ledger.order_id}/{seq} is missing")
        del ledger.parked[seq]
        work.changes.unpark.append((ledger.order_id, seq))
        return parked

    def _quarantine(
        self, work: _Work, envelope: SessionEnvelope, reason: QuarantineReason, detail: str, message: Any
    ) -> QuarantineRecord:
        record = QuarantineRecord.from_envelope(
            envelope,
            reason,
            detail,
            at=work.now,
            order_id=message.order_id,
            sequence=message.sequence,
            step=message.step,
        )
        work.changes.quarantine.append(record)
        return record

    def _reject(self, work: _Work, reason: QuarantineReason, detail: str) -> ProcessingResult:
        """Quarantine this message; the order itself does not change."""
        record = self._quarantine(work, work.envelope, reason, detail, work.message)
        self.store.commit(work.changes)
        return self._result(work, Outcome.QUARANTINED, reason, detail, extra_quarantine=(record.id,))

    def _commit(self, work: _Work, outcome: Outcome) -> ProcessingResult:
        work.ledger.updated_at = work.now
        work.changes.ledger = work.ledger
        self.store.commit(work.changes)
        released = tuple(q.id for q in work.changes.quarantine)
        return self._result(work, outcome, extra_quarantine=released)

    def _result(
        self,
        work: _Work,
        outcome: Outcome,
        reason: QuarantineReason | None = None,
        detail: str | None = None,
        extra_quarantine: tuple[str, ...] = (),
    ) -> ProcessingResult:
        m = work.message
        return ProcessingResult(
            outcome,
            reason,
            detail,
            customer_id=m.customer_id,
            order_id=m.order_id,
            sequence=m.sequence,
            step=m.step,
            applied_sequences=tuple(work.applied),
            quarantine_ids=extra_quarantine,
            order_state=work.ledger.order.state.value,
        )


def _unprocessable(exc: Exception, stage: str) -> str:
    """What an unexpected failure says about a message: its type, never its text (it may echo payload)."""
    return f"{type(exc).__name__} while {stage} the message"
