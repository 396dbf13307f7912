"""A long order-store outage under the real local host: does it dead-letter anything, lose or double
anything, and how long after the store returns is the queue drained?

    python -m bench.store_outage                  # 30-minute outage, shipped host.json and settings
    python -m bench.store_outage --minutes 5      # shorter
    python -m bench.store_outage --stores table --modes one,many --minutes 10

Per scenario (store x trigger mode, run concurrently, each with its own emulator queue, store and
`python -m devstack.host` on the repo's host.json): half the workload is published and the host starts;
once it has applied a few messages the store goes down; the other half is published during the outage;
after `--minutes` the store comes back; the run waits until the queue is empty, stops the host and
compares the store with what was published. The faults:

- table: Azurite stays up but its endpoint is cut (a proxy on 127.0.0.1 refuses new connections and
  resets open ones: a wrong or unreachable endpoint), then restored;
- sqlite: another process holds an exclusive transaction on the database (writes time out after
  busy_timeout), then ends it.

The queue is as shipped (infra/modules/servicebus.bicep): sessions, duplicate detection, lock 1 min,
MaxDeliveryCount 10. Prints one row per scenario: sent, lost, doubled, dead-lettered, left, highest
delivery count, messages given back (deliveries spent), circuit open/close lines, time to recover.
Exit status 1 if anything was lost, doubled, dead-lettered or left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import lock_free as lock_free_command
from bench.common import machine, print_table, start_host_process
from bench.fault_proxy import FaultProxy
from orders_cli.sender import send_messages
from orders_cli.traffic import OutgoingMessage, PublishPlan, expected_final_state, generate_messages
from shared.order_workflow import ORDERS
from shared.store.base import OrderStore
from shared.store.sqlite import SqliteOrderStore
from shared.store.table import TableOrderStore

REPO = Path(__file__).resolve().parents[1]

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the parent closes stdin
db.execute("ROLLBACK")
"""


@dataclass(frozen=True, slots=True)
class OutagePlan:
    """One scenario. `host_json`: None runs the repo's host.json; a dict is written into a private app
    directory (time-compressed tests). `settings`: extra app settings (e.g. ORDERS_STORE_RETRY_SECONDS)."""

    store: str  # "sqlite" | "table"
    cardinality: str  # "one" | "many"
    outage_s: float
    sqlite_fault: str = "locked"  # "locked" (mid-run) | "read-only" (from the start: misconfigured)
    host_json: Mapping[str, Any] | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    lock_s: float = 60.0
    max_delivery_count: int = 10
    customers: int = 8
    orders: int = 2
    seed: int = 19
    drain_deadline_s: float = 900.0

    @property
    def name(self) -> str:
        fault = "table endpoint cut" if self.store == "table" else f"sqlite {self.sqlite_fault}"
        length = f"{self.outage_s:g} s" if self.outage_s < 120 else f"{self.outage_s / 60:g} min"
        return f"{fault} {length} ({self.cardinality})"


@dataclass(slots=True)
class OutageReport:
    name: str
    sent: int = 0
    lost: int = 0
    doubled: int = 0
    out_of_order: int = 0
    dead_lettered: int = -1
    left: int = -1
    max_delivery_count: int = 0
    given_back: int = 0  # invocations that gave their message(s) back (one delivery spent each)
    circuit_opened: int = 0
    circuit_closed: int = 0
    outage_s: float = 0.0
    recover_s: float | None = None  # store back -> queue empty
    host_exit: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        clean = (self.lost, self.doubled, self.out_of_order, self.dead_lettered, self.left) == (0, 0, 0, 0, 0)
        return clean and self.error is None and self.recover_s is not None

    def row(self) -> list[object]:
        recover = "-" if self.recover_s is None else f"{self.recover_s:.1f} s"
        return [
            self.name,
            self.sent,
            self.lost,
            self.doubled,
            self.dead_lettered,
            self.left,
            self.max_delivery_count,
            self.given_back,
            f"{self.circuit_opened}/{self.circuit_closed}",
            recover,
        ]


HEADER = [
    "fault",
    "sent",
    "lost",
    "doubled",
    "dead-lettered",
    "left",
    "max delivery",
    "given back",
    "circuit open/close",
    "time to recover",
]


