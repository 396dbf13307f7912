"""End to end, locally: publisher -> embedded Service Bus emulator -> local Functions host -> SQLite store,
next to a plain SDK consumer (receive + complete, nothing else) on the same emulator in the same run.

    python -m bench.bench_e2e                       # 32 sessions, ~1,000 messages
    python -m bench.bench_e2e --scaling             # 1, 8 and 32 sessions
    python -m bench.bench_e2e --messages 3000

The emulator runs in this process; the host (`python -m devstack.host --until-idle`) and the raw
consumer (`python -m bench.raw_consumer`) each run as a subprocess with the same session concurrency
(host.json maxConcurrentSessions = 16, one message per receive, prefetch 0). Rates are messages over
the processing window (first to last message handled), so process start-up and the idle wait at the
end are not counted. The host's window comes from its own JSON log lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import host_command, machine, print_table
from orders_cli.sender import send_messages
from orders_cli.traffic import PublishPlan, expected_final_state, generate_messages
from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 16  # host.json extensions.serviceBus.maxConcurrentSessions
TARGET_RATIO = 0.6


def _plan(messages: int, sessions: int, seed: int) -> PublishPlan:
    per_customer = max(1, round(messages / sessions / 1.05 / 4.8))
    return PublishPlan(
        customers=sessions,
        orders_per_customer=per_customer,
        cancel_rate=0.1,
        duplicates=0.05,
        shuffle=True,
        seed=seed,
        id_prefix=f"e2e{uuid.uuid4().hex[:6]}",
    )


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")


def run_host(conn: str, queue: str, workdir: Path, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """`extra`: more app settings (e.g. ORDERS_TRIGGER_CARDINALITY)."""
    db = workdir / f"{queue}.db"
    settings = workdir / f"{queue}.settings.json"
    values = {
        "ServiceBusConnection": conn,
        "ORDERS_QUEUE_NAME": queue,
        "OrderStoreConnection": f"sqlite:///{db}",
        **(extra or {}),
    }
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    log = workdir / f"{queue}.host.log"
    with open(log, "wb") as out:
        subprocess.run(
            host_command(str(REPO), str(settings), 3),
            cwd=REPO,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=900,
        )
    stamps: list[datetime] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "outcome" in (doc.get("extra") or {}):
            stamps.append(datetime.fromisoformat(doc["timestamp"]))
    seconds = (max(stamps) - min(stamps)).total_seconds() if len(stamps) > 1 else float("nan")
    return {"messages": len(stamps), "seconds": seconds, "db": db}


def run_raw(conn: str, queue: str, expect: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.raw_consumer",
            "--connection",
            conn,
            "--queue",
            queue,
            "--concurrency",
            str(CONCURRENCY),
            "--expect",
            str(expect),
        ],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def one(server: Any, messages: int, sessions: int, workdir: Path, seed: int = 1) -> dict[str, Any]:
    from devstack.emulator.config import QueueProperties

    props = QueueProperties(
        requires_session=True, requires_duplicate_detection=True, max_delivery_count=10, lock_duration=30
    )
    host_q, raw_q = f"e2e-host-{sessions}-{seed}", f"e2e-raw-{sessions}-{seed}"
    server.create_queue(host_q, props)
    server.create_queue(raw_q, props)
    plan = _plan(messages, sessions, seed)
    published = generate_messages(plan)
    conn = server.connection_string
    started = time.perf_counter()
    send_messages(published, connection_string=conn, namespace=None, queue=host_q, progress=False)
    publish_s = time.perf_counter() - started
    send_messages(published, connection_string=conn, namespace=None, queue=raw_q, progress=False)

    raw = run_raw(conn, raw_q, len(published))
    host = run_host(conn, host_q, workdir)
    store = SqliteOrderStore(host["db"], codec=ORDERS)
    try:
        got = {(x.customer_id, x.order_id): [a.step for a in x.applied] for x in store.list_ledgers()}
    finally:
        store.close()
    correct = got == expected_final_state(published)
    host_rate = host["messages"] / host["seconds"]
    raw_rate = raw["messages"] / raw["seconds"]
    left = server.active_count(host_q)
    server.delete_queue(host_q)
    server.delete_queue(raw_q)
    return {
        "sessions": sessions,
        "messages": len(published),
        "publish_rate": len(published) / publish_s,
        "host_rate": host_rate,
        "raw_rate": raw_rate,
        "ratio": host_rate / raw_rate,
        "host_handled": host["messages"],
        "raw_handled": raw["messages"],
        "correct": correct and left == 0,
    }


HEADER = ["sessions", "messages", "publish msg/s", "host msg/s", "raw SDK msg/s", "ratio", "correct"]


def _row(r: dict[str, Any]) -> list[object]:
    return [
        r["sessions"],
        r["messages"],
        r["publish_rate"],
        r["host_rate"],
        r["raw_rate"],
        round(r["ratio"], 2),
        r["correct"],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--scaling", action="store_true", help="run at 1, 8 and 32 sessions")
    args = parser.parse_args(argv)

    from devstack.emulator.server import EmulatorServer

    server = EmulatorServer(None, host="127.0.0.1", port=0)
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
            for sessions in (1, 8, 32) if args.scaling else (args.sessions,):
                rows.append(one(server, args.messages, sessions, Path(tmp)))
    finally:
        server.stop()
    print(f"machine: {machine()}")
    print(
        "end to end: publisher -> emulator (in this process) -> `python -m devstack.host` -> SQLite;"
        f" raw = SDK session receive+complete, {CONCURRENCY} concurrent sessions, same emulator"
    )
    print_table([_row(r) for r in rows], HEADER)
    main_row = next((r for r in rows if r["sessions"] == 32), rows[-1])
    verdict = "met" if main_row["ratio"] >= TARGET_RATIO else "MISSED"
    print(f"target host/raw >= {TARGET_RATIO} at {main_row['sessions']} sessions: {verdict}")
    return 0 if all(r["correct"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
