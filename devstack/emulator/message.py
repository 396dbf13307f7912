"""Broker-side message representation.

Messages are kept as the raw section bytes the client sent. Only the header and the message
annotations are rebuilt on delivery (delivery-count, broker annotations); properties,
application properties and body go back out byte for byte.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import frames
from .codec import (
    Described,
    Int,
    Long,
    Symbol,
    Timestamp,
    UByte,
    UInt,
    build_map_raw,
    decode,
    encode,
    encode_bytes,
    map_entries_raw,
    skip,
)

X_SEQUENCE_NUMBER = "x-opt-sequence-number"
X_ENQUEUED_TIME = "x-opt-enqueued-time"
X_LOCKED_UNTIL = "x-opt-locked-until"
X_LOCK_TOKEN = "x-opt-lock-token"
X_SCHEDULED_ENQUEUE_TIME = "x-opt-scheduled-enqueue-time"
X_MESSAGE_STATE = "x-opt-message-state"
X_DEADLETTER_SOURCE = "x-opt-deadletter-source"
X_ENQUEUE_SEQUENCE_NUMBER = "x-opt-enqueue-sequence-number"

_BROKER_ANNOTATIONS = frozenset(
    {
        X_SEQUENCE_NUMBER,
        X_ENQUEUED_TIME,
        X_LOCKED_UNTIL,
        X_LOCK_TOKEN,
        X_MESSAGE_STATE,
        X_ENQUEUE_SEQUENCE_NUMBER,
    }
)


class MessageError(ValueError):
    """A message payload the broker cannot accept."""


class State(enum.IntEnum):
    """Where a message currently is; values match the SDK's ServiceBusMessageState where it overlaps."""

    ACTIVE = 0
    DEFERRED = 1
    SCHEDULED = 2