def workload(plan: OutagePlan) -> list[OutgoingMessage]:
    """Shuffled valid steps (no poison: every message must be applied), ids unique to this run."""
    return generate_messages(
        PublishPlan(
            customers=plan.customers,
            orders_per_customer=plan.orders,
            shuffle=True,
            seed=plan.seed,
            id_prefix=f"o{uuid.uuid4().hex[:6]}",
        )
    )


def run_outage(
    plan: OutagePlan,
    server: Any,
    workdir: Path,
    *,
    azurite: Any = None,
    say: Callable[[str], None] = lambda _: None,
) -> OutageReport:
    """Run one scenario against `server` (a devstack EmulatorServer) and, for the table store, `azurite`
    (a devstack AzuriteTable). Never raises for a scenario failure: the report says what went wrong."""
    report = OutageReport(plan.name)
    workdir.mkdir(parents=True, exist_ok=True)
    queue = _make_queue(plan, server)
    messages = workload(plan)
    report.sent = len(messages)
    half = len(messages) // 2
    log = workdir / "host.log"
    fault = _Fault(plan, workdir, azurite)
    proc: subprocess.Popen[bytes] | None = None
    try:
        settings_path = _write_settings(plan, server, queue, fault, workdir)
        _send(server.connection_string, queue, messages[:half])
        if fault.at_start:
            fault.down()
        proc = _start_host(_app_dir(plan, workdir), settings_path, log, lock_free=fault.at_start)
        if not fault.at_start:
            deadline = time.monotonic() + 120
            while _outcomes(log)["applied"] < 3 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            fault.down()
        down_at = time.monotonic()
        say(f"{plan.name}: store down")
        _send(server.connection_string, queue, messages[half:])  # traffic goes on during the outage
        while (left := down_at + plan.outage_s - time.monotonic()) > 0:
            time.sleep(min(left, 60.0))
            if left > 60:
                say(
                    f"{plan.name}: {time.monotonic() - down_at:.0f} s down; dead-lettered "
                    f"{server.dead_letter_count(queue)}; highest delivery count {_summary(log)[1]}"
                )
        fault.up()
        up_at = time.monotonic()
        report.outage_s = up_at - down_at
        say(f"{plan.name}: store back after {report.outage_s:.0f} s")
        while time.monotonic() - up_at < plan.drain_deadline_s:
            if server.active_count(queue) == 0:
                report.recover_s = time.monotonic() - up_at
                break
            if proc.poll() is not None:
                report.error = f"host exited early ({proc.returncode})"
                break
            time.sleep(0.2)
        say(f"{plan.name}: recovered in {report.recover_s} s")
    except Exception as exc:
        report.error = repr(exc)
    finally:
        fault.up()
        if proc is not None:
            report.host_exit.append(_stop_host(proc))
    report.left = server.active_count(queue)
    report.dead_lettered = server.dead_letter_count(queue)
    store = fault.open_store()
    try:
        _compare(store, messages, report)
    finally:
        store.close()
        fault.close()
    outcomes, report.max_delivery_count, report.circuit_opened, report.circuit_closed = _summary(log)
    report.given_back = outcomes["retry"]
    return report


@dataclass(slots=True)
class StopReport:
    exit_code: int | None = None
    circuit_opened: int = 0
    stop_s: float = 0.0


def hold_then_stop(plan: OutagePlan, server: Any, workdir: Path, *, azurite: Any = None) -> StopReport:
    """Start the host on a store that is down, wait until its invocations hold on the open circuit, send
    SIGTERM and time how long the host takes to exit (a held invocation must not keep it alive)."""
    workdir.mkdir(parents=True, exist_ok=True)
    queue = _make_queue(plan, server)
    log = workdir / "host.log"
    fault = _Fault(plan, workdir, azurite)
    report = StopReport()
    try:
        settings_path = _write_settings(plan, server, queue, fault, workdir)
        _send(server.connection_string, queue, workload(plan))
        fault.down()
        proc = _start_host(_app_dir(plan, workdir), settings_path, log, lock_free=fault.at_start)
        deadline = time.monotonic() + 90
        while _summary(log)[2] == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # every session's invocation is now waiting on the circuit
        stopping = time.monotonic()
        report.exit_code = _stop_host(proc, timeout=300)
        report.stop_s = time.monotonic() - stopping
        report.circuit_opened = _summary(log)[2]
    finally:
        fault.up()
        fault.close()
    return report


