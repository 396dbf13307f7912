"""The one interface every order store implements, and the errors that mean "try again later"."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from shared.records import OrderLedger, ParkedMessage, QuarantineRecord, SessionChanges


class TransientStoreError(Exception):
    """The store could not answer now; the message must be abandoned and redelivered."""


class ConcurrencyConflict(TransientStoreError):
    """Someone else changed what we read; nothing of ours was written."""


class StoreUnavailable(TransientStoreError):
    """The store is unreachable or failed; nothing of ours was written."""


@runtime_checkable
class OrderStore(Protocol):
    # --- the per-message path ---
    def get_ledger(self, session_id: str, order_id: str) -> OrderLedger | None:
        """The order's ledger, or None if the order was never seen. Callers may mutate the result."""
        ...

    def get_parked(self, session_id: str, order_id: str, sequence: int) -> ParkedMessage | None: ...

    def commit(self, changes: SessionChanges) -> None:
        """Write all changes of one message atomically (see SessionChanges), or raise TransientStoreError.

        The ledger is written only if its `version` still matches the stored one (None: must not exist).
        On success the store sets `changes.ledger.version` to the new token.
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
    def list_ledgers(self, customer_id: str | None = None) -> list[OrderLedger]: ...

    def list_parked(self, customer_id: str | None = None) -> list[ParkedMessage]: ...

    def list_quarantine(self, *, include_replayed: bool = False) -> list[QuarantineRecord]: ...

    def get_quarantine(self, quarantine_id: str) -> QuarantineRecord | None: ...

    def mark_replayed(self, quarantine_id: str, at: datetime) -> None: ...

    def purge_idempotency_records(self, older_than: datetime) -> int:
        """Delete idempotency records recorded before `older_than`; returns how many."""
        ...

    def count_idempotency_records(self) -> int: ...

    def close(self) -> None: ...