@dataclass(eq=False)
class Message:
    """One stored message. `seq` is unique within its queue (and kept when dead-lettered)."""

    seq: int = 0
    durable: bool | None = None
    priority: int | None = None
    ttl_ms: int | None = None
    annotations: list[tuple[Any, bytes]] = field(default_factory=list)
    properties_raw: bytes = b""
    app_raw: bytes = b""
    body_raw: bytes = b""
    message_id: Any = None
    session_id: str | None = None
    enqueued_ms: int = 0
    expires_ms: int | None = None
    scheduled_ms: int | None = None
    delivery_count: int = 0
    state: State = State.ACTIVE
    # lock, when delivered in peek-lock mode
    lock_token: uuid.UUID | None = None
    locked_until_ms: int = 0
    lock_owner: Any = None
    size: int = 0

    @property
    def locked(self) -> bool:
        """True while a receiver holds the message lock."""
        return self.lock_token is not None

    def encode(
        self,
        *,
        lock_token: uuid.UUID | None = None,
        locked_until_ms: int | None = None,
        token_in_delivery_annotations: bool = False,
    ) -> bytes:
        """The payload sent to a receiver: fresh header and annotations, the rest verbatim.

        Messages returned by management operations carry no delivery tag, so (like the service)
        their lock token also goes into the delivery annotations, where older SDKs look for it.
        """
        out = bytearray()
        ttl = self.ttl_ms
        if ttl is None and self.expires_ms is not None:
            # like the service: a message without its own TTL reports the entity default
            ttl = min(max(self.expires_ms - self.enqueued_ms, 0), 2**32 - 1)
        header = [
            self.durable,
            UByte(self.priority) if self.priority is not None else None,
            UInt(ttl) if ttl is not None else None,
            None,
            UInt(self.delivery_count),
        ]
        encode(Described(frames.HEADER, header), out)
        if token_in_delivery_annotations and lock_token is not None:
            encode(Described(frames.DELIVERY_ANNOTATIONS, {Symbol(X_LOCK_TOKEN): lock_token}), out)
        entries = [
            encode_bytes(Symbol(X_SEQUENCE_NUMBER)) + encode_bytes(Long(self.seq)),
            encode_bytes(Symbol(X_ENQUEUED_TIME)) + encode_bytes(Timestamp(self.enqueued_ms)),
        ]
        if lock_token is not None:
            entries.append(encode_bytes(Symbol(X_LOCK_TOKEN)) + encode_bytes(lock_token))
        if locked_until_ms is not None:
            entries.append(encode_bytes(Symbol(X_LOCKED_UNTIL)) + encode_bytes(Timestamp(locked_until_ms)))
        if self.state != State.ACTIVE:
            entries.append(encode_bytes(Symbol(X_MESSAGE_STATE)) + encode_bytes(Int(int(self.state))))
        entries.extend(raw for key, raw in self.annotations if key not in _BROKER_ANNOTATIONS)
        out += b"\x00\x53\x72"
        out += build_map_raw(entries)
        out += self.properties_raw
        out += self.app_raw
        out += self.body_raw
        return bytes(out)

    def set_app_properties(self, updates: dict[str, Any]) -> None:
        """Add or replace application properties (dead-letter reason), leaving the others untouched."""
        existing: list[tuple[Any, bytes]] = []
        if self.app_raw:
            existing, _ = map_entries_raw(self.app_raw, 3)
        keep = [raw for key, raw in existing if key not in updates]
        for key, value in updates.items():
            if value is None:
                continue
            keep.append(encode_bytes(key) + encode_bytes(value))
        self.app_raw = b"\x00\x53\x74" + build_map_raw(keep)

    def app_property(self, name: str) -> Any:
        """Decode one application property (used by tests and forwarding logic)."""
        if not self.app_raw:
            return None
        value, _ = decode(self.app_raw, 3)
        return value.get(name) if isinstance(value, dict) else None

    def to_record(self) -> bytes:
        """Serialise for the SQLite store (annotations included, lock state excluded)."""
        meta = [
            self.seq,
            self.durable,
            self.priority,
            self.ttl_ms,
            self.enqueued_ms,
            self.expires_ms,
            self.scheduled_ms,
            self.delivery_count,
            int(self.state),
            self.session_id,
        ]
        ann = b"".join(raw for _, raw in self.annotations)
        parts = [encode_bytes(meta), ann, self.properties_raw, self.app_raw, self.body_raw]
        return b"".join(struct.pack(">I", len(p)) + p for p in parts)

    @classmethod
    def from_record(cls, data: bytes) -> Message:
        """Inverse of to_record."""
        parts: list[bytes] = []
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack_from(">I", data, pos)
            parts.append(data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        meta, _ = decode(parts[0], 0)
        m = cls(
            seq=meta[0],
            durable=meta[1],
            priority=meta[2],
            ttl_ms=meta[3],
            enqueued_ms=meta[4],
            expires_ms=meta[5],
            scheduled_ms=meta[6],
            delivery_count=meta[7],
            state=State(meta[8]),
            session_id=meta[9],
        )
        ann = parts[1]
        p = 0
        while p < len(ann):
            start = p
            key, p = decode(ann, p)
            p = skip(ann, p)
            m.annotations.append((key, ann[start:p]))
        m.properties_raw, m.app_raw, m.body_raw = parts[2], parts[3], parts[4]
        m._read_properties()
        m.size = len(data)
        return m

    def _read_properties(self) -> None:
        if not self.properties_raw:
            return
        props, _ = decode(self.properties_raw, 0)
        fields_ = props.value if isinstance(props, Described) else []
        self.message_id = frames.field(fields_, 0)
        gid = frames.field(fields_, 10)
        self.session_id = gid if isinstance(gid, str) else None

    def annotation(self, name: str) -> Any:
        """Decode a client-supplied message annotation."""
        for key, raw in self.annotations:
            if key == name:
                _, p = decode(raw, 0)
                value, _ = decode(raw, p)
                return value
        return None

    def copy_for_dead_letter(self) -> Message:
        """A detached copy (no lock) used when moving into the dead-letter sub-queue."""
        return Message(
            seq=self.seq,
            durable=self.durable,
            priority=self.priority,
            ttl_ms=self.ttl_ms,
            annotations=list(self.annotations),
            properties_raw=self.properties_raw,
            app_raw=self.app_raw,
            body_raw=self.body_raw,
            message_id=self.message_id,
            session_id=self.session_id,
            enqueued_ms=self.enqueued_ms,
            expires_ms=None,
            delivery_count=self.delivery_count,
            size=self.size,
        )


def _section_code(buf: bytes, pos: int) -> tuple[int, int]:
    """Return (descriptor code, position of the section value) for the section at pos."""
    if buf[pos] != 0x00:
        raise MessageError("message section is not a described type")
    descriptor, p = decode(buf, pos + 1)
    if not isinstance(descriptor, int):
        names = {
            "amqp:header:list": frames.HEADER,
            "amqp:delivery-annotations:map": frames.DELIVERY_ANNOTATIONS,
            "amqp:message-annotations:map": frames.MESSAGE_ANNOTATIONS,
            "amqp:properties:list": frames.PROPERTIES,
            "amqp:application-properties:map": frames.APPLICATION_PROPERTIES,
            "amqp:data:binary": frames.DATA,
            "amqp:amqp-sequence:list": frames.AMQP_SEQUENCE,
            "amqp:amqp-value:*": frames.AMQP_VALUE,
            "amqp:footer:map": frames.FOOTER,
        }
        descriptor = names.get(str(descriptor), -1)
    return descriptor, p


def _normalise_section(buf: bytes, start: int, value_pos: int, code: int) -> bytes:
    """Section bytes with the descriptor re-written as smallulong (what the SDK's decoder assumes)."""
    end = skip(buf, value_pos)
    if buf[start + 1] == 0x53:
        return bytes(buf[start:end])
    return bytes([0x00, 0x53, code]) + bytes(buf[value_pos:end])


def parse_message(payload: bytes) -> Message:
    """Split a transfer payload into a Message."""
    m = Message(size=len(payload))
    pos = 0
    n = len(payload)
    body_start: int | None = None
    try:
        while pos < n:
            code, vpos = _section_code(payload, pos)
            if code == frames.HEADER:
                hdr, pos = decode(payload, vpos)
                m.durable = frames.field(hdr, 0)
                m.priority = frames.field(hdr, 1)
                m.ttl_ms = frames.field(hdr, 2)
            elif code == frames.DELIVERY_ANNOTATIONS:
                pos = skip(payload, vpos)
            elif code == frames.MESSAGE_ANNOTATIONS:
                m.annotations, pos = map_entries_raw(payload, vpos)
            elif code == frames.PROPERTIES:
                m.properties_raw = _normalise_section(payload, pos, vpos, code)
                pos = skip(payload, vpos)
            elif code == frames.APPLICATION_PROPERTIES:
                m.app_raw = _normalise_section(payload, pos, vpos, code)
                pos = skip(payload, vpos)
            else:
                body_start = pos
                break
    except (IndexError, struct.error) as exc:
        raise MessageError("truncated message") from exc
    if body_start is not None:
        m.body_raw = bytes(payload[body_start:])
    m._read_properties()
    _check_decodable(m)
    sched = m.annotation(X_SCHEDULED_ENQUEUE_TIME)
    if isinstance(sched, int) and sched > 0:
        m.scheduled_ms = int(sched)
    return m


def _check_decodable(m: Message) -> None:
    """Decode every section the broker may read later (annotation values, application properties) once,
    at send time: a malformed one is refused now (DecodeError -> rejected) instead of failing later in a
    filter, a forward or a dead-letter on some other client's connection."""
    for _, raw in m.annotations:
        _, p = decode(raw, 0)
        decode(raw, p)
    if m.app_raw:
        decode(m.app_raw, 3)


def split_batch(payload: bytes) -> list[bytes]:
    """A batch (message-format 0x80013700) carries one encoded message per data section."""
    out: list[bytes] = []
    pos = 0
    n = len(payload)
    while pos < n:
        code, vpos = _section_code(payload, pos)
        value, pos = decode(payload, vpos)
        if code == frames.DATA and isinstance(value, bytes):
            out.append(value)
    return out