def _make_queue(plan: OutagePlan, server: Any) -> str:
    from devstack.emulator.config import QueueProperties

    queue = f"outage-{uuid.uuid4().hex[:8]}"
    server.create_queue(
        queue,
        QueueProperties(
            requires_session=True,
            requires_duplicate_detection=True,
            max_delivery_count=plan.max_delivery_count,
            lock_duration=plan.lock_s,
        ),
    )
    return queue


def _write_settings(plan: OutagePlan, server: Any, queue: str, fault: _Fault, workdir: Path) -> Path:
    settings = {
        "ServiceBusConnection": server.connection_string,
        "ORDERS_QUEUE_NAME": queue,
        "ORDERS_TRIGGER_CARDINALITY": plan.cardinality,
        "ORDERS_MAX_DELIVERY_COUNT": str(plan.max_delivery_count),
        "PYTHON_THREADPOOL_THREAD_COUNT": "16",  # as the Function App (infra/modules/functionapp.bicep)
        **fault.store_settings(),
        **plan.settings,
    }
    path = workdir / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": settings}))
    return path


class _Fault:
    """The store a scenario uses and how it is taken down and brought back."""

    def __init__(self, plan: OutagePlan, workdir: Path, azurite: Any) -> None:
        self.plan, self.workdir, self.azurite = plan, workdir, azurite
        self.at_start = plan.store == "sqlite" and plan.sqlite_fault == "read-only"
        self._locker: subprocess.Popen[bytes] | None = None
        self._proxy: FaultProxy | None = None
        self.table = f"outage{uuid.uuid4().hex[:10]}"
        self.db = workdir / "orders.db"
        if plan.store == "table":
            if azurite is None:
                raise ValueError("the table store needs azurite")
            self._proxy = FaultProxy(azurite.port)
        else:
            SqliteOrderStore(self.db, codec=ORDERS).close()  # the schema exists before the fault

    def store_settings(self) -> dict[str, str]:
        if self._proxy is None:
            return {"OrderStoreConnection": f"sqlite:///{self.db}"}
        conn = self.azurite.connection_string.replace(f":{self.azurite.port}/", f":{self._proxy.port}/")
        return {"OrderStoreConnection": conn, "ORDERS_TABLE_NAME": self.table}

    def down(self) -> None:
        if self._proxy is not None:
            self._proxy.cut()
        elif self.at_start:
            for path in self.workdir.glob("orders.db*"):
                path.chmod(0o444)
        else:
            self._locker = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(self.db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            assert self._locker.stdout is not None
            if self._locker.stdout.readline().strip() != b"locked":
                raise RuntimeError("the locker could not lock the database")

    def up(self) -> None:
        if self._proxy is not None:
            self._proxy.restore()
        elif self.at_start:
            for path in self.workdir.glob("orders.db*"):
                path.chmod(0o644)
        elif self._locker is not None:
            locker, self._locker = self._locker, None
            with contextlib.suppress(OSError):
                assert locker.stdin is not None
                locker.stdin.close()
            try:
                locker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                locker.kill()
                locker.wait()

    def open_store(self) -> OrderStore[Any]:
        if self.plan.store == "table":
            return TableOrderStore.from_connection_string(
                self.azurite.connection_string, self.table, codec=ORDERS
            )
        return SqliteOrderStore(self.db, codec=ORDERS)

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()


def _app_dir(plan: OutagePlan, workdir: Path) -> Path:
    """The repo, or a private app directory: function_app.py (a link) plus the plan's host.json."""
    if plan.host_json is None:
        return REPO
    app = workdir / "app"
    app.mkdir(exist_ok=True)
    link = app / "function_app.py"
    if not link.exists():
        link.symlink_to(REPO / "function_app.py")
    (app / "host.json").write_text(json.dumps(plan.host_json))
    return app


def _send(connection_string: str, queue: str, messages: list[OutgoingMessage]) -> None:
    send_messages(messages, connection_string=connection_string, namespace=None, queue=queue, progress=False)


def _start_host(app_dir: Path, settings: Path, log: Path, *, lock_free: bool) -> subprocess.Popen[bytes]:
    """The host; with lock_free (as root) without CAP_DAC_OVERRIDE, so a read-only file binds it too."""
    cmd = [
        sys.executable,
        "-m",
        "devstack.host",
        "--app-dir",
        str(app_dir),
        "--settings",
        str(settings),
        "--session-idle-timeout",
        "0.5",
        "--shutdown-grace",
        "2",
        "--log-format",
        "json",
        "--port",
        "0",
    ]
    return start_host_process(lock_free_command(cmd) if lock_free else cmd, log, REPO)


def _stop_host(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)


def _records(log: Path) -> list[dict[str, Any]]:
    records = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def _outcomes(log: Path) -> Counter[str]:
    return _summary(log)[0]


def _summary(log: Path) -> tuple[Counter[str], int, int, int]:
    """Outcomes over all deliveries, the highest delivery count seen, circuit open and close lines."""
    outcomes: Counter[str] = Counter()
    highest = opened = closed = 0
    for record in _records(log):
        extra = record.get("extra") or {}
        if extra.get("outcome") and extra.get("message_id"):
            outcomes[str(extra["outcome"])] += 1
        if isinstance(extra.get("delivery_count"), int):
            highest = max(highest, extra["delivery_count"])
        opened += extra.get("circuit") == "open"
        closed += extra.get("circuit") == "closed"
    return outcomes, highest, opened, closed


def _compare(store: OrderStore[Any], published: list[OutgoingMessage], report: OutageReport) -> None:
    """Lost, doubled and out-of-order steps: each order's applied steps against its published ones."""
    ledgers = {(x.customer_id, x.order_id): x for x in store.list_ledgers()}
    for key, steps in expected_final_state(published).items():
        ledger = ledgers.get(key)
        seqs = [a.sequence for a in ledger.applied] if ledger else []
        report.lost += max(0, len(steps) - len(set(seqs)))
        report.doubled += len(seqs) - len(set(seqs))
        if seqs != sorted(seqs):
            report.out_of_order += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="outage length (default 30)")
    parser.add_argument("--stores", default="sqlite,table", help="comma list of sqlite, table")
    parser.add_argument("--modes", default="one,many", help="comma list of trigger modes: one, many")
    parser.add_argument("--customers", type=int, default=8, help="sessions per scenario (default 8)")
    parser.add_argument("--orders", type=int, default=2, help="orders per customer (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (host logs, stores)")
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not stores or set(stores) - {"sqlite", "table"} or not modes or set(modes) - {"one", "many"}:
        parser.error("--stores takes sqlite,table and --modes one,many")
    if args.minutes <= 0:
        parser.error("--minutes must be more than 0")

    from devstack.emulator.config import make_config
    from devstack.emulator.server import EmulatorServer

    server = EmulatorServer(make_config({}), host="127.0.0.1", port=0)
    server.start()
    azurite = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    reports: list[OutageReport] = []
    try:
        if "table" in stores:
            from devstack.azurite import AzuriteTable, ensure_azurite_installed

            azurite = AzuriteTable(ensure_azurite_installed())
            azurite.start()
        plans = [
            OutagePlan(store, mode, args.minutes * 60, customers=args.customers, orders=args.orders)
            for store in stores
            for mode in modes
        ]
        threads = []
        for i, plan in enumerate(plans):

            def run(plan: OutagePlan = plan, i: int = i) -> None:
                reports.append(
                    run_outage(
                        plan,
                        server,
                        workdir / f"s{i}",
                        azurite=azurite,
                        say=lambda s: print("  " + s, flush=True),
                    )
                )

            thread = threading.Thread(target=run, name=plan.name)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    finally:
        server.stop()
        if azurite is not None:
            azurite.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(f"command: python -m bench.store_outage --minutes {args.minutes:g}", end="")
    print(f" --stores {args.stores} --modes {args.modes}")
    print("settings: the repo's host.json, the app's defaults (ORDERS_STORE_RETRY_SECONDS 420),")
    print("          queue lock 60 s, MaxDeliveryCount 10; `given back`: messages given back to the host")
    print("          after a full hold (one delivery spent each)")
    print_table([r.row() for r in reports], HEADER)
    for r in reports:
        if r.error:
            print(f"{r.name}: error: {r.error}")
    if args.keep:
        print(f"work dir: {workdir}")
    return 0 if reports and all(r.ok for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
