"""Issue 9, point 3: store outages under the real local host and the emulator. Each one must cost no
message: 0 dead-lettered, 0 lost, every order exactly as published once the store is back.

- SQLite read-only when the host starts, writable again 8 s later (less than the retry budget, so not
  one delivery is spent: the invocations ride it out);
- SQLite locked by another process (an open exclusive transaction) for 60 s;
- Azurite (the Table store) stopped for 60 s mid-run.

The three run concurrently (independent queues, stores and hosts) to keep CI short. Figures are printed
(`pytest tests/reliability/test_store_outage_host.py -s`) and quoted in docs/reliability.md.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.azurite import unique_table_name
from shared.order_workflow import ORDERS
from shared.store.base import OrderStore
from shared.store.sqlite import SqliteOrderStore
from shared.store.table import TableOrderStore
from tests.reliability import hostrun

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.timeout(400)]

OUTAGE_S = 60.0
READ_ONLY_S = 8.0
IDLE_S = 6.0


class Scenario:
    def __init__(
        self,
        name: str,
        emulator: Any,
        fresh_queue: Callable[..., str],
        workdir: Path,
        cardinality: str = "one",
    ) -> None:
        self.name, self.emulator, self.workdir = name, emulator, workdir
        self.cardinality = cardinality
        workdir.mkdir()
        self.queue = fresh_queue(
            requires_session=True, requires_duplicate_detection=True, max_delivery_count=10, lock_duration=10
        )
        self.log = workdir / "host.log"
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.summary: hostrun.LogSummary | None = None
        self.problems: list[str] = []
        self.left = self.dead = -1
        self.codes: list[int] = []

    def publish(self, seed: int) -> None:
        self.published = hostrun.publish(
            self.emulator.connection_string, self.queue, customers=3, orders=2, seed=seed
        )

    def settings(self, store_connection: str, **extra: str) -> Path:
        values = {
            "ServiceBusConnection": self.emulator.connection_string,
            "ORDERS_QUEUE_NAME": self.queue,
            "OrderStoreConnection": store_connection,
            "ORDERS_TRIGGER_CARDINALITY": self.cardinality,
            **extra,
        }
        return hostrun.write_settings(self.workdir / "local.settings.json", values)

    def finish(
        self, cmd: list[str], store: OrderStore, first: subprocess.Popen[bytes] | None, started: float
    ) -> None:
        self.codes = hostrun.drain(
            cmd,
            self.log,
            lambda: self.emulator.active_count(self.queue),
            deadline=time.monotonic() + 200,
            first=first,
        )
        self.left, self.dead = (
            self.emulator.active_count(self.queue),
            self.emulator.dead_letter_count(self.queue),
        )
        self.problems = hostrun.store_problems(store, self.published)
        self.summary = s = hostrun.summarise_log(self.log)
        self.lines.append(
            f"{self.name}: {len(self.published)} messages; run {time.monotonic() - started:.0f} s;"
            f" left in queue {self.left}; dead-lettered {self.dead}; orders wrong {len(self.problems)};"
            f" outcomes {dict(sorted(s.outcomes.items()))}; highest delivery count {s.max_delivery_count};"
            f" bursts recovered in-invocation {s.recovered_lines};"
            f" bursts given back to the host {s.retry_lines};"
            f" host exit codes {self.codes}"
        )


def _read_only_at_start(sc: Scenario) -> None:
    db = sc.workdir / "orders.db"
    SqliteOrderStore(db, codec=ORDERS).close()
    for extra in sc.workdir.glob("orders.db-*"):
        extra.unlink()
    db.chmod(0o444)
    sc.publish(seed=11)
    cmd = hostrun.host_command(sc.settings(f"sqlite:///{db}"), until_idle=IDLE_S, lock_free=True)
    started = time.monotonic()
    proc = hostrun.start_host(cmd, sc.log)
    time.sleep(READ_ONLY_S)
    db.chmod(0o644)
    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        sc.finish(cmd, store, proc, started)
    finally:
        store.close()


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def _locked(sc: Scenario) -> None:
    db = sc.workdir / "orders.db"
    SqliteOrderStore(db, codec=ORDERS).close()
    sc.publish(seed=12)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(OUTAGE_S)], stdout=subprocess.PIPE)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == b"locked"
        cmd = hostrun.host_command(sc.settings(f"sqlite:///{db}"), until_idle=IDLE_S)
        started = time.monotonic()
        proc = hostrun.start_host(cmd, sc.log)
        store = SqliteOrderStore(db, codec=ORDERS)
        try:
            sc.finish(cmd, store, proc, started)
        finally:
            store.close()
    finally:
        locker.kill()
        locker.wait()


def _azurite_down(sc: Scenario, azurite: Any) -> None:
    table = unique_table_name("outage")
    sc.publish(seed=13)
    cmd = hostrun.host_command(
        sc.settings(azurite.connection_string, ORDERS_TABLE_NAME=table), until_idle=IDLE_S
    )
    started = time.monotonic()
    proc = hostrun.start_host(cmd, sc.log)
    while hostrun.summarise_log(sc.log).outcomes["applied"] < 3 and time.monotonic() - started < 60:
        time.sleep(0.1)
    azurite.stop()
    try:
        time.sleep(OUTAGE_S)
    finally:
        azurite.start()
    store = TableOrderStore.from_connection_string(azurite.connection_string, table, codec=ORDERS)
    try:
        sc.finish(cmd, store, proc, started)
    finally:
        store.close()


@pytest.mark.parametrize("cardinality", ["one", "many"])
def test_store_outages_cost_no_message(
    servicebus_emulator: Any, fresh_queue: Callable[..., str], azurite: Any, tmp_path: Path, cardinality: str
) -> None:
    scenarios = {
        "sqlite read-only at start": (_read_only_at_start, ()),
        "sqlite locked 60 s": (_locked, ()),
        "azurite stopped 60 s": (_azurite_down, (azurite,)),
    }
    runs: list[tuple[Scenario, threading.Thread]] = []
    for i, (name, (body, args)) in enumerate(scenarios.items()):
        sc = Scenario(
            f"{name} ({cardinality})", servicebus_emulator, fresh_queue, tmp_path / f"s{i}", cardinality
        )

        def run(sc: Scenario = sc, body: Any = body, args: tuple[Any, ...] = args) -> None:
            try:
                body(sc, *args)
            except BaseException as exc:
                sc.error = exc

        thread = threading.Thread(target=run, name=name)
        thread.start()
        runs.append((sc, thread))
    for _, thread in runs:
        thread.join(timeout=380)
    for sc, _ in runs:
        print("\n".join(sc.lines) or f"{sc.name}: did not finish ({sc.error!r})")
    for sc, _ in runs:
        if sc.error is not None:
            raise sc.error
        assert sc.summary is not None
        assert (sc.left, sc.dead) == (0, 0), sc.name
        assert sc.problems == [], sc.name
        assert sc.summary.retry_lines + sc.summary.recovered_lines > 0, (
            f"{sc.name}: no message met the outage"
        )
    read_only = runs[0][0].summary
    assert read_only is not None and read_only.max_delivery_count == 1  # ridden out inside the invocation
