"""Issue 19, point 5, under the real local host and the emulator: the SQLite file deleted, or replaced by a
restored backup, while the host runs. Before: the open connection kept committing into the unlinked file and
completing the messages (2,863 of 2,863 steps lost; a restored 5-second-old copy lost 2,562).

Timeline: batch A is processed; a consistent backup is taken; batch B is processed; the file is deleted or
replaced by the backup (its -wal/-shm removed, as `rm orders.db*` / a restore would); batch C is sent. The
running host must complete none of C (it refuses: StoreUnavailable, the messages are abandoned) and log the
refusal; it is then restarted, as the ERROR line says, and drains C. Afterwards:
  - replaced: A and C are in the store exactly once, in order; B (completed between the backup and the
    restore) is what the restore itself loses;
  - deleted: C is in the new store exactly once; A and B went with the deleted file.
Nothing is dead-lettered. Figures: `pytest tests/reliability/test_sqlite_file_swap_host.py -s`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore
from tests.reliability import hostrun

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REFUSAL = "order store file deleted or replaced: refusing every message until restart"


def _settled_ids(log: Path) -> list[str]:
    """Message ids with an outcome the host completes the message on (applied, parked, duplicate, ...)."""
    ids = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            extra = json.loads(line).get("extra") or {}
        except ValueError:
            continue
        if extra.get("outcome") not in (None, "retry") and extra.get("message_id"):
            ids.append(extra["message_id"])
    return ids


def _wait(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_the_host_completes_nothing_into_a_file_that_is_no_longer_the_store(
    servicebus_emulator: Any, fresh_queue: Callable[..., str], tmp_path: Path, change: str
) -> None:
    conn = servicebus_emulator.connection_string
    queue = fresh_queue(
        requires_session=True, requires_duplicate_detection=True, max_delivery_count=10, lock_duration=10
    )
    db, backup, log = tmp_path / "orders.db", tmp_path / "backup.db", tmp_path / "host.log"
    settings = hostrun.write_settings(
        tmp_path / "local.settings.json",
        {
            "ServiceBusConnection": conn,
            "ORDERS_QUEUE_NAME": queue,
            "OrderStoreConnection": f"sqlite:///{db}",
            "ORDERS_STORE_RETRY_SECONDS": "2",
        },
    )
    cmd = hostrun.host_command(settings, until_idle=120)
    host = hostrun.start_host(cmd, log)
    try:
        batch_a = hostrun.publish(conn, queue, customers=3, orders=2, seed=51)
        _wait(lambda: len(_settled_ids(log)) >= len(batch_a), "batch A")
        with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)
        batch_b = hostrun.publish(conn, queue, customers=3, orders=2, seed=52)
        _wait(lambda: len(_settled_ids(log)) >= len(batch_a) + len(batch_b), "batch B")
        completed_before = len(_settled_ids(log))

        if change == "replaced":
            os.replace(backup, db)
        else:
            db.unlink()
        for companion in ("orders.db-wal", "orders.db-shm"):
            (tmp_path / companion).unlink(missing_ok=True)
        batch_c = hostrun.publish(conn, queue, customers=3, orders=2, seed=53)
        _wait(lambda: REFUSAL in log.read_text(errors="replace"), "the refusal")
        time.sleep(3.0)  # the running host keeps refusing: C's messages come and go, none completes
        completed_while_refusing = len(_settled_ids(log)) - completed_before
    finally:
        hostrun.stop(host)
    assert completed_while_refusing <= 1, "messages were completed into a file that is no longer the store"
    if change == "deleted":
        assert not db.exists(), "the refusing host created a new file at the path"

    started = time.monotonic()
    codes = hostrun.drain(
        hostrun.host_command(settings, until_idle=6),
        log,
        lambda: servicebus_emulator.active_count(queue),
        deadline=time.monotonic() + 180,
    )
    recovered_s = time.monotonic() - started
    left, dead = servicebus_emulator.active_count(queue), servicebus_emulator.dead_letter_count(queue)
    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        kept = batch_a + batch_c if change == "replaced" else batch_c
        problems = hostrun.store_problems(store, kept)
        in_store = {(x.customer_id, x.order_id) for x in store.list_ledgers()}
        b_orders = {(m.session_id, m.order_id) for m in batch_b}
        lost = len([m for m in batch_a + batch_b if (m.session_id, m.order_id) not in in_store])
    finally:
        store.close()
    summary = hostrun.summarise_log(log)
    print(
        f"{change}: sent {len(batch_a) + len(batch_b) + len(batch_c)} (A {len(batch_a)}, B {len(batch_b)}, "
        f"C {len(batch_c)}); completed by the refusing host after the change {completed_while_refusing}; "
        f"C lost {len(problems)} orders; A+B steps gone with the {change} file {lost}; left {left}; "
        f"dead-lettered {dead}; recovered {recovered_s:.0f} s after the restart; host exits {codes}; "
        f"highest delivery count {summary.max_delivery_count}"
    )
    assert left == 0 and dead == 0
    assert problems == [], problems
    assert b_orders.isdisjoint(in_store), "batch B cannot be in a copy taken before it"
