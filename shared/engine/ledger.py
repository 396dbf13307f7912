"""A stream's ledger: its state plus the rules of ordered, idempotent processing.

The ledger owns those rules (what was applied with which content, what waits parked, which sequence is
next, how many duplicates came); the decision function asks it and tells it, and never edits its fields.
Its state is the workflow's and opaque here: a `StateCodec` turns it into a document for the stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Protocol, Self, TypeVar

S = TypeVar("S")
L = TypeVar("L", bound="Ledger[Any]")
L_co = TypeVar("L_co", bound="Ledger[Any]", covariant=True)  # a workflow's ledger type

DEFAULT_PARK_LIMIT = 50  # how many early messages one stream may hold (ORDERS_PARK_LIMIT overrides it)


class Seen(Enum):
    """What the ledger already knows about a (sequence, content) pair."""

    NEW = "new"
    DUPLICATE = "duplicate"  # same sequence, same content: already applied or parked
    CONFLICT_APPLIED = "applied"  # sequence already applied (or skipped past) with other content
    CONFLICT_PARKED = "parked"  # sequence already parked with other content


class StateCodec(Protocol[S, L_co]):
    """What a store needs from a workflow: a state as a JSON-safe document and back, and its ledger type."""

    def state_to_document(self, state: S) -> dict[str, Any]: ...

    def state_from_document(self, doc: Mapping[str, Any]) -> S: ...

    def status(self, state: S) -> str:
        """A short label of the state (logs, views, an indexable store column)."""
        ...

    def new_ledger(self, session_id: str, stream_key: str, state: S) -> L_co:
        """An empty ledger of the workflow's ledger type (a subclass may add typed accessors)."""
        ...


@dataclass(frozen=True, slots=True)
class AppliedStep:
    sequence: int
    step: str
    content_hash: str
    message_id: str
    applied_at: datetime


@dataclass(slots=True)
class Ledger(Generic[S]):
    """One stream's state and processing history.

    `version` is the store's optimistic-concurrency token (row version or ETag); None means not stored yet.
    """

    session_id: str
    stream_key: str
    state: S
    last_sequence: int = 0
    applied: list[AppliedStep] = field(default_factory=list)
    parked: dict[int, str] = field(default_factory=dict)  # sequence -> content hash
    duplicates: int = 0
    version: str | None = None
    updated_at: datetime | None = None

    # --- the rules ---
    @property
    def next_sequence(self) -> int:
        return self.last_sequence + 1

    def applied_hash(self, sequence: int) -> str | None:
        if 1 <= sequence <= len(self.applied):
            step = self.applied[sequence - 1]
            if step.sequence == sequence:
                return step.content_hash
        return next((s.content_hash for s in self.applied if s.sequence == sequence), None)

    def seen(self, sequence: int, content_hash: str) -> Seen:
        known = self.applied_hash(sequence) or self.parked.get(sequence)
        if known == content_hash:
            return Seen.DUPLICATE
        if sequence < self.next_sequence:
            return Seen.CONFLICT_APPLIED
        if known is not None:
            return Seen.CONFLICT_PARKED
        return Seen.NEW

    def is_ahead(self, sequence: int) -> bool:
        """True when earlier sequences are still missing: the step must wait."""
        return sequence > self.next_sequence

    def due(self) -> int | None:
        """The parked sequence that may apply now, if any."""
        return self.next_sequence if self.next_sequence in self.parked else None

    def can_park(self, limit: int) -> bool:
        """Room for one more early message; beyond `limit` the stream would hold unbounded data."""
        return len(self.parked) < limit

    def record_duplicate(self) -> None:
        self.duplicates += 1

    def park(self, sequence: int, content_hash: str) -> None:
        if sequence <= self.last_sequence or sequence in self.parked:
            raise ValueError(f"sequence {sequence} cannot be parked")
        self.parked[sequence] = content_hash

    def unpark(self, sequence: int) -> None:
        del self.parked[sequence]

    def record_applied(
        self, sequence: int, step: str, content_hash: str, message_id: str, state: S, at: datetime
    ) -> None:
        if sequence != self.next_sequence:
            raise ValueError(f"sequence {sequence} applied out of turn (next is {self.next_sequence})")
        self.state = state
        self.last_sequence = sequence
        self.applied.append(AppliedStep(sequence, step, content_hash, message_id, at))

    # --- copies and documents ---
    def copy(self) -> Self:
        return type(self)(
            self.session_id,
            self.stream_key,
            self.state,  # states are immutable values: shared
            self.last_sequence,
            list(self.applied),
            dict(self.parked),
            self.duplicates,
            self.version,
            self.updated_at,
        )

    def to_document(self, codec: StateCodec[S, Any]) -> dict[str, Any]:
        # built by hand: dataclasses.asdict deep-copies and is hot on the per-message path
        return {
            "session_id": self.session_id,
            "stream_key": self.stream_key,
            "state": codec.state_to_document(self.state),
            "last_sequence": self.last_sequence,
            "applied": [
                {
                    "sequence": a.sequence,
                    "step": a.step,
                    "content_hash": a.content_hash,
                    "message_id": a.message_id,
                    "applied_at": a.applied_at.isoformat(),
                }
                for a in self.applied
            ],
            "parked": {str(k): v for k, v in sorted(self.parked.items())},
            "duplicates": self.duplicates,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @staticmethod
    def from_document(
        doc: Mapping[str, Any],
        codec: StateCodec[Any, L],
        *,
        version: str | None,
        session_id: str,
        stream_key: str,
    ) -> L:
        """`session_id`/`stream_key` come from the store's keys; documents written before they were kept
        inside (and whose state sat under "order") read the same way."""
        state_doc = doc["state"] if "state" in doc else doc["order"]
        ledger = codec.new_ledger(
            str(doc.get("session_id", session_id)),
            str(doc.get("stream_key", stream_key)),
            codec.state_from_document(state_doc),
        )
        ledger.last_sequence = int(doc["last_sequence"])
        ledger.applied = [
            AppliedStep(
                sequence=int(a["sequence"]),
                step=a["step"],
                content_hash=a["content_hash"],
                message_id=a["message_id"],
                applied_at=datetime.fromisoformat(a["applied_at"]),
            )
            for a in doc.get("applied") or ()
        ]
        ledger.parked = {int(k): v for k, v in (doc.get("parked") or {}).items()}
        ledger.duplicates = int(doc.get("duplicates") or 0)
        ledger.version = version
        ledger.updated_at = datetime.fromisoformat(doc["updated_at"]) if doc.get("updated_at") else None
        return ledger
