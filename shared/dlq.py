"""The dead-letter queue use cases behind `orders dlq`: read it, and resubmit its messages safely.

Resubmitting is *send, then complete*: each dead-lettered message is re-sent to its queue with its body,
session id, content type, correlation id, subject and application properties, under a NEW message id
derived deterministically from the dead-lettered copy (`resubmit_id`), and the DLQ copy is completed only
after the send succeeded. Why a new id: the queue's duplicate detection drops a message whose id it has
seen within its window, so a resend under the original id is silently dropped. Why a *derived* id: if the
run stops between send and complete, the DLQ copy comes back when its lock expires and the next run sends
it again under the same derived id; duplicate detection drops that copy and the run then completes it. A
resent step that the app already applied is a `duplicate` (its (order, sequence) idempotency).

This module knows nothing of argparse, rich or the SDK: the CLI (orders_cli/dlq.py) renders what it returns.
The broker is reached through `DeadLetterQueue` and a send function; orders_cli/deadletters.py adapts the
real SDK to them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from shared.message_ids import resubmit_message_id

# Properties the broker adds when it dead-letters a message: not re-sent.
DEAD_LETTER_PROPERTIES = frozenset({"DeadLetterReason", "DeadLetterErrorDescription"})
RESUBMITTED_FROM = "orders-resubmitted-from"  # original message id, for traceability
RESUBMITTED_REASON = "orders-resubmitted-reason"  # the DeadLetterReason it was resubmitted from
NO_REASON = "(none)"
SEQUENCE_PREFIX = "seq:"

Status = Literal["resubmitted", "would-resubmit", "skipped", "failed", "not-found"]


class DlqError(Exception):
    """A use-case failure to report as one line (bad selection, nothing matched)."""


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue, as read (peeked or received) from the broker."""

    sequence_number: int
    message_id: str | None
    session_id: str | None
    reason: str
    description: str | None
    enqueued_time: datetime | None
    delivery_count: int | None
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    application_properties: Mapping[str, Any]
    body: bytes | None  # None: not an AMQP data body (cannot be re-sent as bytes)
    handle: Any = field(default=None, compare=False, repr=False)  # the SDK message, for settlement

    def summary(self) -> dict[str, Any]:
        """The metadata (no body) as JSON-ready values."""
        return {
            "sequence_number": self.sequence_number,
            "message_id": self.message_id,
            "session_id": self.session_id,
            "reason": self.reason,
            "description": self.description,
            "enqueued_time": self.enqueued_time.isoformat() if self.enqueued_time else None,
            "delivery_count": self.delivery_count,
            "content_type": self.content_type,
            "correlation_id": self.correlation_id,
            "subject": self.subject,
            "application_properties": {k: _jsonable(v) for k, v in self.application_properties.items()},
            "body_bytes": None if self.body is None else len(self.body),
            "resubmit_message_id": resubmit_id(self),
        }


@dataclass(frozen=True)
class Resubmission:
    """What is sent back to the queue for one dead-lettered message."""

    message_id: str
    session_id: str | None
    body: bytes
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    application_properties: Mapping[str, Any]


class DeadLetterQueue(Protocol):
    """The dead-letter sub-queue of one queue (peek-lock receive; peek does not lock)."""

    def peek(self, from_sequence: int, max_count: int) -> list[DeadLetter]: ...

    def receive(self, max_count: int) -> list[DeadLetter]: ...

    def complete(self, letter: DeadLetter) -> None: ...

    def abandon(self, letter: DeadLetter) -> None: ...


SendFn = Callable[[Sequence[Resubmission]], None]
ProgressFn = Callable[[int], None]


# --------------------------------------------------------------------------------------------------
# reading


def peek_all(dlq: DeadLetterQueue, *, page: int = 250) -> list[DeadLetter]:
    """Every message in the DLQ, in sequence order, without locking any."""
    letters: list[DeadLetter] = []
    next_seq = 1  # not 0: the SDK reads 0 as "after the last message this receiver saw"
    while True:
        batch = dlq.peek(next_seq, page)
        batch = [m for m in batch if m.sequence_number >= next_seq]
        if not batch:
            return letters
        letters.extend(batch)
        next_seq = max(m.sequence_number for m in batch) + 1


def count_by_reason(letters: Iterable[DeadLetter]) -> dict[str, int]:
    """{DeadLetterReason: messages}, most frequent first (ties by name)."""
    counts = Counter(m.reason for m in letters)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def matches(letter: DeadLetter, ref: str) -> bool:
    """`ref` is a message id, or `seq:N` for the DLQ sequence number N."""
    if ref.startswith(SEQUENCE_PREFIX) and ref[len(SEQUENCE_PREFIX) :].isdigit():
        return letter.sequence_number == int(ref[len(SEQUENCE_PREFIX) :])
    return letter.message_id == ref


def find(letters: Iterable[DeadLetter], ref: str) -> list[DeadLetter]:
    """The messages `ref` names (a message id can name several copies)."""
    return [m for m in letters if matches(m, ref)]


# --------------------------------------------------------------------------------------------------
# resubmitting


def resubmit_id(letter: DeadLetter) -> str:
    """The new message id: the same for every run over one DLQ copy (so a second send of it is dropped
    by duplicate detection), different from the original id (so the first one is not), and different for
    two DLQ copies that share an original id (the DLQ sequence number is part of it). The derivation is
    shared/message_ids.py's, with the project's other message ids."""
    return resubmit_message_id(letter.message_id, letter.sequence_number)


