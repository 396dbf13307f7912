"""Issue 9, point 2: two local hosts on one SQLite store; one is frozen (SIGSTOP) past the session lock
duration, several times, so its sessions move to the other host while it holds a stale cache and an
invocation in flight. Afterwards: 0 dead-lettered, 0 lost, 0 double-applied, every order in sequence.

`pytest tests/reliability/test_lock_loss.py -s` prints the figures quoted in docs/reliability.md.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore
from tests.reliability import hostrun

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

LOCK_S = 2.0  # the queue's lock duration
PAUSE_S = 4.0  # each freeze: twice the lock duration
PAUSES = 4


def test_two_hosts_with_lock_loss_lose_nothing_and_apply_nothing_twice(
    servicebus_emulator: Any, fresh_queue: Callable[..., str], tmp_path: Path
) -> None:
    queue = fresh_queue(
        requires_session=True, requires_duplicate_detection=True, max_delivery_count=10, lock_duration=LOCK_S
    )
    db = tmp_path / "orders.db"
    SqliteOrderStore(db, codec=ORDERS).close()
    published = hostrun.workload(customers=8, orders=10, seed=21)
    n = len(published)
    waves = [published[n * i // PAUSES : n * (i + 1) // PAUSES] for i in range(PAUSES)]  # in send order
    settings = hostrun.write_settings(
        tmp_path / "local.settings.json",
        {
            "ServiceBusConnection": servicebus_emulator.connection_string,
            "ORDERS_QUEUE_NAME": queue,
            "OrderStoreConnection": f"sqlite:///{db}",
        },
    )
    cmd = hostrun.host_command(settings, until_idle=PAUSE_S + 6)
    logs = [tmp_path / "host-a.log", tmp_path / "host-b.log"]
    hosts = [hostrun.start_host(cmd, log) for log in logs]
    active = lambda: servicebus_emulator.active_count(queue)  # noqa: E731
    started = time.monotonic()
    while (
        not all("local host started" in log.read_text() for log in logs) and time.monotonic() - started < 60
    ):
        time.sleep(0.1)
    pauses = 0
    try:
        for wave in waves:  # sessions span waves: each freeze strands sessions the other host then takes
            victim = pauses % 2
            if hosts[victim].poll() is not None:  # it went idle and exited: a fresh one takes its place
                hosts[victim] = hostrun.start_host(cmd, logs[victim])
            size = logs[victim].stat().st_size
            sender = threading.Thread(
                target=hostrun.send, args=(servicebus_emulator.connection_string, queue, wave)
            )
            sender.start()
            deadline = time.monotonic() + 10
            while _outcome_lines_since(logs[victim], size) < 3 and time.monotonic() < deadline:
                time.sleep(0.005)  # freeze it while it holds sessions, mid-way through the wave
            hosts[victim].send_signal(signal.SIGSTOP)
            time.sleep(PAUSE_S)
            hosts[victim].send_signal(signal.SIGCONT)
            sender.join()
            pauses += 1
        codes = [
            hostrun.drain(cmd, log, active, deadline=time.monotonic() + 150, first=proc)
            for proc, log in zip(hosts, logs, strict=True)
        ]
    finally:
        for proc in hosts:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                hostrun.stop(proc)
    left, dead = active(), servicebus_emulator.dead_letter_count(queue)
    store = SqliteOrderStore(db, codec=ORDERS)
    try:
        problems = hostrun.store_problems(store, published)
    finally:
        store.close()
    summaries = [hostrun.summarise_log(log) for log in logs]
    redelivered = max(s.max_delivery_count for s in summaries)
    lock_lines = sum(log.read_text(errors="replace").count("session receiver failed") for log in logs)
    outcomes = summaries[0].outcomes + summaries[1].outcomes
    print(
        f"\n{len(published)} messages over 8 sessions, 2 hosts, {pauses} freezes of {PAUSE_S:g} s"
        f" (lock {LOCK_S:g} s); run {time.monotonic() - started:.0f} s\n"
        f"left in queue {left}; dead-lettered {dead}; orders not exactly as published {len(problems)}\n"
        f"outcomes over all deliveries {dict(sorted(outcomes.items()))};"
        f" highest delivery count {redelivered};"
        f" session receivers failed (lock lost) {lock_lines}; host exit codes {codes}"
    )
    assert pauses >= 2, "the run ended before the hosts could be frozen: the test proved nothing"
    assert redelivered > 1 or lock_lines > 0, "no lock was lost: the test proved nothing"
    assert (left, dead) == (0, 0)
    assert problems == []


def _outcome_lines_since(log: Path, offset: int) -> int:
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().count(b'"outcome"')
