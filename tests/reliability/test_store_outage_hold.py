"""Issue 19, point 3, time-compressed: a store outage many times longer than one delivery's hold budget
pauses processing and dead-letters nothing; the host resumes by itself when the store returns.

The same scenario as `python -m bench.store_outage` (the real 30-minute run, docs/reliability.md), with
every duration scaled down: ORDERS_STORE_RETRY_SECONDS 4 s (shipped 420 s), functionTimeout 10 s (shipped
10 min), queue lock 4 s (shipped 60 s), MaxDeliveryCount 10 as shipped, and an outage of 20 s = 5 hold
budgets (shipped: 30 min = 4.3 budgets). The delivery budget is the same arithmetic as in production:
each delivery holds at least the budget, so (10 - 1) x 4 s = 36 s of outage dead-letters nothing.

Both stores x both trigger modes run concurrently (independent queues, stores and hosts):
- Table on Azurite: the endpoint is cut mid-run (a proxy on 127.0.0.1 refuses and resets connections);
- SQLite: the database file is read-only (unwritable, a misconfiguration) from the start.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.store_outage import HEADER, OutagePlan, OutageReport, hold_then_stop, run_outage

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.timeout(420)]

BUDGET_S = 4.0
OUTAGE_S = 20.0
MAX_DELIVERY = 10
HOST_JSON = {
    "version": "2.0",
    "functionTimeout": "00:00:10",  # budget 4 s + a store attempt (~1 s refused, ~0 s read-only) + margin
    "extensions": {
        "serviceBus": {
            "prefetchCount": 0,
            "autoCompleteMessages": True,
            "maxAutoLockRenewalDuration": "00:02:00",
            "maxConcurrentSessions": 16,
            "maxMessageBatchSize": 32,
        }
    },
}


def plan(store: str, cardinality: str) -> OutagePlan:
    return OutagePlan(
        store,
        cardinality,
        OUTAGE_S,
        sqlite_fault="read-only",
        host_json=HOST_JSON,
        settings={"ORDERS_STORE_RETRY_SECONDS": str(BUDGET_S)},
        lock_s=4.0,
        max_delivery_count=MAX_DELIVERY,
        customers=4,
        orders=2,
        drain_deadline_s=150.0,
    )


def test_an_outage_of_many_hold_budgets_dead_letters_nothing_and_resumes(
    servicebus_emulator: Any, azurite: Any, tmp_path: Path
) -> None:
    plans = [plan(store, mode) for store in ("table", "sqlite") for mode in ("one", "many")]
    reports: list[OutageReport] = []
    threads = []
    for i, p in enumerate(plans):

        def run(p: OutagePlan = p, i: int = i) -> None:
            reports.append(run_outage(p, servicebus_emulator.server, tmp_path / f"s{i}", azurite=azurite))

        thread = threading.Thread(target=run, name=p.name)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout=400)
    for r in reports:
        print(dict(zip(HEADER, r.row(), strict=True)))
    assert len(reports) == len(plans), "a scenario did not finish"
    # what the outage may cost each message: one delivery per hold budget, plus the one that succeeds; the
    # store's return is noticed within a probe interval (budget / 10) and one attempt (~1.5 s refused)
    most = math.ceil((OUTAGE_S + BUDGET_S / 10 + 1.5) / BUDGET_S) + 1
    for r in reports:
        assert r.error is None, (r.name, r.error)
        assert r.outage_s >= OUTAGE_S, r.name
        assert (r.lost, r.doubled, r.out_of_order, r.dead_lettered, r.left) == (0, 0, 0, 0, 0), r.name
        assert r.recover_s is not None, f"{r.name}: the queue did not drain after the store came back"
        # one line when the circuit opened, one when it closed: nothing per attempt or per session
        assert (r.circuit_opened, r.circuit_closed) == (1, 1), r.name
        # the outage outlasted a delivery's hold (so deliveries were spent) but each cost stays bounded
        assert r.given_back >= 1, f"{r.name}: no invocation reached its budget; the outage was too short"
        assert 2 <= r.max_delivery_count <= min(most, MAX_DELIVERY - 1), r.name


def test_a_host_stopped_during_an_outage_exits_without_waiting_out_the_hold(
    servicebus_emulator: Any, tmp_path: Path
) -> None:
    """Ctrl-C / SIGTERM while invocations hold (budget 120 s): the host releases them and exits."""
    slow = OutagePlan(
        "sqlite",
        "one",
        0.0,
        sqlite_fault="read-only",
        host_json={**HOST_JSON, "functionTimeout": "00:05:00", "extensions": {"serviceBus": {}}},
        settings={"ORDERS_STORE_RETRY_SECONDS": "120"},
        customers=2,
        orders=1,
    )
    stopped = hold_then_stop(slow, servicebus_emulator.server, tmp_path)
    assert stopped.exit_code == 0
    assert stopped.circuit_opened == 1  # the invocations were holding when it was stopped
    assert stopped.stop_s < 60, f"the host took {stopped.stop_s:.0f} s to stop"