def cannot_resubmit(letter: DeadLetter) -> str | None:
    """Why this message cannot be re-sent as it is (it then stays in the DLQ), or None."""
    if not letter.session_id:
        return "no session id: the orders queue requires one"
    if letter.body is None:
        return "body is not an AMQP data section"
    return None


def resubmission(letter: DeadLetter) -> Resubmission:
    """The message to send for `letter`: its content and metadata, a derived id, the original id kept."""
    if letter.body is None:
        raise DlqError(f"message seq:{letter.sequence_number} has no data body")
    props = {k: v for k, v in letter.application_properties.items() if k not in DEAD_LETTER_PROPERTIES}
    props[RESUBMITTED_FROM] = letter.message_id or f"{SEQUENCE_PREFIX}{letter.sequence_number}"
    props[RESUBMITTED_REASON] = letter.reason
    return Resubmission(
        message_id=resubmit_id(letter),
        session_id=letter.session_id,
        body=letter.body,
        content_type=letter.content_type,
        correlation_id=letter.correlation_id,
        subject=letter.subject,
        application_properties=props,
    )


@dataclass
class ResubmitItem:
    """What happened to one selected message."""

    sequence_number: int
    message_id: str | None
    session_id: str | None
    reason: str
    resubmit_message_id: str
    status: Status
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ResubmitReport:
    """The outcome of one `resubmit` run."""

    dry_run: bool
    items: list[ResubmitItem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(i.status for i in self.items))

    @property
    def ok(self) -> bool:
        return not any(i.status in ("failed", "not-found") for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "selected": len(self.items),
            "counts": self.counts(),
            "messages": [i.to_json() for i in self.items],
        }


def _item(letter: DeadLetter, status: Status, detail: str | None = None) -> ResubmitItem:
    return ResubmitItem(
        sequence_number=letter.sequence_number,
        message_id=letter.message_id,
        session_id=letter.session_id,
        reason=letter.reason,
        resubmit_message_id=resubmit_id(letter),
        status=status,
        detail=detail,
    )


def select(
    letters: Sequence[DeadLetter], *, refs: Sequence[str] = (), reason: str | None = None, everything: bool
) -> tuple[list[DeadLetter], list[str]]:
    """(selected messages, refs that named nothing). Exactly one of refs / reason / everything."""
    if sum((bool(refs), reason is not None, everything)) != 1:
        raise DlqError("choose the messages: IDs, --reason R or --all (exactly one)")
    if everything:
        return list(letters), []
    if reason is not None:
        return [m for m in letters if m.reason == reason], []
    chosen = [m for m in letters if any(matches(m, r) for r in refs)]
    missing = [r for r in refs if not any(matches(m, r) for m in letters)]
    return chosen, missing


def resubmit(
    dlq: DeadLetterQueue,
    send: SendFn,
    selected: Sequence[DeadLetter],
    *,
    dry_run: bool = False,
    batch_size: int = 50,
    progress: ProgressFn | None = None,
) -> ResubmitReport:
    """Re-send `selected` (as peeked) and complete each DLQ copy after its send succeeded.

    The DLQ is received in peek-lock mode; messages received but not selected stay locked until the end
    and are then abandoned (a DLQ message is never dead-lettered again, so abandoning is harmless). A send
    failure leaves that batch in the DLQ and stops the run; a failed complete after a successful send is
    reported: the next run re-sends under the same id, duplicate detection drops it, then it completes.
    """
    if batch_size < 1:
        raise DlqError("batch size must be at least 1")
    tick = progress or (lambda _n: None)
    report = ResubmitReport(dry_run=dry_run)
    pending: dict[int, DeadLetter] = {}
    for letter in selected:
        problem = cannot_resubmit(letter)
        if problem:
            report.items.append(_item(letter, "skipped", problem))
            tick(1)
        elif dry_run:
            report.items.append(_item(letter, "would-resubmit"))
            tick(1)
        else:
            pending[letter.sequence_number] = letter
    if dry_run or not pending:
        return report

    held: list[DeadLetter] = []
    stopped: str | None = None
    try:
        while pending:
            received = dlq.receive(batch_size)
            if not received:
                break
            batch = []
            for letter in received:
                if pending.pop(letter.sequence_number, None) is None:
                    held.append(letter)  # not selected (or already handled): let go at the end
                else:
                    batch.append(letter)
            if not batch:
                continue
            try:
                send([resubmission(m) for m in batch])
            except Exception as exc:
                detail = f"send failed: {_describe(exc)}"
                report.items.extend(_item(m, "failed", detail) for m in batch)
                held.extend(batch)
                tick(len(batch))
                stopped = "not attempted: the run stopped at a send failure"
                break
            for letter in batch:
                try:
                    dlq.complete(letter)
                    report.items.append(_item(letter, "resubmitted"))
                except Exception as exc:
                    detail = (
                        f"sent, but completing the DLQ copy failed ({_describe(exc)}); run resubmit again: "
                        "the repeated send is dropped as a duplicate and the copy is completed"
                    )
                    report.items.append(_item(letter, "failed", detail))
                tick(1)
    finally:
        for letter in held:
            with contextlib.suppress(Exception):  # lock already lost: the broker releases it anyway
                dlq.abandon(letter)
    for letter in pending.values():
        if stopped:
            report.items.append(_item(letter, "failed", stopped))
        else:
            report.items.append(
                _item(letter, "not-found", "no longer in the DLQ, or locked by another receiver")
            )
        tick(1)
    report.items.sort(key=lambda i: i.sequence_number)
    return report


def _describe(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
