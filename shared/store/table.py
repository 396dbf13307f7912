"""The store on Azure Table Storage: one partition per session, one entity-group transaction per message.

Layout (see docs/store.md): PartitionKey = session id (the customer id), so a message's ledger update,
idempotency record, park/unpark and quarantine rows all live in one partition and commit together in a
single `$batch` with an ETag condition on the ledger. A per-session cache (loaded with one range query
on first touch) lets the steady state cost exactly one storage round trip per message: the commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

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
from azure.data.tables import (
    RequestTooLargeError,
    TableClient,
    TableEntity,
    TableTransactionError,
    UpdateMode,
)

from shared.engine.changes import chain_version, coalesce
from shared.engine.ledger import Ledger
from shared.engine.records import IdempotencyRecord, ParkedMessage, QuarantineRecord, SessionChanges
from shared.engine.workflow import StateCodec
from shared.store.base import (
    PARKED_CACHE_MAX_BODY,
    ConcurrencyConflict,
    StoreRejected,
    StoreUnavailable,
    TransientStoreError,
)
from shared.store.table_entities import (
    BATCH_PAYLOAD_BUDGET,
    IDEM,
    IDEM_SET,
    IDEM_SET_OVERHEAD,
    LEDGER,
    MAX_BATCH_OPERATIONS,
    MAX_BATCH_PAYLOAD,
    PARK,
    QUARANTINE,
    StoreLimitExceeded,
    escape_key,
    fits_partition_key,
    idempotency_set_entity,
    idempotency_set_record_size,
    ledger_entity,
    ledger_from_entity,
    load_filter,
    park_key,
    parked_entity,
    parked_from_entity,
    partition_key,
    payload_size,
    prefix_filter,
    quarantine_entity,
    quarantine_from_entity,
    quarantine_key,
    utc,
)
from shared.store.workflow_record import check_readable, settle
from shared.workflows import WorkflowRecord

log = logging.getLogger(__name__)

# The one entity that records which workflow the table belongs to (shared/store/workflow_record.py).
WORKFLOW_PARTITION, WORKFLOW_ROW = "~store", "workflow"

Operation = tuple[Any, ...]  # (verb, entity) or (verb, entity, options), as submit_transaction takes

__all__ = ["RequestCounter", "StoreLimitExceeded", "TableOrderStore"]


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

    ledgers: dict[str, Any] = field(default_factory=dict)  # stream key -> the store's ledger type
    # (stream, sequence) -> the parked message, or None when it exists but its body is too large to keep
    # in memory (read back on demand): the cache's size stays bounded by bytes, not just by sessions.
    parked: dict[tuple[str, int], ParkedMessage | None] = field(default_factory=dict)
    touched: float = 0.0


def _cacheable(parked: ParkedMessage) -> ParkedMessage | None:
    return parked if len(parked.envelope.body) <= PARKED_CACHE_MAX_BODY else None


def _error_code(exc: AzureError) -> str | None:
    """The storage error code: `error_code` (set by azure-data-tables' _decode_error and on
    TableTransactionError), else the x-ms-error-code header or the OData body of the response (the
    generated client's plain HttpResponseError, e.g. from create_entity, carries neither attribute)."""
    code = getattr(exc, "error_code", None)
    if code is None:
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
    if code is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    return None if code is None else str(getattr(code, "value", code))


# Storage error codes that say the REQUEST's content can never be stored (a key, property or entity over a
# limit, a value the service refuses): retrying the same message cannot help. Names from azure-data-tables
# `azure/data/tables/_error.py` TableErrorCode (INVALID_INPUT, OUT_OF_RANGE_INPUT, INVALID_VALUE_TYPE,
# PROPERTY_VALUE_TOO_LARGE, PROPERTY_NAME_TOO_LONG, PROPERTY_NAME_INVALID, TOO_MANY_PROPERTIES,
# DUPLICATE_PROPERTIES_SPECIFIED, PROPERTIES_NEED_VALUE, ENTITY_TOO_LARGE, REQUEST_BODY_TOO_LARGE,
# INVALID_DUPLICATE_ROW) plus KeyValueTooLarge from the Table service error-code list. Everything else
# stays transient: 409/412 (and 404 in a transaction) are conflicts; 5xx, 429/503 ServerBusy, timeouts and
# connection errors are availability; 401/403 (AuthenticationFailed, AuthorizationFailure), 400
# InvalidAuthenticationInfo/InvalidHeaderValue and TableNotFound are the deployment's configuration, never
# one message's fault: quarantining every message for a wrong key would be the worst answer.
REQUEST_REFUSED_CODES = frozenset(
    {
        "InvalidInput",
        "OutOfRangeInput",
        "InvalidValueType",
        "PropertyValueTooLarge",
        "PropertyNameTooLong",
        "PropertyNameInvalid",
        "TooManyProperties",
        "DuplicatePropertiesSpecified",
        "PropertiesNeedValue",
        "EntityTooLarge",
        "RequestBodyTooLarge",
        "KeyValueTooLarge",
        "InvalidDuplicateRow",
    }
)


def refuses_request(exc: AzureError) -> bool:
    """Whether storage refused the request's content for good (413, or 400 with a content code)."""
    status = getattr(exc, "status_code", None)
    if status == 413 or isinstance(exc, RequestTooLargeError):
        return True
    return status == 400 and _error_code(exc) in REQUEST_REFUSED_CODES


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


class _BatchPlan:
    """Packs a batch's operations into in-order transactions: greedy next-fit, which for items whose
    order is fixed gives the fewest transactions. An atomic group (a run's ledger + park/unpark rows)
    never spans two transactions, and its idempotency records go in that transaction's one set entity;
    a run's other upserts are placed before or with its group; no row appears twice in one transaction
    (the service refuses that)."""

    def __init__(
        self,
        max_operations: int,
        max_payload: int,
        make_set: Callable[[list[IdempotencyRecord]], dict[str, Any]],
    ) -> None:
        self._max_ops, self._max_payload = max_operations, max_payload
        self._make_set = make_set
        self._done: list[list[Any]] = []
        self._items: list[Any] = []
        self._size = 0
        self._keys: set[str] = set()
        self._upserted: set[str] = set()
        self._records: list[IdempotencyRecord] = []  # of the open transaction: its set entity, on close

    def _room(self, count: int, size: int, keys: set[str]) -> bool:
        return (
            len(self._items) + bool(self._records) + count <= self._max_ops
            and self._size + size <= self._max_payload
            and not (keys & self._keys)
        )

    def _close(self) -> None:
        if self._records:
            self._items.append(("upsert", self._make_set(self._records), {"mode": UpdateMode.REPLACE}))
        if self._items:
            self._done.append(self._items)
        self._items, self._size, self._keys, self._records = [], 0, set(), []

    def upsert(self, entity: dict[str, Any]) -> None:
        key = entity["RowKey"]
        if key in self._upserted:
            return
        size = payload_size(entity)
        if not self._room(1, size, {key}):
            self._close()
        self._items.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
        self._size += size
        self._keys.add(key)
        self._upserted.add(key)

    def atomic(self, group: list[tuple[Any, str, int]], records: Sequence[IdempotencyRecord] = ()) -> None:
        keys = {key for _, key, _ in group}
        size = sum(s for _, _, s in group) + sum(idempotency_set_record_size(r) for r in records)

        def needs() -> tuple[int, int]:  # a transaction's first records also bring its set entity
            opens_set = bool(records) and not self._records
            return len(group) + opens_set, size + (IDEM_SET_OVERHEAD if opens_set else 0)

        if not self._room(*needs(), keys):
            self._close()
            if not self._room(*needs(), keys):
                raise StoreLimitExceeded(
                    f"one stream's changes are {needs()[0]} operations / ~{needs()[1]} bytes; one Table "
                    f"transaction holds {self._max_ops} and {self._max_payload} bytes"
                )
        self._size += needs()[1]
        self._items.extend(item for item, _, _ in group)
        self._keys |= keys
        self._records.extend(records)

    def transactions(self) -> list[list[Any]]:
        self._close()
        return self._done


def _record_count(entity: Mapping[str, Any]) -> int:
    """Records in an idempotency set (its `count`), or 1 for an `idem|` row of an earlier version."""
    count = entity.get("count")
    return int(count) if count is not None else 1


L = TypeVar("L", bound=Ledger[Any])


class TableOrderStore(Generic[L]):
    """The store on one Azure Table (or Azurite). Thread-safe; one instance per process is enough."""

    def __init__(
        self,
        client: TableClient,
        counter: RequestCounter,
        *,
        codec: StateCodec[Any, L],
        workflow: WorkflowRecord | None = None,
        cache_ttl_seconds: float = 30.0,
        cache_max_sessions: int = 1024,
        create_table: bool = True,
        clock: Callable[[], float] = time.monotonic,
        client_factory: Callable[[], TableClient] | None = None,
    ) -> None:
        self._client = client
        self._client_factory = client_factory  # reopen() builds a fresh client (new connection pool)
        self._counter = counter
        self._codec = codec
        self._ttl = cache_ttl_seconds
        self._max_sessions = cache_max_sessions
        self._clock = clock
        self._cache: OrderedDict[str, _Partition] = OrderedDict()
        self._lock = threading.Lock()
        self._table_ready = not create_table
        # The workflow this table belongs to: recorded on first use, another one refused (WorkflowMismatch).
        self._workflow = workflow
        self._workflow_settled = workflow is None
        if create_table or workflow is not None:
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
        cls,
        conn: str,
        table_name: str,
        *,
        codec: StateCodec[Any, L],
        client_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> TableOrderStore[L]:
        """Account-key/SAS connection string, or `UseDevelopmentStorage=true` (Azurite on 127.0.0.1:10002)."""
        counter = RequestCounter()

        def make() -> TableClient:
            return TableClient.from_connection_string(
                conn, table_name=table_name, **cls._client_options(counter, client_options or {})
            )

        return cls(make(), counter, codec=codec, client_factory=make, **kwargs)

    @classmethod
    def from_service_uri(
        cls,
        table_service_uri: str,
        table_name: str,
        credential: Any,
        *,
        codec: StateCodec[Any, L],
        client_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> TableOrderStore[L]:
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

        return cls(make(), counter, codec=codec, client_factory=make, **kwargs)

    @property
    def requests_made(self) -> int:
        """HTTP requests sent to storage so far (for round-trip benchmarks)."""
        return self._counter.count

    @property
    def table_name(self) -> str:
        return str(self._client.table_name)

    def _ensure_table(self) -> None:
        """The table exists and belongs to the running workflow (checked once per table, then free)."""
        if self._table_ready and self._workflow_settled:
            return
        if not self._table_ready:
            try:
                self._client.create_table()
            except ResourceExistsError:
                pass
            except AzureError as exc:
                raise StoreUnavailable(f"cannot create table {self._client.table_name}: {exc}") from exc
            self._table_ready = True
        if self._workflow is not None and not self._workflow_settled:
            self._settle_workflow(self._workflow)
            self._workflow_settled = True

    def _settle_workflow(self, running: WorkflowRecord, *, attempts: int = 2) -> None:
        """Record the running workflow in a table without a record (after checking it can read a ledger
        already there), or refuse a table another workflow wrote (WorkflowMismatch). The record is one
        entity outside every session's partition (escaped session ids never start with `~s`)."""
        key = {"PartitionKey": WORKFLOW_PARTITION, "RowKey": WORKFLOW_ROW}
        where = f"the Table store {self.table_name}"
        try:
            try:
                entity: Mapping[str, Any] | None = self._client.get_entity(WORKFLOW_PARTITION, WORKFLOW_ROW)
            except ResourceNotFoundError:
                entity = None
            recorded = None if entity is None else WorkflowRecord(str(entity["name"]), str(entity["version"]))
            if recorded is None:
                sample = next(
                    iter(self._client.query_entities(prefix_filter(LEDGER), results_per_page=1)), None
                )
                check_readable(
                    sample, lambda found: ledger_from_entity(found, "", self._codec), running, where
                )
            to_write = settle(recorded, running, where)
            if to_write is None:
                return
            row = key | {"name": to_write.name, "version": to_write.version, "recorded_at": datetime.now(UTC)}
            if recorded is None:
                self._client.create_entity(row)  # two first openers race: the loser reads the winner's record
            else:
                self._client.update_entity(row, mode=UpdateMode.REPLACE)
        except ResourceExistsError:
            if attempts <= 1:
                raise StoreUnavailable(f"{where}: its workflow record keeps changing") from None
            self._settle_workflow(running, attempts=attempts - 1)
        except AzureError as exc:
            raise self._translate(exc, "workflow record") from exc

    def recorded_workflow(self) -> WorkflowRecord | None:
        """The workflow the table records (None: none yet)."""
        try:
            entity = self._client.get_entity(WORKFLOW_PARTITION, WORKFLOW_ROW)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._translate(exc, "workflow record") from exc
        return WorkflowRecord(str(entity["name"]), str(entity["version"]))

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
        """One range query over the partition's ledger and `park|` rows (they sort next to each other)."""
        part = _Partition()
        for entity in self._query(load_filter(), {"pk": partition_key(session_id)}):
            row_key: str = entity["RowKey"]
            if row_key.startswith(LEDGER):
                ledger = ledger_from_entity(entity, _etag(entity), self._codec)
                part.ledgers[ledger.stream_key] = ledger
            elif row_key.startswith(PARK):
                parked = parked_from_entity(entity)
                part.parked[(parked.stream_key, parked.sequence)] = _cacheable(parked)
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
    def answers_from_cache(self, session_id: str, stream_key: str) -> bool:
        """Whether get_ledger would answer without a round trip (tracing skips a span for it)."""
        with self._lock:
            part = self._cache.get(session_id)
            return part is not None and self._clock() - part.touched <= self._ttl

    def get_ledger(self, session_id: str, stream_key: str) -> L | None:
        ledger: L | None = self._partition(session_id).ledgers.get(stream_key)
        return ledger.copy() if ledger is not None else None

    def get_parked(self, session_id: str, stream_key: str, sequence: int) -> ParkedMessage | None:
        parked = self._partition(session_id).parked
        key = (stream_key, sequence)
        if key not in parked:
            return None
        return parked[key] or self._read_parked(session_id, stream_key, sequence)

    def _read_parked(self, session_id: str, stream_key: str, sequence: int) -> ParkedMessage | None:
        """Point read of a parked message whose body the cache does not keep."""
        self._ensure_table()
        try:
            entity = self._client.get_entity(partition_key(session_id), park_key(stream_key, sequence))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._translate(exc, "read parked message") from exc
        return parked_from_entity(entity)

    def commit(self, changes: SessionChanges) -> None:
        if changes.is_empty:
            return
        sid = changes.session_id
        atomic: list[Operation] = []
        atomic_size = 0
        ledger = changes.ledger
        if ledger is not None:
            entity = ledger_entity(sid, ledger, self._codec)
            if ledger.version is None:
                atomic.append(("create", entity))
            else:
                options = {
                    "mode": UpdateMode.REPLACE,
                    "etag": ledger.version,
                    "match_condition": MatchConditions.IfNotModified,
                }
                atomic.append(("update", entity, options))
            atomic_size += payload_size(entity)
        for parked in changes.park:
            entity = parked_entity(sid, parked)
            atomic.append(("create", entity))
            atomic_size += payload_size(entity)
        for stream_key, sequence in changes.unpark:
            # unconditional delete; a missing row fails the batch with 404 -> ConcurrencyConflict
            entity = {"PartitionKey": partition_key(sid), "RowKey": park_key(stream_key, sequence)}
            atomic.append(("delete", entity))
            atomic_size += payload_size(entity)
        if changes.idempotency:  # all of them in one entity, committed with the ledger they prove
            records = list({(r.stream_key, r.sequence): r for r in changes.idempotency}.values())
            entity = idempotency_set_entity(sid, records)
            atomic.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
            atomic_size += payload_size(entity)
        if len(atomic) > MAX_BATCH_OPERATIONS or atomic_size > BATCH_PAYLOAD_BUDGET:
            raise StoreLimitExceeded(
                f"ledger+park+unpark of one message is {len(atomic)} operations / ~{atomic_size} bytes; "
                f"one Table transaction holds {MAX_BATCH_OPERATIONS} and {MAX_BATCH_PAYLOAD} bytes"
            )

        # idempotent upserts, deduplicated by RowKey (one entity may appear only once per batch)
        upserts: dict[str, dict[str, Any]] = {}
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
            size = payload_size(entity)
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

    # Limits of one entity-group transaction; instances may lower them (tests force multi-transaction
    # batches with small ones).
    batch_operations_limit = MAX_BATCH_OPERATIONS
    batch_payload_budget = BATCH_PAYLOAD_BUDGET

    def commit_batch(self, session_id: str, units: Sequence[SessionChanges]) -> None:
        """A batch of one session's messages in one entity-group transaction when it fits (each stream's
        ledger written once), otherwise in the fewest in-order transactions that each hold whole runs.

        Why a crash between two of them stays exactly-once: a run is the state a single-message commit
        could have left (ledger + its park/unpark rows together, checked by ETag), and a run's upserts
        (idempotency and quarantine rows: deterministic keys) go in its transaction or an earlier one. A
        redelivered batch then finds the committed runs' messages as duplicates and applies the rest.
        """
        sid = session_id
        pk = escape_key(sid)  # checked by partition_key() wherever a row of the session's partition is built
        sizes: dict[int, int] = {}

        def size_of(entity: dict[str, Any]) -> int:
            return payload_size(entity)

        def ledger_size(ledger: Ledger[Any]) -> int:
            key = id(ledger)
            if key not in sizes:
                sizes[key] = size_of(ledger_entity(sid, ledger, self._codec))
            return sizes[key]

        def parked_size(parked: ParkedMessage) -> int:
            key = id(parked)
            if key not in sizes:
                sizes[key] = size_of(parked_entity(sid, parked))
            return sizes[key]

        unpark_size = size_of({"PartitionKey": pk, "RowKey": park_key("x" * 16, 0)})

        def fits(run: SessionChanges) -> bool:  # alone in a transaction, with its idempotency set
            ops = (run.ledger is not None) + len(run.park) + len(run.unpark) + bool(run.idempotency)
            if ops > self.batch_operations_limit:
                return False
            size = (ledger_size(run.ledger) if run.ledger is not None else 0) + len(run.unpark) * unpark_size
            size += sum(idempotency_set_record_size(r) for r in run.idempotency)
            size += IDEM_SET_OVERHEAD if run.idempotency else 0
            return size + sum(parked_size(p) for p in run.park) <= self.batch_payload_budget

        runs = coalesce(units, fits)
        plan = _BatchPlan(
            self.batch_operations_limit,
            self.batch_payload_budget,
            lambda records: idempotency_set_entity(sid, records),
        )
        for run in runs:
            for q in run.quarantine:
                plan.upsert(quarantine_entity(sid, q))
            group: list[tuple[Any, str, int]] = []  # (item, row key, size)
            if run.ledger is not None:
                entity = ledger_entity(sid, run.ledger, self._codec)
                group.append((run, entity["RowKey"], size_of(entity)))
            for parked in run.park:
                entity = parked_entity(sid, parked)
                group.append((("create", entity), entity["RowKey"], size_of(entity)))
            for stream_key, sequence in run.unpark:
                entity = {"PartitionKey": partition_key(sid), "RowKey": park_key(stream_key, sequence)}
                group.append((("delete", entity), entity["RowKey"], size_of(entity)))
            if group or run.idempotency:
                plan.atomic(group, run.idempotency)
        transactions = plan.transactions()
        self.last_batch_transactions = len(transactions)

        written: dict[str, str | None] = {}
        try:
            self._ensure_table()
            for items in transactions:
                ops: list[Operation] = []
                ledger_at: list[tuple[int, SessionChanges]] = []
                for item in items:
                    if isinstance(item, SessionChanges):
                        chain_version(item, written)
                        ledger_at.append((len(ops), item))
                        ops.append(self._ledger_operation(sid, item))
                    else:
                        ops.append(item)
                results = self._submit(ops)
                for index, run in ledger_at:
                    assert run.ledger is not None
                    run.ledger.version = results[index]["etag"]
                    written[run.ledger.stream_key] = run.ledger.version
        except BaseException:
            self.evict(sid)  # our view of the partition may be stale or half-known: reload next time
            raise
        for run in runs:
            self._after_commit(sid, run)

    def _ledger_operation(self, sid: str, run: SessionChanges) -> Operation:
        ledger = run.ledger
        assert ledger is not None
        entity = ledger_entity(sid, ledger, self._codec)
        if ledger.version is None:
            return ("create", entity)
        options = {
            "mode": UpdateMode.REPLACE,
            "etag": ledger.version,
            "match_condition": MatchConditions.IfNotModified,
        }
        return ("update", entity, options)

    def _after_commit(self, sid: str, changes: SessionChanges) -> None:
        with self._lock:
            part = self._cache.get(sid)
            if part is None:
                return
            if changes.ledger is not None:
                part.ledgers[changes.ledger.stream_key] = changes.ledger.copy()
            for stream_key, sequence in changes.unpark:
                part.parked.pop((stream_key, sequence), None)
            for parked in changes.park:
                part.parked[(parked.stream_key, parked.sequence)] = _cacheable(parked)
            part.touched = self._clock()

    def _submit(self, ops: list[Operation]) -> list[Mapping[str, Any]]:
        try:
            return self._client.submit_transaction(ops)
        except AzureError as exc:
            raise self._translate(exc, "transaction") from exc

    def _translate(self, exc: AzureError, what: str) -> TransientStoreError | StoreRejected:
        """The store's error for a storage error: StoreRejected when the request can never be accepted
        (see REQUEST_REFUSED_CODES), ConcurrencyConflict, or StoreUnavailable (availability, throttling,
        configuration). StoreRejected's text is the status and code only (it becomes a quarantine detail)."""
        if refuses_request(exc):
            status = getattr(exc, "status_code", None)
            return StoreRejected(f"Table storage refused the {what} for good: {status} {_error_code(exc)}")
        if _is_conflict(exc):
            return ConcurrencyConflict(f"{what} on {self.table_name}: {getattr(exc, 'message', exc)}")
        if isinstance(exc, HttpResponseError) and _error_code(exc) == "TableNotFound":
            self._table_ready = False  # someone deleted the table: recreate on the next operation
            self._workflow_settled = self._workflow is None  # and record the workflow in the new one
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
    def list_ledgers(self, session_id: str | None = None) -> list[L]:
        """By session: one partition; all: a scan of the ledger rows."""
        query, params = prefix_filter(LEDGER), {}
        if session_id is not None:
            if not fits_partition_key(session_id):
                return []  # no Table key holds it, so no row of it was ever written
            query, params = f"PartitionKey eq @pk and {query}", {"pk": escape_key(session_id)}
        ledgers = [ledger_from_entity(e, _etag(e), self._codec) for e in self._query(query, params)]
        return sorted(ledgers, key=lambda x: (x.session_id, x.stream_key))

    def list_parked(self, session_id: str | None = None) -> list[ParkedMessage]:
        query, params = prefix_filter(PARK), {}
        if session_id is not None:
            if not fits_partition_key(session_id):
                return []
            query, params = f"PartitionKey eq @pk and {query}", {"pk": escape_key(session_id)}
        parked = [parked_from_entity(e) for e in self._query(query, params)]
        return sorted(parked, key=lambda p: (p.session_id, p.stream_key, p.sequence))

    def list_quarantine(self, *, include_replayed: bool = False) -> list[QuarantineRecord]:
        query = prefix_filter(QUARANTINE)
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
        """Scan for old idempotency sets (`idems|`, whose latest record is older) and `idem|` rows of earlier
        versions, keys and counts only; delete them in per-partition batches of 100; returns records."""
        by_partition: dict[str, list[tuple[str, int]]] = {}
        for prefix in (IDEM_SET, IDEM):
            query = f"{prefix_filter(prefix)} and recorded_at lt @cutoff"
            for e in self._query(query, {"cutoff": utc(older_than)}, ["PartitionKey", "RowKey", "count"]):
                by_partition.setdefault(e["PartitionKey"], []).append((e["RowKey"], _record_count(e)))
        deleted = 0
        for pk, rows in by_partition.items():
            for i in range(0, len(rows), MAX_BATCH_OPERATIONS):
                chunk = rows[i : i + MAX_BATCH_OPERATIONS]
                self._delete_rows(pk, [rk for rk, _ in chunk])
                deleted += sum(n for _, n in chunk)
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
        sets = sum(_record_count(e) for e in self._query(prefix_filter(IDEM_SET), select=["RowKey", "count"]))
        return sets + sum(1 for _ in self._query(prefix_filter(IDEM), select=["RowKey"]))

    def close(self) -> None:
        self.evict()
        self._client.close()

    def __enter__(self) -> TableOrderStore[L]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
