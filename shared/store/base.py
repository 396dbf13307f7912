"""The one interface every store implements, and its errors: "try again later" (transient) or "never".

Stores keep ledgers, parked and quarantined messages and idempotency records per (session, stream key);
a ledger's state is the workflow's and reaches the stores as an opaque document (see `StateCodec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from shared.engine.ledger import Ledger
from shared.engine.records import ParkedMessage, QuarantineRecord, SessionChanges

# Parked messages up to this size stay in a store's cache (released soon, usually by this process);
# larger bodies are read back from storage when released, so the cache is bounded by bytes.
PARKED_CACHE_MAX_BODY = 64 * 1024


class TransientStoreError(Exception):
    """The store could not answer now; the message must be abandoned and redelivered."""


class ConcurrencyConflict(TransientStoreError):
    """Someone else changed what we read; nothing of ours was written."""


class StoreUnavailable(TransientStoreError):
    """The store is unreachable or failed; nothing of ours was written."""


class StoreRejected(ValueError):
    """The store can never accept this request: a key or entity too large, a value it cannot hold, a
    limit of one transaction. It is about the message, not the store's health, so it is NOT transient:
    the processor quarantines the message as `store-limit` with this text as the detail. The text names
    the limit and sizes only (never ids or payload), since it lands in logs and quarantine records."""


L = TypeVar("L", bound=Ledger[Any])  # the workflow's ledger type


@runtime_checkable
class OrderStore(Protocol[L]):
    # --- the per-message path ---
    def get_ledger(self, session_id: str, stream_key: str) -> L | None:
        """The stream's ledger, or None if the stream was never seen. Callers may mutate the result."""
        ...

    def get_parked(self, session_id: str, stream_key: str, sequence: int) -> ParkedMessage | None: ...

    def commit(self, changes: SessionChanges) -> None:
        """Write all changes of one message atomically (see SessionChanges), or raise TransientStoreError.

        The ledger is written only if its `version` still matches the stored one (None: must not exist).
        On success the store sets `changes.ledger.version` to the new token.
        """
        ...

    def commit_batch(self, session_id: str, units: Sequence[SessionChanges]) -> None:
        """Write the changes of a batch of one session's messages (`units`, in message order) in one
        transaction, or raise TransientStoreError. A store whose transactions are size-limited may use
        several, in order, each holding whole runs (see `shared.engine.changes.coalesce`), so that a crash
        between them leaves what single-message commits would have left: redelivery stays exactly-once.
        """
        ...

    # --- recovery (shared/service.py calls these between retries of a failed message) ---
    def evict(self, session_id: str | None = None) -> None:
        """Forget what is cached for one session (or all): the next read goes to the store. Called after
        any TransientStoreError, so a stale cache can never turn a conflict into a redelivery loop."""
        ...

    def reopen(self) -> None:
        """Drop the connection/client and open a fresh one on next use (a file that was read-only, a
        storage endpoint that restarted). Raises StoreUnavailable if that cannot happen now."""
        ...

    # --- operator reads and maintenance ---
    def list_ledgers(self, session_id: str | None = None) -> list[L]: ...

    def list_parked(self, session_id: str | None = None) -> list[ParkedMessage]: ...

    def list_quarantine(self, *, include_replayed: bool = False) -> list[QuarantineRecord]: ...

    def get_quarantine(self, quarantine_id: str) -> QuarantineRecord | None: ...

    def mark_replayed(self, quarantine_id: str, at: datetime) -> None: ...

    def purge_idempotency_records(self, older_than: datetime) -> int:
        """Delete idempotency records recorded before `older_than`; returns how many."""
        ...

    def count_idempotency_records(self) -> int: ...

    def close(self) -> None: ...
