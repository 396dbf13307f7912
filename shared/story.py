"""One stream's story, and which streams are stuck: the use cases behind `orders why` and the stuck flags
of `orders status` (docs/operations.md "Why is order X stuck?").

A stream is *stuck* when the oldest of its parked steps has waited longer than a threshold
(ORDERS_STUCK_AFTER_MINUTES, default 15): the step before them never arrived, or was quarantined or
dead-lettered. The story puts everything the store and the dead-letter queue know about one stream in
time order: applied steps, parked steps, quarantine records (and replays), dead-lettered messages.

Like shared/dlq.py this knows nothing of argparse, rich or the SDK, and nothing of orders: it reads the
engine's ledgers and records, and asks the workflow only for `status` (a state's label) and `parse` (which
stream a dead-lettered body belongs to). Times are UTC.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.dlq import DeadLetter
from shared.engine.ledger import Ledger
from shared.engine.records import ParkedMessage, QuarantineRecord
from shared.engine.workflow import ContractError, Step
from shared.store.base import OrderStore


class StoryWorkflow(Protocol):
    """What the story needs of a workflow (shared.engine.workflow.Workflow has both)."""

    def status(self, state: Any) -> str: ...

    def parse(self, body: bytes) -> Step[Any]: ...


@dataclass(frozen=True, slots=True)
class Waiting:
    """A stream with parked steps: the sequence it waits for, since when, and whether that is too long."""

    session_id: str
    stream_key: str
    waiting_for: int  # the next sequence: missing, so the parked ones cannot apply
    parked: tuple[int, ...]
    since: datetime  # when the oldest parked step was parked
    age_s: float
    stuck: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "stream_key": self.stream_key,
            "waiting_for_sequence": self.waiting_for,
            "parked_sequences": list(self.parked),
            "parked_since": self.since.isoformat(),
            "parked_for_s": round(self.age_s, 1),
            "stuck": self.stuck,
        }


def waiting_streams(
    ledgers: Iterable[Ledger[Any]],
    parked: Iterable[ParkedMessage],
    *,
    now: datetime,
    stuck_after: timedelta,
) -> list[Waiting]:
    """Every stream that holds parked steps, the longest waiting first."""
    parked_at: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for p in parked:
        parked_at[(p.session_id, p.stream_key)].append(p.parked_at)
    found = []
    for ledger in ledgers:
        if not ledger.parked:
            continue
        times = parked_at.get((ledger.session_id, ledger.stream_key)) or [ledger.updated_at or now]
        since = min(times)
        age = max(0.0, (now - since).total_seconds())
        found.append(
            Waiting(
                session_id=ledger.session_id,
                stream_key=ledger.stream_key,
                waiting_for=ledger.next_sequence,
                parked=tuple(sorted(ledger.parked)),
                since=since,
                age_s=age,
                stuck=age >= stuck_after.total_seconds(),
            )
        )
    found.sort(key=lambda w: (w.since, w.session_id, w.stream_key))
    return found


def stuck_report(
    store: OrderStore[Any], *, now: datetime, stuck_after: timedelta, session_id: str | None = None
) -> dict[str, Any]:
    """`{"stuck_after_minutes", "waiting": [...], "stuck": n}` for `orders status` (stuck ones first)."""
    waiting = waiting_streams(
        store.list_ledgers(session_id), store.list_parked(session_id), now=now, stuck_after=stuck_after
    )
    return {
        "stuck_after_minutes": round(stuck_after.total_seconds() / 60),
        "stuck": sum(w.stuck for w in waiting),
        "waiting": [w.to_json() for w in waiting],
    }


# --------------------------------------------------------------------------------------------------
# one stream's story


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to the stream; `kind`: applied, parked, quarantined, replayed or
    dead-lettered."""

    at: datetime | None
    kind: str
    sequence: int | None = None
    step: str | None = None
    message_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    ref: str | None = None  # the quarantine id, or `seq:N` of a dead-lettered message
    status: str | None = None  # a quarantine record's: open or replayed

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "kind": self.kind,
            "sequence": self.sequence,
            "step": self.step,
            "message_id": self.message_id,
            "reason": self.reason,
            "detail": self.detail,
            "ref": self.ref,
            "status": self.status,
        }


@dataclass(slots=True)
class Story:
    """Everything known about one stream, in time order."""

    session_id: str
    stream_key: str
    status: str | None  # the workflow's label of the state; None when no step was applied or parked
    last_sequence: int
    waiting: Waiting | None
    events: list[Event] = field(default_factory=list)
    open_quarantine: list[QuarantineRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "stream_key": self.stream_key,
            "status": self.status,
            "last_sequence": self.last_sequence,
            "waiting": None if self.waiting is None else self.waiting.to_json(),
            "events": [e.to_json() for e in self.events],
        }


