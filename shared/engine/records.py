"""What the stores persist besides ledgers: parked and quarantined messages, idempotency records, and
the one change set a message commits.

All stores keep the same shapes; `to_document`/`from_document` give one JSON-safe form for them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.engine.ledger import Ledger
from shared.envelope import MAX_BODY_BYTES, SessionEnvelope, decode_body, encode_body


def utcnow() -> datetime:
    return datetime.now(UTC)


def stream_key_of(doc: dict[str, Any], *, required: bool = True) -> Any:
    """The stream key of a stored document; documents written before the engine/workflow split call it
    `order_id` (read here, never written)."""
    if "stream_key" in doc:
        return doc["stream_key"]
    return doc["order_id"] if required else doc.get("order_id")


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """A message that arrived ahead of its turn, kept whole until the gap before it fills."""

    session_id: str
    stream_key: str
    sequence: int
    content_hash: str
    envelope: SessionEnvelope
    parked_at: datetime

    def to_document(self) -> dict[str, Any]:
        text, encoding = encode_body(self.envelope.body)
        return {
            "session_id": self.session_id,
            "stream_key": self.stream_key,
            "sequence": self.sequence,
            "content_hash": self.content_hash,
            "body": text,
            "body_encoding": encoding,
            "metadata": self.envelope.metadata(),
            "parked_at": self.parked_at.isoformat(),
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ParkedMessage:
        body = decode_body(doc["body"], doc["body_encoding"])
        return cls(
            session_id=doc["session_id"],
            stream_key=stream_key_of(doc),
            sequence=int(doc["sequence"]),
            content_hash=doc["content_hash"],
            envelope=SessionEnvelope.from_metadata(body, doc["metadata"]),
            parked_at=datetime.fromisoformat(doc["parked_at"]),
        )


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A message taken out of the flow with its reason, raw body and broker metadata: nothing is lost."""

    id: str
    session_id: str
    reason: str
    detail: str
    message_id: str
    body: str
    body_encoding: str  # "utf-8", "base64", or "omitted" (larger than MAX_BODY_BYTES: body is "")
    metadata: dict[str, Any]
    quarantined_at: datetime
    stream_key: str | None = None
    sequence: int | None = None
    step: str | None = None
    status: str = "open"  # "open" or "replayed"
    replayed_at: datetime | None = None
    body_size: int | None = None  # bytes of the original body (None in records written before it existed)
    body_sha256: str | None = None

    @staticmethod
    def id_for(envelope: SessionEnvelope) -> str:
        """Deterministic per broker message, so a redelivered poison message overwrites, not duplicates."""
        digest = hashlib.sha256()
        for part in (envelope.session_id, envelope.message_id, str(envelope.sequence_number)):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(envelope.body)
        return digest.hexdigest()[:24]

    @classmethod
    def from_envelope(
        cls,
        envelope: SessionEnvelope,
        reason: str,
        detail: str,
        *,
        at: datetime,
        stream_key: str | None = None,
        sequence: int | None = None,
        step: str | None = None,
        keep_metadata: bool = True,
    ) -> QuarantineRecord:
        """The record for `envelope`. A body over MAX_BODY_BYTES is left out (size and SHA-256 stay), so
        every store can hold the record; `keep_metadata=False` also leaves out application properties."""
        if len(envelope.body) <= MAX_BODY_BYTES:
            text, encoding = encode_body(envelope.body)
        else:
            text, encoding = "", "omitted"
        metadata = envelope.metadata()
        if not keep_metadata:
            metadata["application_properties"] = {}
        return cls(
            id=cls.id_for(envelope),
            session_id=envelope.session_id,
            reason=reason,
            detail=detail,
            message_id=envelope.message_id,
            body=text,
            body_encoding=encoding,
            metadata=metadata,
            quarantined_at=at,
            stream_key=stream_key,
            sequence=sequence,
            step=step,
            body_size=len(envelope.body),
            body_sha256=hashlib.sha256(envelope.body).hexdigest(),
        )

    @property
    def raw_body(self) -> bytes:
        """The body as received; empty when it was too large to keep (`body_encoding == "omitted"`)."""
        return decode_body(self.body, self.body_encoding)

    def to_document(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["quarantined_at"] = self.quarantined_at.isoformat()
        doc["replayed_at"] = self.replayed_at.isoformat() if self.replayed_at else None
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> QuarantineRecord:
        d = dict(doc)
        d["stream_key"] = stream_key_of(d, required=False)
        d.pop("order_id", None)
        d["quarantined_at"] = datetime.fromisoformat(d["quarantined_at"])
        d["replayed_at"] = datetime.fromisoformat(d["replayed_at"]) if d.get("replayed_at") else None
        return cls(**d)


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """Proof that (session, stream, sequence) took effect; purged after the retention period."""

    session_id: str
    stream_key: str
    sequence: int
    content_hash: str
    message_id: str
    recorded_at: datetime


@dataclass(slots=True)
class SessionChanges:
    """Everything one message changes in one session, committed together.

    Atomic together: `ledger` (checked against its `version`), `park` (create-only) and `unpark`.
    `idempotency` and `quarantine` writes are idempotent upserts: a store that must split a large
    change may write them in earlier transactions, never after the ledger.
    """

    session_id: str
    ledger: Ledger[Any] | None = None
    idempotency: list[IdempotencyRecord] = field(default_factory=list)
    park: list[ParkedMessage] = field(default_factory=list)
    unpark: list[tuple[str, int]] = field(default_factory=list)  # (stream_key, sequence)
    quarantine: list[QuarantineRecord] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.ledger or self.idempotency or self.park or self.unpark or self.quarantine)
