"""The pure core: (a stream's ledger, one step, what is parked) -> (the changes, the outcome).

It writes nothing and keeps no state: the caller reads the ledger, hands over a read-only mapping of the
parked messages (sequence -> message) and commits the returned changes in one transaction. The
processor's mapping reads a parked message from the store only when the decision asks for one (a read,
never a write), so a message that releases nothing costs no parked read; tests pass a plain dict.

Order of decisions for a step of stream K with sequence N (next expected: E):
  N already applied or parked  -> duplicate (same content) or quarantined conflicting-duplicate
  K is terminal                -> quarantined invalid-transition (never parked)
  N > E                        -> parked (up to park_limit, else quarantined resequence-overflow)
  N == E                       -> applied, then parked N+1, N+2, ... are applied in the same commit
A refusal of an in-sequence step quarantines it without advancing K: later steps wait parked until a
corrected message for N is replayed.

Any other exception while reading a body (parse, hash) or releasing a parked message is about that
message and would fail again on every redelivery: it is quarantined as `unprocessable` (the detail names
the exception type only, never its text, which may echo the payload).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from shared.engine.ledger import DEFAULT_PARK_LIMIT, Ledger, Seen
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.records import IdempotencyRecord, ParkedMessage, QuarantineRecord, SessionChanges
from shared.engine.workflow import ContractError, Step, StepRefused, Workflow
from shared.envelope import SessionEnvelope

S = TypeVar("S")
P = TypeVar("P")


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
    # steps the stream holds parked after the message (None: no stream was read). The log line carries it
    # so the logs alone tell when a stream's gap opened and when it closed (stuck-order alert, workbook).
    parked: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one message changes (commit it once), and the result to report."""

    changes: SessionChanges
    result: ProcessingResult


class ParkedMissing(LookupError):
    """The ledger lists a parked sequence the parked messages do not hold (another writer moved on)."""


def unprocessable(exc: BaseException, stage: str) -> str:
    """What an unexpected failure says about a message: its type, never its text (it may echo payload)."""
    return f"{type(exc).__name__} while {stage} the message"


def admit(workflow: Workflow[Any, P], envelope: SessionEnvelope) -> Step[P] | ContractError:
    """Parse the body and check it belongs to the broker's session; returns (not raises) a ContractError,
    whatever the body holds."""
    try:
        step = workflow.parse(envelope.body)
    except ContractError as exc:
        return exc
    except Exception as exc:  # the reader's bounds should make this unreachable; never a retry loop
        return ContractError(QuarantineReason.UNPROCESSABLE, unprocessable(exc, "reading"))
    if step.session_key != envelope.session_id:
        return ContractError(
            QuarantineReason.SESSION_MISMATCH, "the body's session key is not the message's session id"
        )
    return step


def quarantine_only(
    envelope: SessionEnvelope,
    reason: QuarantineReason,
    detail: str,
    now: datetime,
    *,
    step: Step[Any] | None = None,
    keep_metadata: bool = True,
) -> Decision:
    """Quarantine this message whole and change no stream: for a body that is not a valid message
    (`step` None), or for a step whose decision failed. The result names the body's ids only when the
    body was read."""
    ids: dict[str, Any] = {}
    if step is not None:
        ids = {"stream_key": step.stream_key, "sequence": step.sequence, "step": step.name}
    record = QuarantineRecord.from_envelope(
        envelope, reason, detail, at=now, keep_metadata=keep_metadata, **ids
    )
    return Decision(
        SessionChanges(envelope.session_id, quarantine=[record]),
        ProcessingResult(
            Outcome.QUARANTINED,
            reason,
            detail,
            session_key=None if step is None else step.session_key,
            quarantine_ids=(record.id,),
            **ids,
        ),
    )


def reject(envelope: SessionEnvelope, error: ContractError, now: datetime) -> Decision:
    """A body that is not a valid message: quarantine it whole; no stream changes."""
    return quarantine_only(envelope, error.reason, error.detail, now)


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
        if not led.can_park(park_limit):
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
        _apply(d, step, envelope, step.content_hash)
    except StepRefused as exc:
        return _reject(d, exc.reason, exc.detail)
    _release_parked(d)
    return _keep(d, Outcome.APPLIED)


def _apply(d: _Draft[S, P], step: Step[P], envelope: SessionEnvelope, content_hash: str) -> None:
    state = d.workflow.apply(d.ledger.state, step)  # raises before anything changes
    d.ledger.record_applied(step.sequence, step.name, content_hash, envelope.message_id, state, d.now)
    d.changes.idempotency.append(
        IdempotencyRecord(
            envelope.session_id, d.ledger.stream_key, step.sequence, content_hash, envelope.message_id, d.now
        )
    )
    d.applied.append(step.sequence)


def _release_parked(d: _Draft[S, P]) -> None:
    """Apply parked successors now due; quarantine what can never apply once the stream is terminal.

    A parked message that no longer reads or applies (a stricter contract since it was parked, a
    refusal, anything it raises) is quarantined itself; the stream stops before it.
    """
    led, workflow = d.ledger, d.workflow
    while (seq := led.due()) is not None and not workflow.is_terminal(led.state):
        parked = _take_parked(d, seq)
        try:
            step = workflow.parse(parked.envelope.body)
            _apply(d, step, parked.envelope, parked.content_hash)
        except ContractError as exc:
            _quarantine_parked(d, parked, exc.reason, exc.detail)
            return
        except StepRefused as exc:
            _quarantine_parked(d, parked, exc.reason, exc.detail)
            return
        except Exception as exc:
            _quarantine_parked(d, parked, QuarantineReason.UNPROCESSABLE, unprocessable(exc, "releasing"))
            return
    if workflow.is_terminal(led.state):
        for seq in sorted(led.parked):
            _quarantine_parked(
                d,
                _take_parked(d, seq),
                QuarantineReason.INVALID_TRANSITION,
                f"stream became {workflow.status(led.state)} (terminal) while sequence {seq} waited",
            )


def _take_parked(d: _Draft[Any, Any], seq: int) -> ParkedMessage:
    parked = d.parked.get(seq)
    if parked is None:
        raise ParkedMissing(f"parked message {d.ledger.stream_key}/{seq} is missing")
    d.ledger.unpark(seq)
    d.changes.unpark.append((d.ledger.stream_key, seq))
    return parked


def _quarantine_parked(
    d: _Draft[Any, Any], parked: ParkedMessage, reason: QuarantineReason, detail: str
) -> None:
    """Quarantine a parked message by what its parked row says (its body need not parse any more)."""
    name: str | None = None
    with contextlib.suppress(Exception):  # the step name is informational; the record keeps the body
        name = d.workflow.parse(parked.envelope.body).name
    d.changes.quarantine.append(
        QuarantineRecord.from_envelope(
            parked.envelope,
            reason,
            detail,
            at=d.now,
            stream_key=parked.stream_key,
            sequence=parked.sequence,
            step=name,
        )
    )


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
        parked=len(d.ledger.parked),
    )
