"""The pure core: (a stream's ledger, one step, what is parked) -> (the changes, the outcome).

No I/O: the caller reads the ledger and hands over a read-only view of the parked messages; it commits
the returned changes in one transaction. Order of decisions for a step of stream K with sequence N (next
expected: E):
  N already applied or parked  -> duplicate (same content) or quarantined conflicting-duplicate
  K is terminal                -> quarantined invalid-transition (never parked)
  N > E                        -> parked (up to park_limit, else quarantined resequence-overflow)
  N == E                       -> applied, then parked N+1, N+2, ... are applied in the same commit
A refusal of an in-sequence step quarantines it without advancing K: later steps wait parked until a
corrected message for N is replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from shared.engine.ledger import Ledger, Seen
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.records import IdempotencyRecord, ParkedMessage, QuarantineRecord, SessionChanges
from shared.engine.workflow import ContractError, Step, StepRefused, Workflow
from shared.envelope import SessionEnvelope

S = TypeVar("S")
P = TypeVar("P")

DEFAULT_PARK_LIMIT = 50


@dataclass(frozen=True, slots=True)
class ProcessingResult:
    """What happened to one message; the service turns it into the per-message log line."""

    outcome: Outcome
    reason: QuarantineReason | None = None
    detail: str | None = None
    session_key: str | None = None  # the session the body named (None when the body did not parse)
    stream_key: str | None = None
    sequence: int | None = None
    step: str | None = None
    applied_sequences: tuple[int, ...] = ()  # this message's and any parked ones it released
    quarantine_ids: tuple[str, ...] = ()  # this message's and any parked ones that could never apply
    status: str | None = None  # the stream's state label after the message


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one message changes (commit it once), and the result to report."""

    changes: SessionChanges
    result: ProcessingResult


class ParkedMissing(LookupError):
    """The ledger lists a parked sequence the parked messages do not hold (another writer moved on)."""


def admit(workflow: Workflow[Any, P], envelope: SessionEnvelope) -> Step[P] | ContractError:
    """Parse the body and check it belongs to the broker's session; returns (not raises) a ContractError."""
    try:
        step = workflow.parse(envelope.body)
    except ContractError as exc:
        return exc
    if step.session_key != envelope.session_id:
        return ContractError(
            QuarantineReason.SESSION_MISMATCH, "the body's session key is not the message's session id"
        )
    return step


def reject(envelope: SessionEnvelope, error: ContractError, now: datetime) -> Decision:
    """A body that is not a valid message: quarantine it whole; no stream changes."""
    record = QuarantineRecord.from_envelope(envelope, error.reason, error.detail, at=now)
    return Decision(
        SessionChanges(envelope.session_id, quarantine=[record]),
        ProcessingResult(Outcome.QUARANTINED, error.reason, error.detail, quarantine_ids=(record.id,)),
    )


@dataclass(slots=True)
class _Draft(Generic[S, P]):
    workflow: Workflow[S, P]
    ledger: Ledger[S]  # a copy: the caller's ledger is never changed
    step: Step[P]
    envelope: SessionEnvelope
    parked: Mapping[int, ParkedMessage]
    now: datetime
    changes: SessionChanges
    applied: list[int] = field(default_factory=list)


def decide(
    workflow: Workflow[S, P],
    ledger: Ledger[S],
    step: Step[P],
    envelope: SessionEnvelope,
    parked: Mapping[int, ParkedMessage],
    *,
    now: datetime,
    park_limit: int = DEFAULT_PARK_LIMIT,
) -> Decision:
    """Decide one admitted step. Raises ParkedMissing when `parked` lacks a sequence the ledger lists."""
    d = _Draft(workflow, ledger.copy(), step, envelope, parked, now, SessionChanges(envelope.session_id))
    led, seq = d.ledger, step.sequence
    seen = led.seen(seq, step.content_hash)
    if seen is Seen.DUPLICATE:
        led.record_duplicate()
        return _keep(d, Outcome.DUPLICATE)
    if seen is not Seen.NEW:
        return _reject(
            d,
            QuarantineReason.CONFLICTING_DUPLICATE,
            f"sequence {seq} is already {seen.value} with different content",
        )
    if workflow.is_terminal(led.state):
        return _reject(
            d,
            QuarantineReason.INVALID_TRANSITION,
            f"stream is {workflow.status(led.state)} (terminal); {step.name} cannot follow",
        )
    if led.is_ahead(seq):
        if len(led.parked) >= park_limit:
            return _reject(
                d,
                QuarantineReason.RESEQUENCE_OVERFLOW,
                f"{len(led.parked)} messages already wait for sequence {led.next_sequence}",
            )
        led.park(seq, step.content_hash)
        d.changes.park.append(
            ParkedMessage(envelope.session_id, led.stream_key, seq, step.content_hash, envelope, now)
        )
        return _keep(d, Outcome.PARKED)
    try:
        _apply(d, step, envelope)
    except StepRefused as exc:
        return _reject(d, exc.reason, exc.detail)
    _release_parked(d)
    return _keep(d, Outcome.APPLIED)


