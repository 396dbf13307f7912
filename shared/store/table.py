"""OrderStore on Azure Table Storage: one partition per session, one entity-group transaction per message.

Layout (see docs/store.md): PartitionKey = session id (the customer id), so a message's ledger update,
idempotency record, park/unpark and quarantine rows all live in one partition and commit together in a
single `$batch` with an ETag condition on the ledger. A per-session cache (loaded with one range query
on first touch) lets the steady state cost exactly one storage round trip per message: the commit.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from shared.envelope import SessionEnvelope
from shared.records import IdempotencyRecord, OrderLedger, ParkedMessage, QuarantineRecord, SessionChanges
from shared.store.base import ConcurrencyConflict, StoreUnavailable, TransientStoreError

log = logging.getLogger(__name__)

# --- service limits (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model)
MAX_BATCH_OPERATIONS = 100
MAX_BATCH_PAYLOAD = 4 * 1024 * 1024  # request body of one $batch
MAX_ENTITY_SIZE = 1024 * 1024
CHUNK_SIZE = 60 * 1024  # one binary property holds at most 64 KiB; keep a margin
# What we let a batch grow to by our own (conservative) estimate, leaving room for multipart framing.
BATCH_PAYLOAD_BUDGET = MAX_BATCH_PAYLOAD - 256 * 1024
ENTITY_SIZE_BUDGET = MAX_ENTITY_SIZE - 8 * 1024

ORDER, PARK, IDEM, QUARANTINE = "order|", "park|", "idem|", "quarantine|"
_SAFE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

Operation = tuple[Any, ...]  # (verb, entity) or (verb, entity, options), as submit_transaction takes


class StoreLimitExceeded(ValueError):
    """A change cannot be stored within Table Storage limits; retrying will not help (not transient)."""


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


def order_key(order_id: str) -> str:
    return f"{ORDER}{escape_key(order_id)}"


def park_key(order_id: str, sequence: int) -> str:
    return f"{PARK}{escape_key(order_id)}|{sequence:010d}"


def idem_key(order_id: str, sequence: int) -> str:
    return f"{IDEM}{escape_key(order_id)}|{sequence:010d}"


def quarantine_key(quarantine_id: str) -> str:
    return f"{QUARANTINE}{escape_key(quarantine_id)}"


def _prefix_filter(prefix: str) -> str:
    """RowKey range covering exactly the keys starting with `prefix` ('}' sorts right after '|')."""
    return f"RowKey ge '{prefix}' and RowKey lt '{prefix[:-1]}}}'"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _put_blob(entity: dict[str, Any], name: str, data: bytes) -> None:
    """Split bytes over `name_0..name_{n-1}` binary properties (each ≤ 60 KiB) plus a `name_n` count."""
    count = math.ceil(len(data) / CHUNK_SIZE)
    entity[f"{name}_n"] = count
    for i in range(count):
        entity[f"{name}_{i}"] = data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]


def _get_blob(entity: Mapping[str, Any], name: str) -> bytes:
    count = int(entity.get(f"{name}_n") or 0)
    return b"".join(bytes(entity[f"{name}_{i}"]) for i in range(count))


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
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


def _payload_size(entity: Mapping[str, Any]) -> int:
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
            f"{entity['RowKey']!r} would be {size} bytes; a Table entity holds at most {MAX_ENTITY_SIZE}"
        )
    return entity


# --- entity <-> record mapping -------------------------------------------------------------------


def ledger_entity(session_id: str, ledger: OrderLedger) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": escape_key(session_id),
        "RowKey": order_key(ledger.order_id),
        "kind": "order",
        "session_id": session_id,
        "order_id": ledger.order_id,
        "customer_id": _short(ledger.customer_id),
        "state": ledger.order.state.value,
        "last_sequence": ledger.last_sequence,
    }
    _put_blob(entity, "doc", _json_bytes(ledger.to_document()))
    return _checked(entity)


def ledger_from_entity(entity: Mapping[str, Any], etag: str) -> OrderLedger:
    return OrderLedger.from_document(_json_load(_get_blob(entity, "doc")), version=etag)


def parked_entity(session_id: str, parked: ParkedMessage) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": escape_key(session_id),
        "RowKey": park_key(parked.order_id, parked.sequence),
        "kind": "park",
        "session_id": parked.session_id,
        "order_id": parked.order_id,
        "sequence": parked.sequence,
        "content_hash": _short(parked.content_hash),
        "parked_at": _utc(parked.parked_at),
    }
    doc = {
        "session_id": parked.session_id,
        "order_id": parked.order_id,
        "sequence": parked.sequence,
        "content_hash": parked.content_hash,
        "metadata": parked.envelope.metadata(),
        "parked_at": parked.parked_at.isoformat(),
    }
    _put_blob(entity, "doc", _json_bytes(doc))
    _put_blob(entity, "body", parked.envelope.body)  # raw bytes: no base64 inflation in the entity
    return _checked(entity)


def parked_from_entity(entity: Mapping[str, Any]) -> ParkedMessage:
    doc = _json_load(_get_blob(entity, "doc"))
    return ParkedMessage(
        session_id=doc["session_id"],
        order_id=doc["order_id"],
        sequence=int(doc["sequence"]),
        content_hash=doc["content_hash"],
        envelope=SessionEnvelope.from_metadata(_get_blob(entity, "body"), doc["metadata"]),
        parked_at=datetime.fromisoformat(doc["parked_at"]),
    )


def idempotency_entity(session_id: str, record: IdempotencyRecord) -> dict[str, Any]:
    return _checked(
        {
            "PartitionKey": escape_key(session_id),
            "RowKey": idem_key(record.order_id, record.sequence),
            "kind": "idem",
            "session_id": record.session_id,
            "order_id": record.order_id,
            "sequence": record.sequence,
            "content_hash": _short(record.content_hash),
            "message_id": _short(record.message_id),
            "recorded_at": _utc(record.recorded_at),  # Edm.DateTime, so purge can filter on it
        }
    )


def quarantine_entity(session_id: str, record: QuarantineRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": escape_key(session_id),
        "RowKey": quarantine_key(record.id),
        "kind": "quarantine",
        "quarantine_id": record.id,
        "session_id": record.session_id,
        "reason": _short(record.reason),
        "status": record.status,
        "quarantined_at": _utc(record.quarantined_at),
    }
    if record.replayed_at is not None:
        entity["replayed_at"] = record.replayed_at.isoformat()
    doc = record.to_document()
    body = doc.pop("body")
    _put_blob(entity, "doc", _json_bytes(doc))
    _put_blob(entity, "body", body.encode("utf-8", "surrogatepass"))
    return _checked(entity)


def quarantine_from_entity(entity: Mapping[str, Any]) -> QuarantineRecord:
    doc = _json_load(_get_blob(entity, "doc"))
    doc["body"] = _get_blob(entity, "body").decode("utf-8", "surrogatepass")
    # status/replayed_at are plain columns so mark_replayed is a small MERGE, not a document rewrite
    doc["status"] = entity.get("status") or doc.get("status") or "open"
    doc["replayed_at"] = entity.get("replayed_at") or None
    return QuarantineRecord.from_document(doc)


# --- plumbing ------------------------------------------------------------------------------------


class RequestCounter(SansIOHTTPPolicy):
    """Counts HTTP requests actually sent (placed after the retry policy, so retries count too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def on_request(self, request: PipelineRequest) -> None:
        with self._lock:
            self.count += 1


@dataclass(slots=True)
class _Partition:
    """What one session's partition held when loaded, kept current by our own successful commits."""

    ledgers: dict[str, OrderLedger] = field(default_factory=dict)
    # (order, sequence) -> the parked message, or None when it exists but its body is too large to keep
    # in memory (read back on demand): the cache's size stays bounded by bytes, not just by sessions.
    parked: dict[tuple[str, int], ParkedMessage | None] = field(default_factory=dict)
    touched: float = 0.0


PARKED_CACHE_MAX_BODY = 64 * 1024


def _cacheable(parked: ParkedMessage) -> ParkedMessage | None:
    return parked if len(parked.envelope.body) <= PARKED_CACHE_MAX_BODY else None


def _error_code(exc: AzureError) -> str | None:
    code = getattr(exc, "error_code", None)
    return None if code is None else str(getattr(code, "value", code))


def _etag(entity: TableEntity) -> str:
    return str(entity.metadata["etag"])


def _is_conflict(exc: AzureError) -> bool:
    """412 (ETag mismatch), 409 (already exists), and 404 inside a transaction (a row we meant to
    update or unpark is gone): all mean "someone else changed this partition"."""
    if isinstance(exc, ResourceModifiedError | ResourceExistsError):
        return True
    status = getattr(exc, "status_code", None)
    if status in (409, 412):
        return True
    return isinstance(exc, TableTransactionError) and status == 404 and _error_code(exc) != "TableNotFound"


class TableOrderStore:
    """OrderStore on one Azure Table (or Azurite). Thread-safe; one instance per process is enough."""

    def __init__(
        self,
        client: TableClient,
        counter: RequestCounter,
        *,
        cache_ttl_seconds: float = 30.0,
        cache_max_sessions: int = 1024,
        create_table: bool = True,
        clock: Callable[[], float] = time.monotonic,
        client_factory: Callable[[], TableClient] | None = None,
    ) -> None:
        self._client = client
        self._client_factory = client_factory  # reopen() builds a fresh client (new connection pool)
        self._counter = counter
        self._ttl = cache_ttl_seconds
        self._max_sessions = cache_max_sessions
        self._clock = clock
        self._cache: OrderedDict[str, _Partition] = OrderedDict()
        self._lock = threading.Lock()
        self._table_ready = not create_table
        if create_table:
            try:
                self._ensure_table()
            except StoreUnavailable as exc:  # the first operation tries again: starting must not crash
                log.warning("could not create table %s yet: %s", client.table_name, exc)

    # --- construction ---
    @staticmethod
    def _client_options(counter: RequestCounter, options: Mapping[str, Any]) -> dict[str, Any]:
        """Few, short retries: a failed commit abandons the message and Service Bus redelivers it."""
        merged: dict[str, Any] = {
            "retry_total": 2,
            "retry_backoff_factor": 0.3,
            "retry_backoff_max": 2,
            "connection_timeout": 5,
            "read_timeout": 30,
        }
        merged.update(options)
        merged["per_retry_policies"] = [counter, *merged.get("per_retry_policies", [])]
        return merged

    @classmethod
    def from_connection_string(
        cls, conn: str, table_name: str, *, client_options: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> TableOrderStore:
        """Account-key/SAS connection string, or `UseDevelopmentStorage=true` (Azurite on 127.0.0.1:10002)."""
        counter = RequestCounter()

        def make() -> TableClient:
            return TableClient.from_connection_string(
                conn, table_name=table_name, **cls._client_options(counter, client_options or {})
            )

        return cls(make(), counter, client_factory=make, **kwargs)

    @classmethod
    def from_service_uri(
        cls,
        table_service_uri: str,
        table_name: str,
        credential: Any,
        *,
        client_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> TableOrderStore:
        """Identity-based access (DefaultAzureCredential / ManagedIdentityCredential): needs the
        "Storage Table Data Contributor" role on the account or table."""
        counter = RequestCounter()

        def make() -> TableClient:
            return TableClient(
                endpoint=table_service_uri,
                table_name=table_name,
                credential=credential,
                **cls._client_options(counter, client_options or {}),
            )

        return cls(make(), counter, client_factory=make, **kwargs)

    @property
    def requests_made(self) -> int:
        """HTTP requests sent to storage so far (for round-trip benchmarks)."""
        return self._counter.count

    @property
    def table_name(self) -> str:
        return str(self._client.table_name)

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        try:
            self._client.create_table()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StoreUnavailable(f"cannot create table {self._client.table_name}: {exc}") from exc
        self._table_ready = True

    # --- cache ---
    def _cached(self, session_id: str) -> _Partition | None:
        now = self._clock()
        with self._lock:
            part = self._cache.get(session_id)
            if part is None:
                return None
            if now - part.touched > self._ttl:
                # idle too long: the host may have given the session to another instance meanwhile
                del self._cache[session_id]
                return None
            part.touched = now
            self._cache.move_to_end(session_id)
            return part

    def _partition(self, session_id: str) -> _Partition:
        part = self._cached(session_id)
        if part is not None:
            return part
        part = self._load_partition(session_id)
        with self._lock:
            self._cache[session_id] = part
            self._cache.move_to_end(session_id)
            while len(self._cache) > self._max_sessions:
                self._cache.popitem(last=False)
        return part

    def _load_partition(self, session_id: str) -> _Partition:
        """One range query over the partition's `order|` and `park|` rows (they sort next to each other)."""
        part = _Partition()
        query = f"PartitionKey eq @pk and RowKey ge '{ORDER}' and RowKey lt '{PARK[:-1]}}}'"
        for entity in self._query(query, {"pk": escape_key(session_id)}):
            row_key: str = entity["RowKey"]
            if row_key.startswith(ORDER):
                ledger = ledger_from_entity(entity, _etag(entity))
                part.ledgers[ledger.order_id] = ledger
            elif row_key.startswith(PARK):
                parked = parked_from_entity(entity)
                part.parked[(parked.order_id, parked.sequence)] = _cacheable(parked)
        part.touched = self._clock()
        return part

    def evict(self, session_id: str | None = None) -> None:
        """Forget one session's cached partition (or all): the next read goes to storage."""
        with self._lock:
            if session_id is None:
                self._cache.clear()
            else:
                self._cache.pop(session_id, None)

    def reopen(self) -> None:
        """Forget every cached partition and start over with a fresh client (connection pool). The old
        client is not closed here: other sessions' invocations may be mid-request on it (closing it
        under them fails their request with a non-transient error); it is released when they drop it."""
        self.evict()
        if self._client_factory is not None:
            self._client = self._client_factory()

    # --- the per-message path ---
    def get_ledger(self, session_id: str, order_id: str) -> OrderLedger | None:
        ledger = self._partition(session_id).ledgers.get(order_id)
        return ledger.copy() if ledger is not None else None

    def get_parked(self, session_id: str, order_id: str, sequence: int) -> ParkedMessage | None:
        parked = self._partition(session_id).parked
        key = (order_id, sequence)
        if key not in parked:
            return None
        return parked[key] or self._read_parked(session_id, order_id, sequence)

    def _read_parked(self, session_id: str, order_id: str, sequence: int) -> ParkedMessage | None:
        """Point read of a parked message whose body the cache does not keep."""
        self._ensure_table()
        try:
            entity = self._client.get_entity(escape_key(session_id), park_key(order_id, sequence))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._translate(exc, "read parked message") from exc
        return parked_from_entity(entity)

    def commit(self, changes: SessionChanges) -> None:
        if changes.is_empty:
            return
        sid = changes.session_id
        pk = escape_key(sid)
        atomic: list[Operation] = []
        atomic_size = 0
        ledger = changes.ledger
        if ledger is not None:
            entity = ledger_entity(sid, ledger)
            if ledger.version is None:
                atomic.append(("create", entity))
            else:
                options = {
                    "mode": UpdateMode.REPLACE,
                    "etag": ledger.version,
                    "match_condition": MatchConditions.IfNotModified,
                }
                atomic.append(("update", entity, options))
            atomic_size += _payload_size(entity)
        for parked in changes.park:
            entity = parked_entity(sid, parked)
            atomic.append(("create", entity))
            atomic_size += _payload_size(entity)
        for order_id, sequence in changes.unpark:
            # unconditional delete; a missing row fails the batch with 404 -> ConcurrencyConflict
            entity = {"PartitionKey": pk, "RowKey": park_key(order_id, sequence)}
            atomic.append(("delete", entity))
            atomic_size += _payload_size(entity)
        if len(atomic) > MAX_BATCH_OPERATIONS or atomic_size > BATCH_PAYLOAD_BUDGET:
            raise StoreLimitExceeded(
                f"ledger+park+unpark of one message is {len(atomic)} operations / ~{atomic_size} bytes; "
                f"one Table transaction holds {MAX_BATCH_OPERATIONS} and {MAX_BATCH_PAYLOAD} bytes"
            )

        # idempotent upserts, deduplicated by RowKey (one entity may appear only once per batch)
        upserts: dict[str, dict[str, Any]] = {}
        for record in changes.idempotency:
            entity = idempotency_entity(sid, record)
            upserts[entity["RowKey"]] = entity
        for q in changes.quarantine:
            entity = quarantine_entity(sid, q)
            upserts[entity["RowKey"]] = entity

        # fill the final (atomic) batch with upserts while they fit; the rest go in earlier batches
        final: list[Operation] = list(atomic)
        final_size = atomic_size
        earlier: list[list[Operation]] = []
        batch: list[Operation] = []
        batch_size = 0
        for entity in upserts.values():
            size = _payload_size(entity)
            if len(final) < MAX_BATCH_OPERATIONS and final_size + size <= BATCH_PAYLOAD_BUDGET:
                final.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
                final_size += size
                continue
            if batch and (len(batch) >= MAX_BATCH_OPERATIONS or batch_size + size > BATCH_PAYLOAD_BUDGET):
                earlier.append(batch)
                batch, batch_size = [], 0
            batch.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
            batch_size += size
        if batch:
            earlier.append(batch)

        try:
            self._ensure_table()
            for ops in earlier:
                self._submit(ops)
            results = self._submit(final)
        except BaseException:
            self.evict(sid)  # our view of the partition may be stale or half-known: reload next time
            raise

        if ledger is not None:
            ledger.version = results[0]["etag"]
        self._after_commit(sid, changes)

    def _after_commit(self, sid: str, changes: SessionChanges) -> None:
        with self._lock:
            part = self._cache.get(sid)
            if part is None:
                return
            if changes.ledger is not None:
                part.ledgers[changes.ledger.order_id] = changes.ledger.copy()
            for order_id, sequence in changes.unpark:
                part.parked.pop((order_id, sequence), None)
            for parked in changes.park:
                part.parked[(parked.order_id, parked.sequence)] = _cacheable(parked)
            part.touched = self._clock()

    def _submit(self, ops: list[Operation]) -> list[Mapping[str, Any]]:
        try:
            return self._client.submit_transaction(ops)
        except AzureError as exc:
            raise self._translate(exc, "transaction") from exc

    def _translate(self, exc: AzureError, what: str) -> TransientStoreError:
        if _is_conflict(exc):
            return ConcurrencyConflict(f"{what} on {self.table_name}: {getattr(exc, 'message', exc)}")
        if isinstance(exc, HttpResponseError) and _error_code(exc) == "TableNotFound":
            self._table_ready = False  # someone deleted the table: recreate on the next operation
        return StoreUnavailable(f"{what} on {self.table_name} failed: {type(exc).__name__}: {exc}")

    def _query(
        self, query_filter: str, parameters: Mapping[str, Any] | None = None, select: list[str] | None = None
    ) -> Iterator[TableEntity]:
        """All pages of a query, errors as StoreUnavailable (materialised so paging errors surface here)."""
        self._ensure_table()
        try:
            pages = self._client.query_entities(
                query_filter, parameters=dict(parameters or {}), select=select
            )
            return iter(list(pages))
        except AzureError as exc:
            raise self._translate(exc, "query") from exc

    # --- operator reads and maintenance ---
    def list_ledgers(self, customer_id: str | None = None) -> list[OrderLedger]:
        """By customer: one partition (session id = customer id); all: a scan of the `order|` rows."""
        query, params = _prefix_filter(ORDER), {}
        if customer_id is not None:
            query, params = f"PartitionKey eq @pk and {query}", {"pk": escape_key(customer_id)}
        ledgers = [ledger_from_entity(e, _etag(e)) for e in self._query(query, params)]
        return sorted(ledgers, key=lambda x: (x.customer_id, x.order_id))

    def list_parked(self, customer_id: str | None = None) -> list[ParkedMessage]:
        query, params = _prefix_filter(PARK), {}
        if customer_id is not None:
            query, params = f"PartitionKey eq @pk and {query}", {"pk": escape_key(customer_id)}
        parked = [parked_from_entity(e) for e in self._query(query, params)]
        return sorted(parked, key=lambda p: (p.session_id, p.order_id, p.sequence))

    def list_quarantine(self, *, include_replayed: bool = False) -> list[QuarantineRecord]:
        query = _prefix_filter(QUARANTINE)
        if not include_replayed:
            query += " and status eq 'open'"
        records = [quarantine_from_entity(e) for e in self._query(query)]
        return sorted(records, key=lambda q: (q.quarantined_at, q.id))

    def _find_quarantine(self, quarantine_id: str) -> TableEntity | None:
        """Quarantine rows live in their session's partition, so finding one by id scans the table."""
        found = list(self._query("RowKey eq @rk", {"rk": quarantine_key(quarantine_id)}))
        return found[0] if found else None

    def get_quarantine(self, quarantine_id: str) -> QuarantineRecord | None:
        entity = self._find_quarantine(quarantine_id)
        return quarantine_from_entity(entity) if entity is not None else None

    def mark_replayed(self, quarantine_id: str, at: datetime) -> None:
        entity = self._find_quarantine(quarantine_id)
        if entity is None:
            raise KeyError(quarantine_id)
        patch = {
            "PartitionKey": entity["PartitionKey"],
            "RowKey": entity["RowKey"],
            "status": "replayed",
            "replayed_at": at.isoformat(),
        }
        try:
            self._client.update_entity(
                patch,
                mode=UpdateMode.MERGE,
                etag=entity.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except AzureError as exc:
            raise self._translate(exc, "mark_replayed") from exc

    def purge_idempotency_records(self, older_than: datetime) -> int:
        """Scan for old `idem|` rows (keys only), then delete them in per-partition batches of 100."""
        query = f"{_prefix_filter(IDEM)} and recorded_at lt @cutoff"
        keys = [
            (e["PartitionKey"], e["RowKey"])
            for e in self._query(query, {"cutoff": _utc(older_than)}, ["PartitionKey", "RowKey"])
        ]
        by_partition: dict[str, list[str]] = {}
        for pk, rk in keys:
            by_partition.setdefault(pk, []).append(rk)
        deleted = 0
        for pk, row_keys in by_partition.items():
            for i in range(0, len(row_keys), MAX_BATCH_OPERATIONS):
                chunk = row_keys[i : i + MAX_BATCH_OPERATIONS]
                deleted += self._delete_rows(pk, chunk)
        return deleted

    def _delete_rows(self, pk: str, row_keys: list[str]) -> int:
        ops: list[Operation] = [("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in row_keys]
        try:
            self._client.submit_transaction(ops)
            return len(row_keys)
        except TableTransactionError as exc:
            if exc.status_code != 404:
                raise self._translate(exc, "purge") from exc
        except AzureError as exc:
            raise self._translate(exc, "purge") from exc
        # someone purged concurrently: fall back to single deletes (404 is ignored by delete_entity)
        try:
            for rk in row_keys:
                self._client.delete_entity(pk, rk)
        except AzureError as exc:
            raise self._translate(exc, "purge") from exc
        return len(row_keys)

    def count_idempotency_records(self) -> int:
        return sum(1 for _ in self._query(_prefix_filter(IDEM), select=["RowKey"]))

    def close(self) -> None:
        self.evict()
        self._client.close()

    def __enter__(self) -> TableOrderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
