"""What the processor needs from a broker message, free of any SDK or Functions types.

Broker metadata (session, message id, delivery count, sequence number, enqueued time) always comes from
the trigger, never from the body: the body is untrusted input, the broker's word is not.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The largest body the app parses, parks or keeps in a quarantine record: Service Bus Standard's message
# size limit (256 KB), and well inside one Table Storage entity (1 MiB, the body base64-inflated when it is
# not UTF-8). Larger bodies (Premium allows up to 100 MB) are quarantined with size and SHA-256 instead.
MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class SessionEnvelope:
    body: bytes
    session_id: str
    message_id: str
    delivery_count: int = 1
    sequence_number: int | None = None
    enqueued_time: datetime | None = None
    content_type: str | None = None
    correlation_id: str | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Broker metadata as JSON-safe values, kept with quarantined and parked messages."""
        return {
            "session_id": self.session_id,
            "message_id": self.message_id,
            "delivery_count": self.delivery_count,
            "sequence_number": self.sequence_number,
            "enqueued_time": self.enqueued_time.isoformat() if self.enqueued_time else None,
            "content_type": self.content_type,
            "correlation_id": self.correlation_id,
            "application_properties": {str(k): _json_safe(v) for k, v in self.application_properties.items()},
        }

    @classmethod
    def from_metadata(cls, body: bytes, metadata: dict[str, Any]) -> SessionEnvelope:
        enqueued = metadata.get("enqueued_time")
        return cls(
            body=body,
            session_id=str(metadata["session_id"]),
            message_id=str(metadata["message_id"]),
            delivery_count=int(metadata.get("delivery_count") or 1),
            sequence_number=metadata.get("sequence_number"),
            enqueued_time=datetime.fromisoformat(enqueued) if enqueued else None,
            content_type=metadata.get("content_type"),
            correlation_id=metadata.get("correlation_id"),
            application_properties=dict(metadata.get("application_properties") or {}),
        )


def encode_body(body: bytes) -> tuple[str, str]:
    """Body as text for storage: UTF-8 when it is, base64 otherwise. Returns (text, encoding)."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def decode_body(text: str, encoding: str) -> bytes:
    if encoding == "omitted":  # a quarantined body too large to keep
        return b""
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