def _apply(d: _Draft[S, P], step: Step[P], envelope: SessionEnvelope) -> None:
    state = d.workflow.apply(d.ledger.state, step)  # raises StepRefused before anything changes
    d.ledger.record_applied(step.sequence, step.name, step.content_hash, envelope.message_id, state, d.now)
    d.changes.idempotency.append(
        IdempotencyRecord(
            envelope.session_id,
            d.ledger.stream_key,
            step.sequence,
            step.content_hash,
            envelope.message_id,
            d.now,
        )
    )
    d.applied.append(step.sequence)


def _release_parked(d: _Draft[S, P]) -> None:
    """Apply parked successors now due; quarantine what can never apply once the stream is terminal."""
    led, workflow = d.ledger, d.workflow
    while (seq := led.due()) is not None and not workflow.is_terminal(led.state):
        parked = _take_parked(d, seq)
        step = workflow.parse(parked.envelope.body)  # it was valid when it was parked
        try:
            _apply(d, step, parked.envelope)
        except StepRefused as exc:
            _quarantine(d, parked.envelope, exc.reason, exc.detail, step)
            return
    if workflow.is_terminal(led.state):
        for seq in sorted(led.parked):
            parked = _take_parked(d, seq)
            _quarantine(
                d,
                parked.envelope,
                QuarantineReason.INVALID_TRANSITION,
                f"stream became {workflow.status(led.state)} (terminal) while sequence {seq} waited",
                workflow.parse(parked.envelope.body),
            )


def _take_parked(d: _Draft[Any, Any], seq: int) -> ParkedMessage:
    parked = d.parked.get(seq)
    if parked is None:
        raise ParkedMissing(f"parked message {d.ledger.stream_key}/{seq} is missing")
    d.ledger.unpark(seq)
    d.changes.unpark.append((d.ledger.stream_key, seq))
    return parked


def _quarantine(
    d: _Draft[Any, Any], envelope: SessionEnvelope, reason: QuarantineReason, detail: str, step: Step[Any]
) -> QuarantineRecord:
    record = QuarantineRecord.from_envelope(
        envelope, reason, detail, at=d.now, stream_key=step.stream_key, sequence=step.sequence, step=step.name
    )
    d.changes.quarantine.append(record)
    return record


def _reject(d: _Draft[Any, Any], reason: QuarantineReason, detail: str) -> Decision:
    """Quarantine this message; the stream itself does not change (its ledger is not written)."""
    record = _quarantine(d, d.envelope, reason, detail, d.step)
    return Decision(d.changes, _result(d, Outcome.QUARANTINED, reason, detail, (record.id,)))


def _keep(d: _Draft[Any, Any], outcome: Outcome) -> Decision:
    d.ledger.updated_at = d.now
    d.changes.ledger = d.ledger
    released = tuple(q.id for q in d.changes.quarantine)
    return Decision(d.changes, _result(d, outcome, None, None, released))


def _result(
    d: _Draft[Any, Any],
    outcome: Outcome,
    reason: QuarantineReason | None,
    detail: str | None,
    quarantine_ids: tuple[str, ...],
) -> ProcessingResult:
    return ProcessingResult(
        outcome,
        reason,
        detail,
        session_key=d.step.session_key,
        stream_key=d.step.stream_key,
        sequence=d.step.sequence,
        step=d.step.name,
        applied_sequences=tuple(d.applied),
        quarantine_ids=quarantine_ids,
        status=d.workflow.status(d.ledger.state),
    )
