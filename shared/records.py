"""What the stores persist: the per-order ledger, parked and quarantined messages, idempotency records.

All stores keep the same shapes; `to_document`/`from_document` give one JSON-safe form for them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.domain.model import LineItem, Order, OrderState
from shared.envelope import MAX_BODY_BYTES, SessionEnvelope, decode_body, encode_body


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AppliedStep:
    sequence: int
    step: str
    content_hash: str
    message_id: str
    applied_at: datetime


@dataclass(slots=True)
class OrderLedger:
    """An order plus its processing history: what was applied, what waits, how many duplicates came.

    `version` is the store's optimistic-concurrency token (row version or ETag); None means not stored yet.
    """

    order: Order
    last_sequence: int = 0
    applied: list[AppliedStep] = field(default_factory=list)
    parked: dict[int, str] = field(default_factory=dict)  # sequence -> content hash
    duplicates: int = 0
    version: str | None = None
    updated_at: datetime | None = None

    @property
    def customer_id(self) -> str:
        return self.order.customer_id

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def next_sequence(self) -> int:
        return self.last_sequence + 1

    def applied_hash(self, sequence: int) -> str | None:
        if 1 <= sequence <= len(self.applied):
            step = self.applied[sequence - 1]
            if step.sequence == sequence:
                return step.content_hash
        return next((s.content_hash for s in self.applied if s.sequence == sequence), None)

    def copy(self) -> OrderLedger:
        return OrderLedger(
            self.order,  # immutable: shared
            self.last_sequence,
            list(self.applied),
            dict(self.parked),
            self.duplicates,
            self.version,
            self.updated_at,
        )

    def to_document(self) -> dict[str, Any]:
        o = self.order  # built by hand: dataclasses.asdict deep-copies and is hot on the per-message path
        return {
            "order": {
                "customer_id": o.customer_id,
                "order_id": o.order_id,
                "state": o.state.value,
                "currency": o.currency,
                "total": None if o.total is None else str(o.total),
                "payment_id": o.payment_id,
                "reservation_id": o.reservation_id,
                "carrier": o.carrier,
                "tracking_number": o.tracking_number,
                "cancel_reason": o.cancel_reason,
                "items": [
                    {"sku": i.sku, "quantity": i.quantity, "unit_price": str(i.unit_price)} for i in o.items
                ],
            },
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

    @classmethod
    def from_document(cls, doc: dict[str, Any], version: str | None) -> OrderLedger:
        o = dict(doc["order"])
        o["state"] = OrderState(o["state"])
        o["total"] = None if o.get("total") is None else Decimal(o["total"])
        o["items"] = tuple(
            LineItem(sku=i["sku"], quantity=int(i["quantity"]), unit_price=Decimal(i["unit_price"]))
            for i in o.get("items") or ()
        )
        return cls(
            order=Order(**o),
            last_sequence=int(doc["last_sequence"]),
            applied=[
                AppliedStep(
                    sequence=int(a["sequence"]),
                    step=a["step"],
                    content_hash=a["content_hash"],
                    message_id=a["message_id"],
                    applied_at=datetime.fromisoformat(a["applied_at"]),
                )
                for a in doc.get("applied") or ()
            ],
            parked={int(k): v for k, v in (doc.get("parked") or {}).items()},
            duplicates=int(doc.get("duplicates") or 0),
            version=version,
            updated_at=datetime.fromisoformat(doc["updated_at"]) if doc.get("updated_at") else None,
        )


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """A message that arrived ahead of its turn, kept whole until the gap before it fills."""

    session_id: str
    order_id: str
    sequence: int
    content_hash: str
    envelope: SessionEnvelope
    parked_at: datetime

    def to_document(self) -> dict[str, Any]:
        text, encoding = encode_body(self.envelope.body)
        return {
            "session_id": self.session_id,
            "order_id": self.order_id,
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
            order_id=doc["order_id"],
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
    order_id: str | None = None
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
        order_id: str | None = None,
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
            order_id=order_id,
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
        d["quarantined_at"] = datetime.fromisoformat(d["quarantined_at"])
        d["replayed_at"] = datetime.fromisoformat(d["replayed_at"]) if d.get("replayed_at") else None
        return cls(**d)


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """Proof that (session, order_id, sequence) took effect; purged after the retention period."""

    session_id: str
    order_id: str
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
    ledger: OrderLedger | None = None
    idempotency: list[IdempotencyRecord] = field(default_factory=list)
    park: list[ParkedMessage] = field(default_factory=list)
    unpark: list[tuple[str, int]] = field(default_factory=list)  # (order_id, sequence)
    quarantine: list[QuarantineRecord] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.ledger or self.idempotency or self.park or self.unpark or self.quarantine)
