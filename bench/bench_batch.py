"""Batch mode vs single-message mode, in-process: per-session throughput and store round trips per message.

    python -m bench.bench_batch                          # SQLite and Azurite, batch sizes 1 8 32 100
    python -m bench.bench_batch --stores sqlite          # no Azurite (no npm needed)
    python -m bench.bench_batch --hot 6000 --sizes 1,32  # a bigger hot session, two sizes
    python -m bench.bench_batch --stores sqlite --e2e    # + both modes through the emulator and local host

Two workloads, each message through OrderService (the app's code path, JSON log lines formatted and
discarded), sessions one after another as one host instance's session receiver takes them:
- hot: ONE session (customer) with thousands of messages (orders of 5 steps, in order);
- small: 200 sessions x 5 messages (one order each).
Batch size 1 is the single-message path (`OrderService.handle`, one commit per message); sizes > 1 are
`handle_batch` over consecutive messages of one session (one commit per batch), what the trigger's
cardinality=many hands the function (host.json maxMessageBatchSize). Ratios are to size 1 in the same run.

Each figure is the fastest of --repeat runs (other processes share the machine), after one warm-up run.
Round trips: Azurite counts the HTTP requests the Table SDK sent (retries included); SQLite counts store
transactions (commit / commit_batch calls: SQLite has no network round trip, a transaction is its cost
unit). Every run is checked: all orders end exactly as published, or the bench exits 1. Figures only.
The host's one-session-at-a-time batch receive (and its sessionIdleTimeout wait per session) is not in
these in-process figures; `--e2e` measures both modes end to end (emulator + local host, 40 small sessions
by default: each costs at least one sessionIdleTimeout in batch mode).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import json_logs_discarded, machine, print_table
from orders_cli.traffic import PublishPlan, expected_final_state, generate_messages
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS
from shared.service import OrderService
from shared.settings import AppSettings

SIZES = (1, 8, 32, 100)


@dataclass(frozen=True)
class Workload:
    name: str
    sessions: list[list[SessionEnvelope]]  # each session's messages in broker order
    expected: dict[tuple[str, str], list[str]]

    @property
    def messages(self) -> int:
        return sum(len(s) for s in self.sessions)


def workload(name: str, customers: int, orders_per_customer: int) -> Workload:
    """`customers` sessions of `orders_per_customer` 5-step orders, in the publisher's send order."""
    plan = PublishPlan(customers=customers, orders_per_customer=orders_per_customer, seed=17, id_prefix=name)
    published = generate_messages(plan)
    now = datetime.now(UTC)
    by_session: dict[str, list[SessionEnvelope]] = {}
    for n, m in enumerate(published, start=1):
        by_session.setdefault(m.session_id, []).append(
            SessionEnvelope(m.body, m.session_id, m.message_id, 1, n, now, m.content_type)
        )
    return Workload(name, list(by_session.values()), expected_final_state(published))


@dataclass
class Run:
    store: str
    workload: str
    size: int
    messages: int
    seconds: float
    round_trips: int

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else float("nan")

    @property
    def trips_per_message(self) -> float:
        return self.round_trips / self.messages


