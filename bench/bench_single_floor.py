"""The single-message path against its floor, in one run (issue 12's last point, measured, not improved).

    python -m bench.bench_single_floor [--messages 3000]

Floor, per message: `json.loads(body)`, the recipe's log line (the app's JsonFormatter, formatted and
discarded) and one bare SQLite WAL transaction (synchronous=NORMAL, as shipped) writing one idempotency row
and one ~1 KB document. Ours: `OrderService.handle` over the SQLite store (parse, decide, one commit, the
full log line, and the OpenTelemetry span unless OTEL_SDK_DISABLED=true). Same ordered messages (one order of
5 steps after another, one session), fastest of 3 runs each. Figures only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.bench_batch import workload
from bench.common import json_logs_discarded, machine
from shared.order_workflow import ORDERS
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store.sqlite import SqliteOrderStore

log = logging.getLogger("orders.processing")


def floor(messages: list, db: Path) -> float:
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE idem (k TEXT PRIMARY KEY, h TEXT, m TEXT, at TEXT)")
    conn.execute("CREATE TABLE docs (k TEXT PRIMARY KEY, doc TEXT)")
    document = json.dumps({"padding": "x" * 1000})
    started = time.perf_counter()
    with json_logs_discarded("orders.processing"):
        for n, envelope in enumerate(messages):
            doc = json.loads(envelope.body)
            log.info(
                "order step received",
                extra={
                    "session_id": envelope.session_id,
                    "message_id": envelope.message_id,
                    "step": doc["step"],
                },
            )
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO idem VALUES (?, ?, ?, ?)", (str(n), "h", envelope.message_id, "t"))
            conn.execute("INSERT OR REPLACE INTO docs VALUES (?, ?)", (doc["order_id"], document))
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed / len(messages)


def ours(messages: list, db: Path) -> float:
    store = SqliteOrderStore(db, codec=ORDERS)
    service = OrderService(AppSettings(store_retry_seconds=0), store)
    started = time.perf_counter()
    with json_logs_discarded("orders.processing"):
        for envelope in messages:
            service.handle(envelope)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed / len(messages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args(argv)
    messages = workload("floor", customers=1, orders_per_customer=max(1, args.messages // 5)).sessions[0]
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        ours(messages[:200], Path(tmp) / "warm.db")  # imports, caches
        f = min(floor(messages, Path(tmp) / f"floor{i}.db") for i in range(3))
        o = min(ours(messages, Path(tmp) / f"ours{i}.db") for i in range(3))
    print(f"machine: {machine()}")
    print(f"command: python -m bench.bench_single_floor --messages {args.messages}")
    print(f"floor: {f * 1e6:.0f} us/msg; single-message path: {o * 1e6:.0f} us/msg")
    print(f"ratio to the floor: {o / f:.1f}x (target <= 2.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
