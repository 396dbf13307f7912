"""`make demo`: the whole flow on this machine, no Azure, Docker or Core Tools.

Starts the embedded Service Bus emulator (free port), publishes test orders (duplicates, shuffled,
poison), runs the local Functions host until the queue has drained and the host is idle, prints a
summary with what to try next, and stops everything it started (also on Ctrl-C or failure). Uses a
fresh SQLite store in .local/demo/ and writes every span (publish -> process -> store) as JSON lines to
.local/demo/traces.jsonl. Exit 0 only when every order ended as the publisher expects and nothing was lost.
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

from shared.settings import DEFAULT_QUEUE_NAME as QUEUE  # noqa: E402 - after the sys.path line
from shared.settings import QUEUE_NAME_SETTING  # noqa: E402


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
        from orders_cli.sender import send_messages
        from orders_cli.traffic import PublishPlan, generate_messages
        from shared.service import reset_service

        if DEMO_DIR.exists():
            shutil.rmtree(DEMO_DIR)
        DEMO_DIR.mkdir(parents=True)
        db = DEMO_DIR / "orders.db"

        traces = _record_traces(DEMO_DIR / "traces.jsonl")

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
                QUEUE_NAME_SETTING: QUEUE,
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
        return _report(console, server, host, messages, db, drained, host_elapsed, started, traces)
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


def _record_traces(path: Path) -> Path | None:
    """Every span of this process (publisher and function) as JSON lines in `path`, besides whatever
    exporter the OTEL_* environment names; None when tracing is off (OTEL_SDK_DISABLED)."""
    from shared import tracing

    if not tracing.enabled():
        return None
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tracing.configure("orders-demo")
    tracing.add_span_processor(SimpleSpanProcessor(tracing.json_lines_exporter(path.open("w"))))
    return path


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
    traces: Path | None,
) -> int:
    from rich import box
    from rich.table import Table

    from orders_cli.traffic import expected_final_state, expected_outcomes
    from shared.order_workflow import ORDERS
    from shared.store.sqlite import SqliteOrderStore
    from shared.views import status_report
    from shared.workflows import ORDERS as ORDERS_BINDING

    store = SqliteOrderStore.from_url(f"sqlite:///{db}", codec=ORDERS, workflow=ORDERS_BINDING.record)
    try:
        report = status_report(ORDERS_BINDING, store)
        ledgers = {(x.order.customer_id, x.order.order_id): x for x in store.list_ledgers()}
        records = store.list_quarantine()
    finally:
        store.close()
    quarantined = Counter(q.reason for q in records)

    problems: list[str] = []
    if not drained:
        problems.append("the queue did not drain within 90 s")
    counts = server.queue_counts(QUEUE)
    if server.active_count(QUEUE) or server.dead_letter_count(QUEUE):
        problems.append(f"messages left on the queue: {_counts(counts)}")
    for key, steps in expected_final_state(messages).items():
        ledger = ledgers.get(key)
        got = [a.step for a in ledger.applied] if ledger else []
        if got != steps:
            problems.append(f"order {key[1]} of {key[0]}: steps {_names(got)}, expected {_names(steps)}")
    expected_q = Counter(m.expected_reason for m in messages if m.expected_outcome == "quarantined")
    if quarantined != expected_q:
        problems.append(f"quarantine reasons {_counts(quarantined)}, expected {_counts(expected_q)}")
    expected = expected_outcomes(messages)
    outcomes = report["outcomes"]
    want_applied = sum(v for k, v in expected.items() if k in ("applied", "parked"))
    if outcomes["applied"] != want_applied or outcomes["duplicate"] != expected.get("duplicate", 0):
        problems.append(f"outcomes {_counts(outcomes)}, expected {_counts(expected)}")

    table = Table(title="Outcomes", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name, value in outcomes.items():
        table.add_row("parked now" if name == "parked" else name, str(value))
    console.print(table)

    states = Counter(o["state"] for o in report["orders"])
    by_state = Table(title="Orders by state", box=box.SIMPLE_HEAD, title_justify="left")
    by_state.add_column("state")
    by_state.add_column("orders", justify="right")
    for state, n in sorted(states.items()):
        by_state.add_row(state, str(n))
    console.print(by_state)

    poison = Table(title="Quarantined (poison) messages", box=box.SIMPLE_HEAD, title_justify="left")
    poison.add_column("quarantine id", no_wrap=True, overflow="ignore")
    poison.add_column("reason")
    poison.add_column("order / session")
    for q in sorted(records, key=lambda r: (r.reason, r.id)):
        poison.add_row(q.id, q.reason, q.stream_key or f"{q.session_id} (no order id)")
    console.print(poison)

    c = host.counters
    rate = c.completed / host_s if host_s > 0 else 0.0
    console.print(
        f"host: {c.invocations} invocations, {c.completed} completed, {c.abandoned} abandoned, "
        f"{c.sessions_acquired} sessions; {rate:.0f} msg/s over {host_s:.1f} s (incl. idle wait)",
        markup=False,
    )
    console.print(f"queue: {_counts(counts)}", markup=False)
    console.print(f"wall time {time.perf_counter() - t0:.1f} s", markup=False)
    if problems:
        for p in problems:
            console.print(f"[red]✗[/] {p}", markup=True, highlight=False)
        return 1
    console.print("[green]✓ every order reached its expected state; every poison message is quarantined[/]")
    _next_steps(console, messages, report, records, db, traces)
    return 0


def _next_steps(
    console: Any,
    messages: list[Any],
    report: dict[str, Any],
    records: list[Any],
    db: Path,
    traces: Path | None,
) -> None:
    """What happened, and commands to try next that work against this demo's store as printed."""
    import re

    store = f"sqlite:///{_shown(db)}"
    regular = [o for o in report["orders"] if not re.search(r"-p\d+$", o["order_id"])]
    dedicated = [o for o in report["orders"] if re.search(r"-p\d+$", o["order_id"])]
    kinds = Counter(m.kind for m in messages)
    head = f"{len(regular)} regular orders"
    lines = [
        f"{len(messages)} messages ({kinds['step']} steps, {kinds['duplicate']} duplicate resends, "
        f"{kinds['poison']} poison) went through the emulator to function_app.py in the local host.",
        "Steps arrived shuffled: early ones were parked and applied once the gap before them filled; "
        f"resends were recognised as duplicates, never applied twice. The {head}: {_states(regular)}.",
    ]
    if dedicated:
        lines.append(
            f"The other {len(dedicated)} orders ({_states(dedicated)}) belong to poison messages: "
            "rule-violation places an order and then pays the wrong amount (the payment is quarantined, "
            "the order stays PLACED); invalid-transition cancels an order and then ships it (the shipping "
            "step is quarantined, the order stays CANCELLED)."
        )
    lines.append(
        "Each poison message was quarantined with its reason (table above) and completed: no session "
        "was blocked, nothing went to the dead-letter queue."
    )
    commands = [f"orders status --store {store}"]
    refused = next((q for q in sorted(records, key=lambda r: r.id) if q.reason == "rule-violation"), None)
    if refused is not None and refused.stream_key:  # the first incident: why is this order still PLACED?
        commands.append(f"orders why {refused.stream_key} --customer {refused.session_id} --store {store}")
    commands.append(f"orders quarantine list --store {store}")
    if records:
        first = sorted(records, key=lambda r: (r.reason, r.id))[0]
        commands.append(f"orders quarantine show {first.id} --store {store}")
    trace_id = _example_trace(traces, records)
    if traces is not None and trace_id:
        commands.append(f"grep {trace_id} {_shown(traces)}")
    width = max(60, min(console.width, 100))
    console.print()
    console.print("What happened", style="bold")
    for line in lines:
        console.print(_wrapped(line, width), markup=False, highlight=False, soft_wrap=True)
    console.print()
    heading = "Try next (after `source .venv/bin/activate`; a line ending in `\\` goes on):"
    console.print(heading, style="bold", markup=False)
    from orders_cli.console import command_lines

    for command in commands:  # for copying: split between words with a `\` continuation, never mid-path
        for line in command_lines(command, indent="  $ "):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if traces is not None and trace_id:
        note = (
            "The grep shows one message's trace: the publisher's span, the function's span (same trace id) "
            'and its store calls. docs/operations.md "Traces" sends traces to Jaeger or Application '
            "Insights instead."
        )
        console.print(_wrapped(note, width), markup=False, highlight=False, soft_wrap=True)


def _wrapped(text: str, width: int) -> str:
    import textwrap

    return textwrap.fill(
        text, width=width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )


def _example_trace(traces: Path | None, records: list[Any]) -> str | None:
    """The trace id of the first quarantined message's processing span (from the demo's span file)."""
    import json

    if traces is None or not traces.is_file() or not records:
        return None
    first = sorted(records, key=lambda r: (r.reason, r.id))[0]
    for line in traces.read_text(encoding="utf-8").splitlines():
        try:
            span = json.loads(line)
        except ValueError:
            continue
        attributes = span.get("attributes") or {}
        if (
            span.get("name") == "orders process"
            and attributes.get("messaging.message.id") == first.message_id
        ):
            return str(span["context"]["trace_id"]).removeprefix("0x")
    return None


def _shown(path: Path) -> str:
    """`path` as the user should type it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _states(orders: list[dict[str, Any]]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(Counter(o["state"] for o in orders).items()))


def _counts(counts: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in dict(counts).items()) or "none"


def _names(steps: list[str]) -> str:
    return " > ".join(steps) or "none"


if __name__ == "__main__":
    sys.exit(main())