class _CountingCommits:
    """Counts store transactions (commit / commit_batch) of a store it passes everything else to."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.transactions = 0

    def commit(self, changes: Any) -> None:
        self.transactions += 1
        self._inner.commit(changes)

    def commit_batch(self, session_id: str, units: Any) -> None:
        self.transactions += 1
        self._inner.commit_batch(session_id, units)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def run_once(store: Any, trips: Callable[[], int], kind: str, w: Workload, size: int) -> Run:
    service = OrderService(AppSettings(store_retry_seconds=0), store)
    before = trips()
    started = time.perf_counter()
    with json_logs_discarded("orders.processing"):
        for session in w.sessions:
            if size == 1:
                for envelope in session:
                    service.handle(envelope)
            else:
                for i in range(0, len(session), size):
                    service.handle_batch(session[i : i + size])
    elapsed = time.perf_counter() - started
    run = Run(kind, w.name, size, w.messages, elapsed, trips() - before)
    wrong = [
        key
        for key, ledger in (((x.customer_id, x.order_id), x) for x in store.list_ledgers())
        if [a.step for a in ledger.applied] != w.expected.get(key)
    ]
    if wrong or len(store.list_ledgers()) != len(w.expected):
        raise SystemExit(f"correctness: {kind}/{w.name}/batch {size}: {len(wrong)} orders not as published")
    return run


@contextmanager
def sqlite_stores() -> Iterator[Callable[[], tuple[Any, Callable[[], int]]]]:
    from shared.store.sqlite import SqliteOrderStore

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        opened: list[Any] = []

        def fresh() -> tuple[Any, Callable[[], int]]:
            store = _CountingCommits(SqliteOrderStore(Path(tmp) / f"orders-{len(opened)}.db", codec=ORDERS))
            opened.append(store)
            return store, lambda: store.transactions

        try:
            yield fresh
        finally:
            for store in opened:
                store.close()


@contextmanager
def azurite_stores() -> Iterator[Callable[[], tuple[Any, Callable[[], int]]]]:
    from devstack.azurite import AzuriteTable, ensure_azurite_installed, unique_table_name
    from shared.store.table import TableOrderStore

    with AzuriteTable(ensure_azurite_installed()) as azurite:
        opened: list[Any] = []

        def fresh() -> tuple[Any, Callable[[], int]]:
            store = TableOrderStore.from_connection_string(
                azurite.connection_string, unique_table_name("batch"), codec=ORDERS
            )
            opened.append(store)
            return store, lambda: store.requests_made

        try:
            yield fresh
        finally:
            for store in opened:
                store.close()


def run_e2e(hot: int, small: int) -> list[tuple[object, ...]]:
    """Both workloads through the emulator and `python -m devstack.host` in each trigger mode (SQLite)."""
    from bench.bench_e2e import run_host
    from devstack.emulator.config import QueueProperties
    from devstack.emulator.server import EmulatorServer
    from orders_cli.sender import send_messages
    from shared.store.sqlite import SqliteOrderStore

    server = EmulatorServer(None, host="127.0.0.1", port=0)
    server.start()
    rows: list[tuple[object, ...]] = []
    props = QueueProperties(
        requires_session=True, requires_duplicate_detection=True, max_delivery_count=10, lock_duration=30
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-batch-e2e-") as tmp:
            for name, customers, orders in (("hot", 1, max(1, hot // 5)), ("small", small, 1)):
                published = generate_messages(
                    PublishPlan(customers=customers, orders_per_customer=orders, seed=23, id_prefix=name)
                )
                for mode in ("one", "many"):
                    queue = f"batch-{name}-{mode}"
                    server.create_queue(queue, props)
                    conn = server.connection_string
                    send_messages(
                        published, connection_string=conn, namespace=None, queue=queue, progress=False
                    )
                    started = time.perf_counter()
                    host = run_host(conn, queue, Path(tmp), {"ORDERS_TRIGGER_CARDINALITY": mode})
                    wall = time.perf_counter() - started
                    store = SqliteOrderStore(host["db"], codec=ORDERS)
                    try:
                        got = {
                            (x.customer_id, x.order_id): [a.step for a in x.applied]
                            for x in store.list_ledgers()
                        }
                    finally:
                        store.close()
                    ok = got == expected_final_state(published) and server.active_count(queue) == 0
                    rate = host["messages"] / host["seconds"]
                    rows.append(
                        (
                            name,
                            customers,
                            len(published),
                            mode,
                            round(rate),
                            round(wall, 1),
                            "yes" if ok else "NO",
                        )
                    )
                    print(f"  e2e {name:6} {mode:4}: {rate:,.0f} msg/s, {wall:.1f} s wall", flush=True)
                    server.delete_queue(queue)
    finally:
        server.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,azurite", help="comma-separated: sqlite, azurite")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="batch sizes; 1 = single path")
    parser.add_argument("--hot", type=int, default=3000, help="messages of the one hot session")
    parser.add_argument("--small", type=int, default=200, help="small sessions of 5 messages")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the fastest is kept")
    parser.add_argument(
        "--e2e", action="store_true", help="also end to end through the emulator + local host, both modes"
    )
    parser.add_argument("--e2e-small", type=int, default=40, help="small sessions for the e2e run")
    args = parser.parse_args(argv)
    sizes = sorted({int(x) for x in args.sizes.split(",")} | {1})
    workloads = [
        workload("hot", customers=1, orders_per_customer=max(1, args.hot // 5)),
        workload("small", customers=args.small, orders_per_customer=1),
    ]
    print(f"machine: {machine()}")
    print(
        f"command: python -m bench.bench_batch --stores {args.stores} --sizes {','.join(map(str, sizes))}"
        f" --hot {args.hot} --small {args.small} --repeat {args.repeat}"
    )
    print(f"workloads: hot = 1 session x {workloads[0].messages} messages; small = {args.small} sessions x 5")
    runs: list[Run] = []
    factories = {"sqlite": sqlite_stores, "azurite": azurite_stores}
    for kind in [s.strip() for s in args.stores.split(",") if s.strip()]:
        with factories[kind]() as fresh:
            for w in workloads:
                for size in sizes:
                    store, trips = fresh()
                    runs.append(run_once(store, trips, kind, w, size))
                    print(
                        f"  {kind:8} {w.name:6} batch {size:>3}: {runs[-1].per_second:,.0f} msg/s", flush=True
                    )
    base = {(r.store, r.workload): r for r in runs if r.size == 1}
    trip_unit = {"sqlite": "transactions", "azurite": "HTTP requests"}
    rows = [
        (
            r.store,
            r.workload,
            r.size,
            r.messages,
            round(r.per_second),
            round(r.per_second / base[(r.store, r.workload)].per_second, 2),
            round(r.trips_per_message, 3),
            trip_unit[r.store],
        )
        for r in runs
    ]
    print()
    print_table(rows, ["store", "workload", "batch", "msgs", "msg/s", "ratio to 1", "trips/msg", "trips are"])
    print("correctness: every run ended with every order exactly as published")
    for r in runs:
        if r.workload == "hot" and r.size == 32:
            ratio = r.per_second / base[(r.store, "hot")].per_second
            print(f"hot session at batch 32 on {r.store}: {ratio:.1f}x the single-message path")
    if args.e2e:
        print()
        print(
            "end to end (emulator in this process -> `python -m devstack.host` -> SQLite; sessionIdleTimeout"
            " 0.5 s, maxConcurrentSessions 16, maxMessageBatchSize 32; msg/s from first to last message):"
        )
        e2e_rows = run_e2e(args.hot, args.e2e_small)
        print_table(e2e_rows, ["workload", "sessions", "msgs", "mode", "msg/s", "wall s", "correct"])
        if any(r[-1] != "yes" for r in e2e_rows):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
