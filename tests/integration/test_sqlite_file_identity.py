"""The SQLite file deleted or replaced under a running store (issue 19, point 5): nothing completes into a
file that is no longer the store. The commit that raced the change raises StoreUnavailable (transient: the
host abandons the message, the broker redelivers it), every later call refuses the same way, no file is
ever created at the path by this process, and a restarted process opens what is there then."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from shared.engine.outcomes import Outcome
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store.base import StoreUnavailable, TransientStoreError
from shared.store.sqlite import SqliteOrderStore
from tests.support.builders import happy_path


def _store(path: Path) -> SqliteOrderStore:
    return SqliteOrderStore(path, codec=ORDERS, checkpoint_interval_s=0.05)  # checkpointer busy on purpose


def _applied(path: Path) -> int:
    """Applied steps in the file at `path`, read by a fresh connection (another process, in effect)."""
    with sqlite3.connect(path) as db:
        return sum(len(json.loads(doc)["applied"]) for (doc,) in db.execute("SELECT doc FROM ledgers"))


@pytest.mark.parametrize("companions", [True, False], ids=["rm orders.db*", "rm orders.db"])
def test_a_deleted_file_fences_the_store_and_is_never_recreated(tmp_path: Path, companions: bool) -> None:
    path = tmp_path / "orders.db"
    store = _store(path)
    processor = OrderStepProcessor(store)
    steps = happy_path("cust-1", "ord-1")
    assert processor.process(steps[0]).outcome is Outcome.APPLIED

    for victim in [
        path,
        *([path.with_name("orders.db-wal"), path.with_name("orders.db-shm")] if companions else []),
    ]:
        victim.unlink(missing_ok=True)

    with pytest.raises(StoreUnavailable, match="was deleted while this process had it open"):
        processor.process(steps[1])  # it committed into the unlinked inode: must not be completed
    for _ in range(3):  # what the service does between retries, and later messages
        with pytest.raises(StoreUnavailable, match="restart it"):
            store.reopen()
        with pytest.raises(TransientStoreError):
            processor.process(steps[1])
        with pytest.raises(StoreUnavailable):
            store.list_ledgers()
    time.sleep(0.3)  # several checkpoint intervals: the checkpointer must not create a file either
    assert not path.exists(), "nothing may create an empty store where the deleted one was"
    store.close()

    restarted = _store(path)  # the operator's restart: a new, empty store, knowingly
    assert restarted.list_ledgers() == []
    restarted.close()


def test_a_replaced_file_fences_the_store_and_is_left_untouched(tmp_path: Path) -> None:
    """A backup restored under the running store (`mv backup orders.db`, its old -wal/-shm removed): the
    running store refuses from its next commit on and writes nothing into the restored file or its -wal
    (nor checkpoints/deletes them when it lets go of the old file). A restart opens the copy; the steps
    completed after the backup are what the restore itself loses: their successors wait parked, visible,
    until the missing step is replayed."""
    path = tmp_path / "orders.db"
    backup = tmp_path / "backup.db"
    store = _store(path)
    processor = OrderStepProcessor(store)
    steps = happy_path("cust-1", "ord-1")
    assert processor.process(steps[0]).outcome is Outcome.APPLIED
    with sqlite3.connect(path) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)  # a consistent copy holding step 1
    assert processor.process(steps[1]).outcome is Outcome.APPLIED  # step 2: only in the running file

    os.replace(backup, path)
    for companion in ("orders.db-wal", "orders.db-shm"):
        path.with_name(companion).unlink(missing_ok=True)
    with sqlite3.connect(path) as db:  # someone reads the restored copy (its own -wal/-shm appear)
        db.execute("PRAGMA journal_mode = WAL")
        assert db.execute("SELECT COUNT(*) FROM ledgers").fetchone() == (1,)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("orders.db")}

    with pytest.raises(StoreUnavailable, match="was replaced by another file"):
        processor.process(steps[2])
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            store.reopen()
        with pytest.raises(StoreUnavailable):
            processor.process(steps[2])
    time.sleep(0.3)
    store.close()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("orders.db")}
    assert after == files, "the fenced store touched the restored file or its -wal/-shm"
    assert _applied(path) == 1

    restarted = _store(path)  # restart: the restored copy is the store now
    again = OrderStepProcessor(restarted)
    assert again.process(steps[2]).outcome is Outcome.PARKED  # redelivered; waits for step 2
    assert again.process(steps[1]).outcome is Outcome.APPLIED  # step 2 replayed: releases step 3
    assert [len(ledger.applied) for ledger in restarted.list_ledgers()] == [3]
    restarted.close()


def test_an_unchanged_file_keeps_working_across_reopen(tmp_path: Path) -> None:
    """The check is about identity, not about the file changing: reopen after an outage is fine."""
    path = tmp_path / "orders.db"
    store = _store(path)
    processor = OrderStepProcessor(store)
    steps = happy_path("cust-1", "ord-1")
    assert processor.process(steps[0]).outcome is Outcome.APPLIED
    store.reopen()
    assert processor.process(steps[1]).outcome is Outcome.APPLIED
    store.close()
    assert _applied(path) == 2


def test_the_service_gives_the_message_back_to_the_host(tmp_path: Path) -> None:
    """Through OrderService, as the function calls it: the invocation raises (the host abandons the
    message, so it is redelivered), after retrying within its budget without ever reopening the file."""
    path = tmp_path / "orders.db"
    store = _store(path)
    service = OrderService(AppSettings(store_retry_seconds=0.5), store)
    steps = happy_path("cust-1", "ord-1")
    assert service.handle(steps[0]).outcome is Outcome.APPLIED
    path.unlink()
    with pytest.raises(StoreUnavailable, match="was deleted"):
        service.handle(steps[1])
    assert not path.exists()
    store.close()
