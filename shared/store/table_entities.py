"""Table Storage entities: keys, size limits, and the mapping between records and entities.

Pure functions (no client, no I/O), so the layout is readable and testable on its own; `table.py` is the
store that sends them. Rows of one session share a PartitionKey; RowKey = kind prefix + escaped keys.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.engine.ledger import Ledger
from shared.engine.records import IdempotencyRecord, ParkedMessage, QuarantineRecord, stream_key_of
from shared.engine.workflow import StateCodec
from shared.envelope import SessionEnvelope
from shared.store.base import StoreRejected

L = TypeVar("L", bound=Ledger[Any])

# --- service limits (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model)
MAX_BATCH_OPERATIONS = 100
MAX_BATCH_PAYLOAD = 4 * 1024 * 1024  # request body of one $batch
MAX_ENTITY_SIZE = 1024 * 1024
CHUNK_SIZE = 60 * 1024  # one binary property holds at most 64 KiB; keep a margin
# What we let a batch grow to by our own (conservative) estimate, leaving room for multipart framing.
BATCH_PAYLOAD_BUDGET = MAX_BATCH_PAYLOAD - 256 * 1024
ENTITY_SIZE_BUDGET = MAX_ENTITY_SIZE - 8 * 1024
# A PartitionKey or RowKey is "a string value up to 1 KiB in size": 1 KiB of UTF-16, 512 characters (our
# escaped keys are ASCII). Azurite refuses 513 with 400 InvalidInput, in a single write and in a $batch
# (measured, docs/store.md "Keys").
MAX_KEY_CHARS = 512
# What one message's commit writes atomically besides released parked rows: its ledger and its idempotency
# set. A gap-fill releases up to ORDERS_PARK_LIMIT parked rows (one delete each) in that one transaction,
# so the Table store holds a park limit of at most this (shared/settings.py checks it at start).
MAX_PARK_LIMIT = MAX_BATCH_OPERATIONS - 2

# `order|` is the ledger rows' prefix from before the engine/workflow split, kept so existing tables read
# unchanged; ledger rows must sort just before `park|` (one range query loads both, see `load_filter`).
LEDGER, PARK, IDEM, QUARANTINE = "order|", "park|", "idem|", "quarantine|"
# The idempotency records of one transaction, in one entity (see `idempotency_set_entity`); `idem|` rows,
# one per record, are what versions before it wrote: still counted and purged, no longer written.
IDEM_SET = "idems|"
_SAFE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class StoreLimitExceeded(StoreRejected):
    """A change cannot be stored within Table Storage limits; retrying will not help (not transient)."""


def _key_limit(key: str, what: str, name: str) -> str:
    if len(key) > MAX_KEY_CHARS:
        raise StoreLimitExceeded(
            f"the {what} is {len(key)} characters as a Table {name} (escaped); a Table key holds at most "
            f"{MAX_KEY_CHARS} (1 KiB)"
        )
    return key


def partition_key(session_id: str) -> str:
    """The session's PartitionKey; StoreLimitExceeded (checked before anything is sent) when the escaped
    session id is longer than a Table key (a Service Bus session id of 128 emoji escapes to 1,536)."""
    return _key_limit(escape_key(session_id), "session id", "PartitionKey")


def fits_partition_key(session_id: str) -> bool:
    return len(escape_key(session_id)) <= MAX_KEY_CHARS


def quarantine_partition_key(session_id: str) -> str:
    """Where a session's quarantine rows live: its partition, or, for a session id no Table key can hold,
    `~~` + the SHA-256 of the id (an escaped key never holds `~~`), so the message that carries such an id
    can still be quarantined (quarantine rows are found by RowKey, never by partition)."""
    key = escape_key(session_id)
    if len(key) <= MAX_KEY_CHARS:
        return key
    return "~~" + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def escape_key(value: str) -> str:
    """Key-safe form of an id: `[A-Za-z0-9._-]` kept, everything else as ~XX per UTF-8 byte.

    Table keys forbid / \\ # ? and control characters, and '|' separates our key parts, so escaping
    keeps both the service and our prefix range queries safe whatever a producer puts in an id.
    """
    if all(c in _SAFE_KEY_CHARS for c in value):
        return value
    out: list[str] = []
    for c in value:
        if c in _SAFE_KEY_CHARS:
            out.append(c)
        else:
            out.extend(f"~{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
    return "".join(out)


def ledger_key(stream_key: str) -> str:
    return _key_limit(f"{LEDGER}{escape_key(stream_key)}", "stream key (order id)", "RowKey")


def park_key(stream_key: str, sequence: int) -> str:
    return _key_limit(f"{PARK}{escape_key(stream_key)}|{sequence:010d}", "stream key (order id)", "RowKey")


def idem_key(stream_key: str, sequence: int) -> str:
    return _key_limit(f"{IDEM}{escape_key(stream_key)}|{sequence:010d}", "stream key (order id)", "RowKey")


def quarantine_key(quarantine_id: str) -> str:
    return _key_limit(f"{QUARANTINE}{escape_key(quarantine_id)}", "quarantine id", "RowKey")


def prefix_filter(prefix: str) -> str:
    """RowKey range covering exactly the keys starting with `prefix` ('}' sorts right after '|')."""
    return f"RowKey ge '{prefix}' and RowKey lt '{prefix[:-1]}}}'"


def load_filter() -> str:
    """One partition's ledger and parked rows (adjacent in RowKey order), for one range query."""
    return f"PartitionKey eq @pk and RowKey ge '{LEDGER}' and RowKey lt '{PARK[:-1]}}}'"


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def put_blob(entity: dict[str, Any], name: str, data: bytes) -> None:
    """Split bytes over `name_0..name_{n-1}` binary properties (each ≤ 60 KiB) plus a `name_n` count."""
    count = math.ceil(len(data) / CHUNK_SIZE)
    entity[f"{name}_n"] = count
    for i in range(count):
        entity[f"{name}_{i}"] = data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]


