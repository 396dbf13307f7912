"""Issue 9, point 2: a session moves between two hosts (lock loss) and one of them holds a stale cache.
Whatever raises the ConcurrencyConflict - the commit, or the parked row that is gone before the commit
(`_take_parked`; the Table store's point read of a large parked body) - the session's cached state is
evicted, so the retry re-reads and the message settles instead of looping to the dead-letter queue.

Two real stores on one SQLite file / one Azurite table stand for the two hosts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.engine.outcomes import Outcome
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store.base import ConcurrencyConflict, OrderStore
from shared.store.sqlite import SqliteOrderStore
from shared.store.table import TableOrderStore
from tests.support.builders import DEFAULT_DATA, step

BIG_NOTE = "n" * (70 * 1024)  # a parked body the caches do not keep (they keep up to 64 KiB)


def _service(store: OrderStore) -> OrderService:
    return OrderService(AppSettings(store_retry_seconds=5), store, sleep=lambda _s: None)


def _stale_host_meets_a_vanished_parked_row(host_a: OrderStore, host_b: OrderStore) -> None:
    a, b = _service(host_a), _service(host_b)
    big = {**DEFAULT_DATA["inventory.reserved"], "note": BIG_NOTE}
    assert a.handle(step("order.placed", 1)).outcome is Outcome.APPLIED
    # B holds the session for a while: parks 3 (large), and A then reads that state (a duplicate of 1)
    assert b.handle(step("inventory.reserved", 3, data=big)).outcome is Outcome.PARKED
    assert a.handle(step("order.placed", 1)).outcome is Outcome.DUPLICATE  # A's cache: 3 is parked
    # B gets 2, applies it and releases 3: the parked row is gone
    assert b.handle(step("payment.authorized", 2)).applied_sequences == (2, 3)
    # A's lock had lapsed mid-way through 2: the broker redelivers it to A, whose cache is stale.
    redelivered = step("payment.authorized", 2)
    stale = OrderStepProcessor(host_a)
    for _ in range(2):  # the bug: without eviction every delivery fails the same way
        with pytest.raises(ConcurrencyConflict, match="parked message ord-1/3 is missing"):
            stale.process(redelivered)
    result = a.handle(redelivered)  # the service evicts the session and retries: it settles
    assert result.outcome is Outcome.DUPLICATE
    ledger = host_b.get_ledger("cust-1", "ord-1")
    assert ledger is not None and [s.sequence for s in ledger.applied] == [1, 2, 3]
    assert host_a.list_parked() == []


def test_sqlite_stale_cache_heals(tmp_path: Path) -> None:
    host_a, host_b = (
        SqliteOrderStore(tmp_path / "o.db", codec=ORDERS),
        SqliteOrderStore(tmp_path / "o.db", codec=ORDERS),
    )
    try:
        _stale_host_meets_a_vanished_parked_row(host_a, host_b)
    finally:
        host_a.close()
        host_b.close()


@pytest.mark.azurite
def test_table_stale_cache_heals(azurite: Any, azurite_table_name: str) -> None:
    def open_() -> TableOrderStore:
        return TableOrderStore.from_connection_string(
            azurite.connection_string, azurite_table_name, codec=ORDERS
        )

    host_a, host_b = open_(), open_()
    try:
        _stale_host_meets_a_vanished_parked_row(host_a, host_b)
    finally:
        host_a.close()
        host_b.close()
