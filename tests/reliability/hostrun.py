"""Running the real local host (`python -m devstack.host`) as a subprocess against the emulator, and
checking what it left behind: the queue, the dead-letter queue, the store, the host's log lines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench import common
from orders_cli.sender import send_messages
from orders_cli.traffic import OutgoingMessage, PublishPlan, expected_final_state, generate_messages
from shared.store.base import OrderStore

REPO = Path(__file__).resolve().parents[2]


def publish(
    connection_string: str, queue: str, *, customers: int, orders: int, seed: int
) -> list[OutgoingMessage]:
    """A shuffled workload (no poison: every message must be applied) under ids unique to this call."""
    messages = workload(customers=customers, orders=orders, seed=seed)
    send(connection_string, queue, messages)
    return messages


def send(connection_string: str, queue: str, messages: list[OutgoingMessage]) -> None:
    send_messages(messages, connection_string=connection_string, namespace=None, queue=queue, progress=False)


def workload(*, customers: int, orders: int, seed: int) -> list[OutgoingMessage]:
    plan = PublishPlan(
        customers=customers,
        orders_per_customer=orders,
        shuffle=True,
        seed=seed,
        id_prefix=f"r{uuid.uuid4().hex[:6]}",
    )
    return generate_messages(plan)


def write_settings(path: Path, values: Mapping[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": dict(values)}))
    return path


def host_command(settings: Path, *, until_idle: float, lock_free: bool = False) -> list[str]:
    """The host; with lock_free=True, as root without CAP_DAC_OVERRIDE so file permissions bind it
    (a read-only file is read-only for root too, as it is for the non-root user CI runs as)."""
    cmd = [
        sys.executable,
        "-m",
        "devstack.host",
        "--app-dir",
        str(REPO),
        "--settings",
        str(settings),
        "--until-idle",
        str(until_idle),
        "--session-idle-timeout",
        "0.5",
        "--shutdown-grace",
        "2",
        "--log-format",
        "json",  # summarise_log reads the JSON lines
        "--port",
        "0",  # no fixed HTTP port: parallel hosts must not collide
    ]
    return common.lock_free(cmd) if lock_free else cmd


def start_host(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    return common.start_host_process(cmd, log, REPO)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def drain(
    cmd: list[str],
    log: Path,
    active: Callable[[], int],
    *,
    deadline: float,
    first: subprocess.Popen[bytes] | None = None,
) -> list[int]:
    """Wait for the host to go idle and exit; start it again while messages remain (a lock held by a
    paused or killed receiver outlives an idle exit). Returns the exit codes."""
    codes: list[int] = []
    proc = first or start_host(cmd, log)
    while True:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop(proc)
        codes.append(proc.returncode)
        if active() == 0 or time.monotonic() >= deadline:
            return codes
        proc = start_host(cmd, log)


@dataclass(slots=True)
class LogSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    max_delivery_count: int = 0
    retry_lines: int = 0  # a burst that gave the message back to the host
    recovered_lines: int = 0  # a burst that ended in success inside the invocation
    tracebacks: int = 0


def summarise_log(log: Path) -> LogSummary:
    summary = LogSummary()
    for line in log.read_text(errors="replace").splitlines():
        if "Traceback" in line:
            summary.tracebacks += 1
        try:
            record = json.loads(line)
        except ValueError:
            continue
        extra = record.get("extra") or {}
        message = record.get("message") or ""
        if message == "store recovered after retries":
            summary.recovered_lines += 1
        if extra.get("outcome") and extra.get("message_id"):
            summary.outcomes[extra["outcome"]] += 1
            summary.retry_lines += extra["outcome"] == "retry"
            summary.max_delivery_count = max(
                summary.max_delivery_count, int(extra.get("delivery_count") or 1)
            )
    return summary


def store_problems(store: OrderStore, published: list[OutgoingMessage]) -> list[str]:
    """Every order exactly as published: each step once, in sequence order, nothing left parked."""
    problems: list[str] = []
    ledgers = {(x.customer_id, x.order_id): x for x in store.list_ledgers()}
    for key, steps in expected_final_state(published).items():
        ledger = ledgers.get(key)
        got = [a.step for a in ledger.applied] if ledger else []
        seqs = [a.sequence for a in ledger.applied] if ledger else []
        if got != steps or seqs != list(range(1, len(seqs) + 1)) or (ledger and ledger.parked):
            problems.append(f"{key}: applied {got} (sequences {seqs}), expected {steps}")
    return problems
