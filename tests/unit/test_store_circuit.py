"""The process-wide store circuit (shared/store/circuit.py) with many invocations at once: while the
store is down only one probe at a time reaches it, everyone else waits without calling it, the first
success resumes all of them, and the whole outage logs exactly two lines. Real threads and time, with
short back-off; the assertions are bounds, not timings."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from shared.service import OrderService
from shared.settings import AppSettings
from shared.store import retry
from shared.store.base import ConcurrencyConflict, StoreUnavailable
from shared.store.circuit import StoreCircuit
from shared.store.memory import InMemoryOrderStore
from tests.support.builders import step

POLICY = retry.RetryPolicy(budget_s=30, first_delay_s=0.02, max_delay_s=0.1)


class FlakyStore:
    """A store call that fails while `down` is set, and records how many calls overlap."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.lock = threading.Lock()
        self.calls = self.calls_while_down = self.in_flight = self.most_in_flight_while_down = 0

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            self.in_flight += 1
            if self.down.is_set():
                self.calls_while_down += 1
                self.most_in_flight_while_down = max(self.most_in_flight_while_down, self.in_flight)
        try:
            time.sleep(0.005)  # a round trip, so overlapping calls would be seen
            if self.down.is_set():
                raise StoreUnavailable("connection refused")
            return "ok"
        finally:
            with self.lock:
                self.in_flight -= 1


def circuit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if hasattr(r, "circuit")]


def test_sixteen_sessions_wait_on_one_probe_and_resume_together(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="orders.processing")
    circuit = StoreCircuit(POLICY)
    store = FlakyStore()
    store.down.set()
    results: list[str] = []
    errors: list[BaseException] = []
    reopens: list[int] = []

    def invocation() -> None:
        try:
            results.append(retry.run(store, POLICY, circuit=circuit, before_probe=lambda: reopens.append(1)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=invocation) for _ in range(16)]
    for t in threads:
        t.start()
    outage_s = 1.5
    time.sleep(outage_s)
    assert circuit.is_open
    store.down.clear()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and results == ["ok"] * 16
    assert store.most_in_flight_while_down <= 16  # before it opened, every session may have tried once
    # After the first failures, one probe at a time: the calls while down are the first wave (at most
    # 16) plus probes spaced by at least half the back-off floor (0.01 s); without the circuit, 16
    # sessions retrying on their own would make ~16x as many.
    assert store.calls_while_down <= 16 + outage_s / 0.01
    assert len(reopens) <= store.calls_while_down + 1  # the store is reopened per probe, not per session
    assert circuit_lines(caplog) == [
        "order store unavailable: processing paused until it answers",
        "order store available again: processing resumed",
    ]
    assert circuit.openings == 1 and not circuit.is_open


def test_probes_never_overlap_once_the_circuit_is_open() -> None:
    circuit = StoreCircuit(POLICY)
    store = FlakyStore()
    store.down.set()
    circuit.failed(False, StoreUnavailable("down"))  # opened before anyone calls
    done = threading.Event()

    def invocation() -> None:
        try:
            retry.run(store, POLICY, circuit=circuit)
        finally:
            done.set()

    threads = [threading.Thread(target=invocation) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    store.down.clear()
    for t in threads:
        t.join(timeout=30)
    assert store.calls_while_down >= 2  # it did probe while down...
    assert store.most_in_flight_while_down == 1  # ...one probe at a time


def test_a_waiter_gives_up_at_its_budget_without_calling_the_store(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="orders.processing")
    policy = retry.RetryPolicy(budget_s=0.3, first_delay_s=5, max_delay_s=5)
    circuit = StoreCircuit(policy)
    circuit.failed(False, StoreUnavailable("down"))
    assert circuit.enter(time.monotonic() + 10) is True  # another invocation probes (and takes its time)
    calls: list[int] = []
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="no attempt within"):
        retry.run(lambda: calls.append(1), policy, circuit=circuit)
    assert calls == []
    assert 0.3 <= time.monotonic() - started < 5  # held for the budget, not until the next probe
    assert circuit.is_open
    assert circuit_lines(caplog) == ["order store unavailable: processing paused until it answers"]


def test_with_no_budget_each_delivery_still_makes_one_attempt() -> None:
    """ORDERS_STORE_RETRY_SECONDS=0 (no hold): an open circuit must not fail redeliveries untried."""
    policy = retry.RetryPolicy(budget_s=0, first_delay_s=5, max_delay_s=5)
    circuit = StoreCircuit(policy)
    calls: list[int] = []

    def fails_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable("down")
        return "ok"

    with pytest.raises(StoreUnavailable):
        retry.run(fails_once, policy, circuit=circuit)  # the first delivery: one attempt, given back
    assert circuit.is_open
    assert retry.run(fails_once, policy, circuit=circuit) == "ok"  # the redelivery probes at once
    assert calls == [1, 1] and not circuit.is_open