def sessions_of(
    store: OrderStore[Any], stream_key: str, dead_letters: Sequence[DeadLetter], workflow: StoryWorkflow
) -> list[str]:
    """The sessions that know a stream with this key (one, unless two sessions reuse the key)."""
    found = {ledger.session_id for ledger in store.list_ledgers() if ledger.stream_key == stream_key}
    found |= {p.session_id for p in store.list_parked() if p.stream_key == stream_key}
    found |= {
        q.session_id for q in store.list_quarantine(include_replayed=True) if q.stream_key == stream_key
    }
    found |= {m.session_id for m in dead_letters if m.session_id and _stream_of(m, workflow) == stream_key}
    return sorted(found)


def story(
    store: OrderStore[Any],
    workflow: StoryWorkflow,
    session_id: str,
    stream_key: str,
    *,
    dead_letters: Sequence[DeadLetter] = (),
    now: datetime,
    stuck_after: timedelta,
) -> Story | None:
    """The stream's story, or None when neither the store nor the dead letters know it."""
    ledger = next((x for x in store.list_ledgers(session_id) if x.stream_key == stream_key), None)
    parked = [p for p in store.list_parked(session_id) if p.stream_key == stream_key]
    records = [
        q
        for q in store.list_quarantine(include_replayed=True)
        if q.session_id == session_id and q.stream_key == stream_key
    ]
    letters = [
        m for m in dead_letters if m.session_id == session_id and _stream_of(m, workflow) == stream_key
    ]
    if ledger is None and not parked and not records and not letters:
        return None
    events: list[Event] = []
    if ledger is not None:
        events += [Event(a.applied_at, "applied", a.sequence, a.step, a.message_id) for a in ledger.applied]
    for p in parked:
        step = _parse(p.envelope.body, workflow)
        events.append(
            Event(p.parked_at, "parked", p.sequence, step.name if step else None, p.envelope.message_id)
        )
    for q in records:
        ref = q.id
        events.append(
            Event(
                q.quarantined_at,
                "quarantined",
                q.sequence,
                q.step,
                q.message_id,
                q.reason,
                q.detail,
                ref,
                q.status,
            )
        )
        if q.replayed_at is not None:
            events.append(Event(q.replayed_at, "replayed", q.sequence, q.step, q.message_id, ref=ref))
    for m in letters:
        step = _parse(m.body, workflow) if m.body is not None else None
        events.append(
            Event(
                m.enqueued_time,
                "dead-lettered",
                step.sequence if step else _sequence_from_id(m.message_id, stream_key),
                step.name if step else None,
                m.message_id,
                m.reason,
                m.description,
                f"seq:{m.sequence_number}",
            )
        )
    events.sort(key=_event_order)
    waiting = None
    if ledger is not None and ledger.parked:
        (waiting,) = waiting_streams([ledger], parked, now=now, stuck_after=stuck_after)
    return Story(
        session_id=session_id,
        stream_key=stream_key,
        status=workflow.status(ledger.state) if ledger is not None and ledger.applied else None,
        last_sequence=ledger.last_sequence if ledger is not None else 0,
        waiting=waiting,
        events=events,
        open_quarantine=[q for q in records if q.status == "open"],
        dead_letters=letters,
    )


_KIND_ORDER = {"applied": 0, "parked": 1, "quarantined": 2, "replayed": 3, "dead-lettered": 4}


def _event_order(e: Event) -> tuple[Any, ...]:
    return (e.at is None, e.at.timestamp() if e.at else 0.0, _KIND_ORDER[e.kind], e.sequence or 0)


def _parse(body: bytes, workflow: StoryWorkflow) -> Step[Any] | None:
    try:
        return workflow.parse(body)
    except ContractError:
        return None
    except Exception:  # whatever a hostile body makes the reader raise: shown without its step
        return None


def _stream_of(letter: DeadLetter, workflow: StoryWorkflow) -> str | None:
    """The stream a dead-lettered message belongs to: its body's, else the `{stream}:{sequence}` id's."""
    step = _parse(letter.body, workflow) if letter.body is not None else None
    if step is not None:
        return step.stream_key
    message_id = letter.message_id or ""
    head, sep, _ = message_id.partition(":")
    return head if sep else None


def _sequence_from_id(message_id: str | None, stream_key: str) -> int | None:
    rest = (message_id or "").removeprefix(f"{stream_key}:")
    number = rest.partition(":")[0]
    return int(number) if number.isdigit() else None