def get_blob(entity: Mapping[str, Any], name: str) -> bytes:
    count = int(entity.get(f"{name}_n") or 0)
    return b"".join(bytes(entity[f"{name}_{i}"]) for i in range(count))


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def _json_load(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "surrogatepass"))


def _short(value: str | None, limit: int = 1024) -> str | None:
    """Informational string columns stay far below the 32K-character property limit."""
    return value if value is None or len(value) <= limit else value[:limit]


def _entity_size(entity: Mapping[str, Any]) -> int:
    """The service's size formula: 4 + 2*len(keys) + per property 8 + 2*len(name) + value size."""
    size = 4
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            size += 2 * len(str(value))
            continue
        size += 8 + 2 * len(name)
        if isinstance(value, bytes | bytearray):
            size += 4 + len(value)
        elif isinstance(value, str):
            size += 4 + 2 * len(value)
        else:
            size += 8
    return size


def payload_size(entity: Mapping[str, Any]) -> int:
    """Upper estimate of an operation's bytes on the wire (binary travels as base64 in JSON)."""
    size = 600  # multipart part headers, request line
    for name, value in entity.items():
        size += len(name) + 40  # name, quotes, the @odata.type annotation
        if isinstance(value, bytes | bytearray):
            size += 4 * math.ceil(len(value) / 3)
        elif isinstance(value, str):
            size += len(json.dumps(value))
        else:
            size += 40
    return size


def _checked(entity: dict[str, Any]) -> dict[str, Any]:
    size = _entity_size(entity)
    if size > ENTITY_SIZE_BUDGET:
        raise StoreLimitExceeded(
            f"a {entity['kind']} row would be {size} bytes; a Table entity holds at most {MAX_ENTITY_SIZE}"
        )
    return entity


# --- record <-> entity -------------------------------------------------------------------


def ledger_entity(session_id: str, ledger: Ledger[Any], codec: StateCodec[Any, Any]) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition_key(session_id),
        "RowKey": ledger_key(ledger.stream_key),
        "kind": "ledger",
        "session_id": session_id,
        "stream_key": ledger.stream_key,
        "state": _short(codec.status(ledger.state)),
        "last_sequence": ledger.last_sequence,
    }
    put_blob(entity, "doc", _json_bytes(ledger.to_document(codec)))
    return _checked(entity)


def ledger_from_entity(entity: Mapping[str, Any], etag: str, codec: StateCodec[Any, L]) -> L:
    return Ledger.from_document(
        _json_load(get_blob(entity, "doc")),
        codec,
        version=etag,
        session_id=entity["session_id"],
        stream_key=stream_key_of(dict(entity)),
    )


def parked_entity(session_id: str, parked: ParkedMessage) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition_key(session_id),
        "RowKey": park_key(parked.stream_key, parked.sequence),
        "kind": "park",
        "session_id": parked.session_id,
        "stream_key": parked.stream_key,
        "sequence": parked.sequence,
        "content_hash": _short(parked.content_hash),
        "parked_at": utc(parked.parked_at),
    }
    doc = {
        "session_id": parked.session_id,
        "stream_key": parked.stream_key,
        "sequence": parked.sequence,
        "content_hash": parked.content_hash,
        "metadata": parked.envelope.metadata(),
        "parked_at": parked.parked_at.isoformat(),
    }
    put_blob(entity, "doc", _json_bytes(doc))
    put_blob(entity, "body", parked.envelope.body)  # raw bytes: no base64 inflation in the entity
    return _checked(entity)