def test_a_conflict_is_an_answer_and_closes_instead_of_opening() -> None:
    circuit = StoreCircuit(POLICY)
    conflicts = iter([ConcurrencyConflict("ledger changed")])

    def once_conflicting() -> str:
        for exc in conflicts:
            raise exc
        return "ok"

    assert retry.run(once_conflicting, POLICY, circuit=circuit) == "ok"
    assert circuit.openings == 0

    circuit.failed(False, StoreUnavailable("down"))
    assert circuit.enter(time.monotonic() + 5) is True  # this caller probes...
    circuit.answered(True)  # ...and the store answered (even a conflict is an answer)
    assert not circuit.is_open


def test_a_success_that_began_before_the_outage_does_not_close_it() -> None:
    circuit = StoreCircuit(POLICY)
    began = time.monotonic()
    time.sleep(0.01)
    circuit.failed(False, StoreUnavailable("down"))
    circuit.answered(False, began)  # a slow read that was already under way when the store went down
    assert circuit.is_open
    circuit.answered(False, time.monotonic())  # one that began after: the store is back
    assert not circuit.is_open


def test_a_failure_that_began_before_the_store_came_back_does_not_reopen_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orders.processing")
    circuit = StoreCircuit(POLICY)
    circuit.failed(False, StoreUnavailable("down"))
    began = time.monotonic()  # a request sent into the outage, answered (timed out) only much later
    time.sleep(0.01)
    circuit.answered(False, time.monotonic())  # meanwhile the store came back
    circuit.failed(False, StoreUnavailable("read timed out"), began)
    assert not circuit.is_open and circuit.openings == 1
    circuit.failed(False, StoreUnavailable("down again"), time.monotonic())  # a new failure does open it
    assert circuit.is_open and circuit.openings == 2
    assert len(circuit_lines(caplog)) == 3


def test_a_stopping_worker_releases_every_waiting_invocation_at_once() -> None:
    policy = retry.RetryPolicy(budget_s=60, first_delay_s=30, max_delay_s=30)
    circuit = StoreCircuit(policy)
    circuit.failed(False, StoreUnavailable("down"))
    gave_up: list[float] = []

    def invocation() -> None:
        with pytest.raises(StoreUnavailable):
            retry.run(lambda: None, policy, circuit=circuit)
        gave_up.append(time.monotonic())

    threads = [threading.Thread(target=invocation) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    released = time.monotonic()
    circuit.release()
    for t in threads:
        t.join(timeout=20)
    assert len(gave_up) == 4 and max(gave_up) - released < 20  # not the 60 s budget
    circuit.answered(False, time.monotonic())  # the store is back: the next outage holds again
    circuit.failed(False, StoreUnavailable("down again"))
    assert circuit.enter(time.monotonic() + 0.05) is None  # waited (deadline), was not released at once


def test_the_service_holds_every_session_on_its_one_circuit(caplog: pytest.LogCaptureFixture) -> None:
    """OrderService end to end: 8 sessions arrive while the store is down; they hold (nothing is given
    back to the host), the store is reopened per probe, and all apply once it is back."""
    caplog.set_level(logging.INFO, logger="orders.processing")

    class DownStore(InMemoryOrderStore):
        def __init__(self) -> None:
            super().__init__()
            self.down = True
            self.commits_while_down = 0

        def get_ledger(self, session_id: str, stream_key: str):  # type: ignore[no-untyped-def,unused-ignore]
            if self.down:
                self.commits_while_down += 1
                raise StoreUnavailable("connection refused")
            return super().get_ledger(session_id, stream_key)

    store = DownStore()
    service = OrderService(AppSettings(store_retry_seconds=30), store, retry_policy=POLICY)
    outcomes: list[str] = []

    def invocation(n: int) -> None:
        outcomes.append(service.handle(step("order.placed", 1, customer=f"cust-{n}")).outcome.value)

    threads = [threading.Thread(target=invocation, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    store.down = False
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["applied"] * 8
    assert not [r for r in caplog.records if getattr(r, "outcome", None) == "retry"]  # none given back
    assert circuit_lines(caplog) == [
        "order store unavailable: processing paused until it answers",
        "order store available again: processing resumed",
    ]
    assert store.commits_while_down <= 8 + 1.0 / 0.01
