"""Chaos: SIGKILL the local Functions host at random moments while it works, restart it, check the store.

    python -m bench.chaos --messages 5000 --sessions 50 --kills 10

Publishes a shuffled workload with duplicates and poison messages (orders_cli.traffic) to an embedded
Service Bus emulator, then runs `python -m devstack.host --until-idle` as a subprocess against a SQLite
store, killing it with SIGKILL (no clean-up, no settlement) K times, each a random moment after it has
applied at least one new message, restarting it each time, and finally letting it run until the queue
is empty. Then: every order's applied steps must be exactly its published steps, once each, in order;
every poison message quarantined with its expected reason; nothing left in the queue or dead-lettered.

tests/reliability/test_chaos.py runs `run_chaos` at small scale against the pytest emulator fixture.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import host_command, machine
from orders_cli.sender import send_messages
from orders_cli.traffic import PublishPlan, expected_final_state, generate_messages
from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore

REPO = Path(__file__).resolve().parents[1]
LOCK_SECONDS = 2.0  # the queue's lock duration: how long a killed host's session locks linger


@dataclass(slots=True)
class ChaosReport:
    messages: int
    sessions: int
    orders: int
    kills_requested: int
    kills_landed: int = 0
    host_runs: int = 0
    elapsed_s: float = 0.0
    lost_steps: int = 0  # published steps never applied
    double_applied: int = 0  # steps applied more than once
    out_of_order: int = 0  # orders whose applied sequences are not 1..n
    wrong_orders: list[str] = field(default_factory=list)
    poison_expected: int = 0
    poison_missing: list[str] = field(default_factory=list)
    left_in_queue: int = -1
    dead_lettered: int = -1
    outcomes: Counter[str] = field(default_factory=Counter)  # from the host's log lines, every delivery
    redelivered: int = 0  # log lines with delivery_count > 1
    final_exit_codes: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost_steps == 0
            and self.double_applied == 0
            and self.out_of_order == 0
            and not self.wrong_orders
            and not self.poison_missing
            and self.left_in_queue == 0
            and self.dead_lettered == 0
        )

    def lines(self) -> list[str]:
        return [
            f"published {self.messages} messages over {self.sessions} sessions ({self.orders} orders,"
            f" {self.poison_expected} poison)",
            f"SIGKILLs landed mid-processing: {self.kills_landed}/{self.kills_requested};"
            f" host runs: {self.host_runs}; wall time {self.elapsed_s:.1f} s",
            f"lost steps: {self.lost_steps}; double-applied steps: {self.double_applied};"
            f" orders out of order: {self.out_of_order}; orders not as published: {len(self.wrong_orders)}",
            f"poison messages not quarantined as expected: {len(self.poison_missing)}",
            f"left in queue: {self.left_in_queue}; dead-lettered: {self.dead_lettered}",
            f"host log outcomes over all deliveries: {dict(sorted(self.outcomes.items()))};"
            f" deliveries with delivery_count > 1: {self.redelivered}",
            "RESULT: " + ("OK - 0 lost, 0 double-applied, all in order" if self.ok else "FAILED"),
        ]


def plan_for(messages: int, sessions: int, seed: int) -> PublishPlan:
    poison = max(1, sessions // 3)
    per_customer = max(1, round((messages - poison) / sessions / 1.05 / 4.8))
    return PublishPlan(
        customers=sessions,
        orders_per_customer=per_customer,
        cancel_rate=0.1,
        duplicates=0.05,
        shuffle=True,
        poison=poison,
        seed=seed,
        id_prefix=f"chaos{uuid.uuid4().hex[:6]}",
    )


def _applied_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM idempotency").fetchone()[0])
    except sqlite3.Error:
        return 0


def _start_host(settings: Path, until_idle: float, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    with open(log, "ab") as out:
        return subprocess.Popen(
            host_command(str(REPO), str(settings), until_idle, "--shutdown-grace", "1"),
            cwd=str(REPO),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def run_chaos(
    connection_string: str,
    queue: str,
    counts: Callable[[], tuple[int, int]],
    workdir: Path,
    *,
    messages: int,
    sessions: int,
    kills: int,
    seed: int = 7,
    deadline_s: float = 600.0,
    say: Callable[[str], None] = lambda _: None,
    cardinality: str = "one",
) -> ChaosReport:
    """`counts()` returns (active messages, dead-lettered) of `queue`. `cardinality`: the trigger mode
    (ORDERS_TRIGGER_CARDINALITY) the host runs the app in."""
    rng = random.Random(seed)
    plan = plan_for(messages, sessions, seed)
    published = generate_messages(plan)
    expected = expected_final_state(published)
    report = ChaosReport(len(published), sessions, len(expected), kills)
    poison = {m.message_id: m.expected_reason for m in published if m.expected_outcome == "quarantined"}
    report.poison_expected = len(poison)
    send_messages(published, connection_string=connection_string, namespace=None, queue=queue, progress=False)
    say(f"published {len(published)} messages to {queue}")

    db = workdir / "orders.db"
    settings = workdir / "local.settings.json"
    settings.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "ServiceBusConnection": connection_string,
                    "ORDERS_QUEUE_NAME": queue,
                    "OrderStoreConnection": f"sqlite:///{db}",
                    "ORDERS_MAX_DELIVERY_COUNT": "10",
                    "ORDERS_TRIGGER_CARDINALITY": cardinality,
                },
            }
        )
    )
    log = workdir / "host.log"
    started = time.monotonic()
    deadline = started + deadline_s
    for k in range(kills):
        before = _applied_count(db)
        proc = _start_host(settings, until_idle=LOCK_SECONDS + 3, log=log)
        report.host_runs += 1
        while proc.poll() is None and _applied_count(db) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:  # finished (or failed) before we could kill it
            say(f"run {k + 1}: host exited by itself ({proc.returncode}) before the kill")
            break
        time.sleep(rng.uniform(0.0, 0.4))
        _kill(proc)
        report.kills_landed += 1
        say(f"kill {k + 1}: SIGKILL after {_applied_count(db) - before} newly applied")
    # run to completion: a killed host's session locks linger for LOCK_SECONDS, so an early idle exit
    # may leave messages behind; run again until the queue is empty.
    while time.monotonic() < deadline:
        proc = _start_host(settings, until_idle=LOCK_SECONDS + 3, log=log)
        report.host_runs += 1
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(proc)
        report.final_exit_codes.append(proc.returncode)
        if counts()[0] == 0:
            break
    report.elapsed_s = time.monotonic() - started
    report.left_in_queue, report.dead_lettered = counts()

    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        ledgers = {(x.customer_id, x.order_id): x for x in store.list_ledgers()}
        for key, steps in expected.items():
            ledger = ledgers.get(key)
            got = [a.step for a in ledger.applied] if ledger else []
            seqs = [a.sequence for a in ledger.applied] if ledger else []
            report.lost_steps += max(0, len(steps) - len(set(seqs)))
            report.double_applied += len(seqs) - len(set(seqs))
            if seqs != list(range(1, len(seqs) + 1)):
                report.out_of_order += 1
            if got != steps or (ledger and ledger.parked):
                report.wrong_orders.append(f"{key}: {got} != {steps}")
        quarantined = {q.message_id: q.reason for q in store.list_quarantine()}
        report.poison_missing = [m for m, reason in poison.items() if quarantined.get(m) != reason]
    finally:
        store.close()
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            extra = json.loads(line).get("extra") or {}
            if "outcome" in extra and extra.get("message_id"):
                report.outcomes[extra["outcome"]] += 1
                if int(extra.get("delivery_count") or 1) > 1:
                    report.redelivered += 1
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (host.log, orders.db)")
    parser.add_argument("--cardinality", choices=("one", "many"), default="one", help="the trigger mode")
    args = parser.parse_args(argv)

    from devstack.emulator.config import QueueProperties, make_config
    from devstack.emulator.server import EmulatorServer

    queue = "chaos"
    props = QueueProperties(
        requires_session=True,
        requires_duplicate_detection=True,
        max_delivery_count=10,
        lock_duration=LOCK_SECONDS,
    )
    server = EmulatorServer(make_config({queue: props}), host="127.0.0.1", port=0)
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    try:
        report = run_chaos(
            server.connection_string,
            queue,
            lambda: (server.active_count(queue), server.dead_letter_count(queue)),
            workdir,
            messages=args.messages,
            sessions=args.sessions,
            kills=args.kills,
            seed=args.seed,
            deadline_s=max(300.0, args.messages / 5),
            say=lambda s: print("  " + s, flush=True),
            cardinality=args.cardinality,
        )
    finally:
        server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(
        f"command: python -m bench.chaos --messages {args.messages} --sessions {args.sessions}"
        f" --kills {args.kills} --cardinality {args.cardinality}"
    )
    for line in report.lines():
        print(line)
    if args.keep:
        print(f"work dir: {workdir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
