"""The single-message path against its floor, in one run (issue 12's last point).

    python -m bench.bench_single_floor [--messages 3000] [--rounds 5]

Floor, per message: `json.loads(body)`, the recipe's log line (the app's JsonFormatter, formatted and
discarded) and one bare SQLite WAL transaction (synchronous=NORMAL, as shipped) writing one idempotency row
and one ~1 KB document. Ours: `OrderService.handle` over the SQLite store (parse, validate, hash, decide,
one commit, the full log line with every field). Same ordered messages (one order of 5 steps after
another, one session). Floor and ours alternate for `--rounds` rounds; the fastest round of each counts.

Ours is measured in three tracing set-ups, each in a fresh process with its own floor:
  default   tracing on, no exporter (local runs): span ids made and logged, spans not recorded;
  exported  a span processor attached (as with Application Insights): processing and store spans
            recorded and handed to a batching exporter that discards them;
  off       OTEL_SDK_DISABLED=true.
Figures only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_batch import workload
from bench.common import export_and_discard_spans, json_logs_discarded, machine, tracing_environment
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


MODES = ("default", "exported", "off")
PARTS = ("log", "hash", "span")  # what --ablate takes out of ours, one at a time (default tracing)


def _take_out(part: str) -> None:
    """Remove one part of the path (ablation: what it costs is the difference to the full path)."""
    import contextlib

    import shared.order_workflow
    import shared.service
    from shared import tracing

    if part == "log":
        quiet = logging.getLogger("bench.ablation")
        quiet.setLevel(logging.CRITICAL)
        shared.service.log = quiet
    elif part == "hash":
        shared.order_workflow.content_hash = lambda message: "0" * 64
    elif part == "span":

        def no_span(envelope: object, service_name: str = "") -> Any:
            return contextlib.nullcontext(tracing.MessageSpan(None))

        setattr(tracing, "message_span", no_span)  # noqa: B010 - replacing a function for the ablation


def measure(mode: str, count: int, rounds: int, without: str | None = None) -> tuple[float, float]:
    """(floor, ours) in seconds per message, fastest of `rounds` alternating rounds, in this process."""
    if mode == "exported":
        export_and_discard_spans()
    if without:
        _take_out(without)
    messages = workload("floor", customers=1, orders_per_customer=max(1, count // 5)).sessions[0]
    floors, ourss = [], []
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        ours(messages[:200], Path(tmp) / "warm.db")  # imports, caches
        for i in range(rounds):
            floors.append(floor(messages, Path(tmp) / f"floor{i}.db"))
            ourss.append(ours(messages, Path(tmp) / f"ours{i}.db"))
    return min(floors), min(ourss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--ablate", action="store_true", help="also measure ours without the log line, the hash, the span"
    )
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one set-up, in this process
    parser.add_argument("--without", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.messages < 5 or args.rounds < 1:
        parser.error("--messages must be at least 5 and --rounds at least 1")
    if args.mode:
        f, o = measure(args.mode, args.messages, args.rounds, args.without)
        print(json.dumps({"floor": f, "ours": o}))
        return 0
    print(f"machine: {machine()}")
    ablate = " --ablate" if args.ablate else ""
    sizes = f"--messages {args.messages} --rounds {args.rounds}"
    print(f"command: python -m bench.bench_single_floor {sizes}{ablate}")
    print(f"{'tracing':<14} {'floor us/msg':>13} {'ours us/msg':>12} {'ratio':>6}  (target <= 2.5x)")
    runs: list[tuple[str, str | None]] = [(mode, None) for mode in MODES]
    if args.ablate:
        runs += [("default", part) for part in PARTS]
    for mode, without in runs:
        command = [sys.executable, "-m", "bench.bench_single_floor", "--mode", mode]
        command += ["--messages", str(args.messages), "--rounds", str(args.rounds)]
        command += ["--without", without] if without else []
        done = subprocess.run(
            command, env=tracing_environment(mode), capture_output=True, text=True, check=True
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        f, o = figures["floor"], figures["ours"]
        label = f"{mode} -{without}" if without else mode
        print(f"{label:<14} {f * 1e6:>13.0f} {o * 1e6:>12.0f} {o / f:>5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
