"""`make demo`: the whole flow on this machine, no Azure, Docker or Core Tools.

Starts the embedded Service Bus emulator (free port), publishes test orders (duplicates, shuffled,
poison), runs the local Functions host until the queue has drained and the host is idle, prints a
summary, and stops everything it started (also on Ctrl-C or failure). Uses a fresh SQLite store in
.local/demo/. Exit 0 only when every order ended as the publisher expects and nothing was lost.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DEMO_DIR = REPO_ROOT / ".local" / "demo"
QUEUE = "orders-with-sessions"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--orders-per-customer", type=int, default=3)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--poison", type=int, default=6)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--verbose", action="store_true", help="show the host's JSON log lines")
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console(stderr=False)
    started = time.perf_counter()
    server: Any = None
    host: Any = None
    try:
        from devstack.emulator.server import EmulatorServer
        from devstack.host import LocalHost
        from shared.publisher import PublishPlan, generate_messages, send_messages
        from shared.service import reset_service

        if DEMO_DIR.exists():
            shutil.rmtree(DEMO_DIR)
        DEMO_DIR.mkdir(parents=True)
        db = DEMO_DIR / "orders.db"

        server = EmulatorServer(REPO_ROOT / "dev" / "servicebus" / "Config.json", host="127.0.0.1", port=0)
        server.start()
        console.print(f"[bold]emulator[/] listening on 127.0.0.1:{server.port}")

        plan = PublishPlan(
            customers=args.customers,
            orders_per_customer=args.orders_per_customer,
            duplicates=args.duplicates,
            shuffle=True,
            poison=args.poison,
            seed=args.seed,
        )
        plan.validate()
        messages = generate_messages(plan)
        summary = send_messages(
            messages, connection_string=server.connection_string, namespace=None, queue=QUEUE, progress=False
        )
        console.print(f"[bold]published[/] {summary.sent} messages ({summary.messages_per_second} msg/s)")

        if not args.verbose:
            _quiet_host_logs()
        reset_service()
        host = LocalHost(
            REPO_ROOT,
            settings_path=DEMO_DIR / "local.settings.json",  # none: the demo's settings are explicit
            settings_overrides={
                "ServiceBusConnection": server.connection_string,
                "ORDERS_QUEUE_NAME": QUEUE,
                "OrderStoreConnection": f"sqlite:///{db}",
            },
            host_json_overrides={"sessionIdleTimeout": "00:00:01"},
            configure_logging=args.verbose,
        )
        host_started = time.perf_counter()
        host.start()
        console.print("[bold]local host[/] running function_app.py ...")
        drained = _wait_for_drain(server, host, timeout=90)
        host.stop()
        host_elapsed = time.perf_counter() - host_started
        reset_service()
        return _report(console, server, host, messages, db, drained, host_elapsed, started)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    except Exception as exc:
        console.print(f"[red]demo failed:[/] {type(exc).__name__}: {exc}")
        return 1
    finally:
        if host is not None:
            host.stop()
        if server is not None:
            server.stop()


def _quiet_host_logs() -> None:
    """Without --verbose the console shows the summary only (the JSON lines go nowhere)."""
    os.environ.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
    root = logging.getLogger()
    root.handlers[:] = [logging.NullHandler()]
    root.setLevel(logging.WARNING)


def _wait_for_drain(server: Any, host: Any, timeout: float) -> bool:
    """True once the queue has no active message and the host has been idle for a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.active_count(QUEUE) == 0 and host.idle_for() >= 1.0:
            return True
        time.sleep(0.2)
    return False


def _report(
    console: Any,
    server: Any,
    host: Any,
    messages: list[Any],
    db: Path,
    drained: bool,
    host_s: float,
    t0: float,
) -> int:
    from rich.table import Table

    from shared.order_workflow import ORDERS
    from shared.publisher import expected_final_state, expected_outcomes
    from shared.store.sqlite import SqliteOrderStore
    from shared.views import status_report

    store = SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS)
    try:
        report = status_report(store)
        ledgers = {(x.order.customer_id, x.order.order_id): x for x in store.list_ledgers()}
        quarantined = Counter(q.reason for q in store.list_quarantine())
    finally:
        store.close()

    problems: list[str] = []
    if not drained:
        problems.append("the queue did not drain within 90 s")
    counts = server.queue_counts(QUEUE)
    if server.active_count(QUEUE) or server.dead_letter_count(QUEUE):
        problems.append(f"messages left on the queue: {counts}")
    for key, steps in expected_final_state(messages).items():
        ledger = ledgers.get(key)
        got = [a.step for a in ledger.applied] if ledger else None
        if got != steps:
            problems.append(f"order {key[1]} of {key[0]}: steps {got}, expected {steps}")
    expected_q = Counter(m.expected_reason for m in messages if m.expected_outcome == "quarantined")
    if quarantined != expected_q:
        problems.append(f"quarantine reasons {dict(quarantined)}, expected {dict(expected_q)}")
    expected = expected_outcomes(messages)
    outcomes = report["outcomes"]
    want_applied = sum(v for k, v in expected.items() if k in ("applied", "parked"))
    if outcomes["applied"] != want_applied or outcomes["duplicate"] != expected.get("duplicate", 0):
        problems.append(f"outcomes {outcomes}, expected {expected}")

    table = Table(title="Outcomes", show_lines=False)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name, value in outcomes.items():
        table.add_row(name, str(value))
    console.print(table)

    states = Counter(o["state"] for o in report["orders"])
    by_state = Table(title="Orders by state")
    by_state.add_column("state")
    by_state.add_column("orders", justify="right")
    for state, n in sorted(states.items()):
        by_state.add_row(state, str(n))
    console.print(by_state)

    reasons = Table(title="Quarantined (poison) messages")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    reasons.add_column("example message id")
    for reason, n in sorted(quarantined.items()):
        example = next(q["message_id"] for q in report["quarantine"] if q["reason"] == reason)
        reasons.add_row(reason, str(n), example)
    console.print(reasons)

    c = host.counters
    rate = c.completed / host_s if host_s > 0 else 0.0
    console.print(
        f"host: {c.invocations} invocations, {c.completed} completed, {c.abandoned} abandoned, "
        f"{c.sessions_acquired} sessions; {rate:.0f} msg/s over {host_s:.1f} s (incl. idle wait); "
        f"queue {counts}"
    )
    console.print(f"wall time {time.perf_counter() - t0:.1f} s; store {db.relative_to(REPO_ROOT)}")
    if problems:
        for p in problems:
            console.print(f"[red]✗[/] {p}")
        return 1
    console.print("[green]✓ every order reached its expected state; every poison message is quarantined[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