def parked_from_entity(entity: Mapping[str, Any]) -> ParkedMessage:
    doc = _json_load(get_blob(entity, "doc"))
    return ParkedMessage(
        session_id=doc["session_id"],
        stream_key=stream_key_of(doc),
        sequence=int(doc["sequence"]),
        content_hash=doc["content_hash"],
        envelope=SessionEnvelope.from_metadata(get_blob(entity, "body"), doc["metadata"]),
        parked_at=datetime.fromisoformat(doc["parked_at"]),
    )


def idem_set_key(first: IdempotencyRecord) -> str:
    """Keyed by its first record: each (stream, sequence) is applied, and so recorded, exactly once, so no
    two sets ever share a key (a redelivered batch finds the committed records' steps as duplicates)."""
    key = f"{IDEM_SET}{escape_key(first.stream_key)}|{first.sequence:010d}"
    return _key_limit(key, "stream key (order id)", "RowKey")


# Bytes of a set entity besides its records (keys, properties, multipart framing), for batch planning.
IDEM_SET_OVERHEAD = 2048


def idempotency_set_record_size(record: IdempotencyRecord) -> int:
    """Upper estimate of what one record adds to a set entity on the wire (JSON, as base64)."""
    return 4 * math.ceil((len(_json_bytes(_idem_doc(record))) + 1) / 3) + 4


def idempotency_set_entity(session_id: str, records: Sequence[IdempotencyRecord]) -> dict[str, Any]:
    """One entity holding the idempotency records of one transaction: one operation instead of one per
    record (a batch of 32 messages touching 32 orders is 33 operations, not 64). `recorded_at` is the
    latest record's time, so the purge drops a set only when all of its records are past retention."""
    entity: dict[str, Any] = {
        "PartitionKey": partition_key(session_id),
        "RowKey": idem_set_key(records[0]),
        "kind": "idems",
        "session_id": session_id,
        "count": len(records),
        "recorded_at": utc(max(r.recorded_at for r in records)),
    }
    put_blob(entity, "records", _json_bytes([_idem_doc(r) for r in records]))
    return _checked(entity)


def idempotency_records_from_set(entity: Mapping[str, Any]) -> list[IdempotencyRecord]:
    return [
        IdempotencyRecord(
            session_id=str(entity["session_id"]),
            stream_key=doc["stream_key"],
            sequence=int(doc["sequence"]),
            content_hash=doc["content_hash"],
            message_id=doc["message_id"],
            recorded_at=datetime.fromisoformat(doc["recorded_at"]),
        )
        for doc in _json_load(get_blob(entity, "records"))
    ]


def _idem_doc(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "stream_key": record.stream_key,
        "sequence": record.sequence,
        "content_hash": record.content_hash,
        "message_id": record.message_id,
        "recorded_at": utc(record.recorded_at).isoformat(),
    }


def idempotency_entity(session_id: str, record: IdempotencyRecord) -> dict[str, Any]:
    """The one-row-per-record layout of earlier versions (read by tests of the stored format)."""
    return _checked(
        {
            "PartitionKey": partition_key(session_id),
            "RowKey": idem_key(record.stream_key, record.sequence),
            "kind": "idem",
            "session_id": record.session_id,
            "stream_key": record.stream_key,
            "sequence": record.sequence,
            "content_hash": _short(record.content_hash),
            "message_id": _short(record.message_id),
            "recorded_at": utc(record.recorded_at),  # Edm.DateTime, so purge can filter on it
        }
    )


def quarantine_entity(session_id: str, record: QuarantineRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": quarantine_partition_key(session_id),
        "RowKey": quarantine_key(record.id),
        "kind": "quarantine",
        "quarantine_id": record.id,
        "session_id": _short(record.session_id),  # the exact id is in `doc`
        "reason": _short(record.reason),
        "status": record.status,
        "quarantined_at": utc(record.quarantined_at),
    }
    if record.replayed_at is not None:
        entity["replayed_at"] = record.replayed_at.isoformat()
    doc = record.to_document()
    body = doc.pop("body")
    put_blob(entity, "doc", _json_bytes(doc))
    put_blob(entity, "body", body.encode("utf-8", "surrogatepass"))
    return _checked(entity)


def quarantine_from_entity(entity: Mapping[str, Any]) -> QuarantineRecord:
    doc = _json_load(get_blob(entity, "doc"))
    doc["body"] = get_blob(entity, "body").decode("utf-8", "surrogatepass")
    # status/replayed_at are plain columns so mark_replayed is a small MERGE, not a document rewrite
    doc["status"] = entity.get("status") or doc.get("status") or "open"
    doc["replayed_at"] = entity.get("replayed_at") or None
    return QuarantineRecord.from_document(doc)
