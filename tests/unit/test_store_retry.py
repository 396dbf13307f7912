"""Transient store failures are retried inside the invocation (shared/store/retry.py, OrderService):
bounded by time, exponential back-off with jitter, the session evicted after every failure and the
store reopened after an outage; one log line per burst. Runs on a fake clock."""

from __future__ import annotations

import logging

import pytest

from shared.engine.outcomes import Outcome
from shared.service import OrderService
from shared.settings import AppSettings
from shared.store import retry
from shared.store.base import ConcurrencyConflict, StoreUnavailable, TransientStoreError
from shared.store.memory import InMemoryOrderStore
from tests.support.builders import step


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FailingFor:
    """An operation that raises `error` until the fake clock reaches `until`, then returns "ok"."""

    def __init__(self, clock: FakeClock, until: float, error: TransientStoreError) -> None:
        self.clock, self.until, self.error, self.calls = clock, until, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.clock.now < self.until:
            raise self.error
        return "ok"


def test_delays_grow_exponentially_with_jitter_and_are_capped() -> None:
    policy = retry.RetryPolicy(budget_s=60, first_delay_s=0.1, max_delay_s=5)
    low = [policy.delay(n, lambda: 0.0) for n in range(1, 10)]
    high = [policy.delay(n, lambda: 1.0) for n in range(1, 10)]
    assert high == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert low == [h / 2 for h in high]  # jitter keeps at least half the step: sessions spread out


def test_an_outage_shorter_than_the_budget_is_ridden_out() -> None:
    clock = FakeClock()
    op = FailingFor(clock, clock.now + 12, StoreUnavailable("down"))
    burst = retry.RetryBurst()
    assert retry.run(op, retry.RetryPolicy(budget_s=20), clock=clock, sleep=clock.sleep, burst=burst) == "ok"
    assert burst.attempts == op.calls > 2 and burst.retried
    assert 12 <= burst.elapsed_s <= 12 + 5  # recovered within one capped back-off of the store's return


def test_the_budget_bounds_the_burst_then_the_last_error_is_raised() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def always_down() -> None:
        calls.append(clock.now)
        raise StoreUnavailable("still down")

    burst = retry.RetryBurst()
    with pytest.raises(StoreUnavailable, match="still down"):
        retry.run(always_down, retry.RetryPolicy(budget_s=20), clock=clock, sleep=clock.sleep, burst=burst)
    assert calls[-1] - calls[0] <= 20  # no attempt starts after the budget
    assert 20 - 5 <= burst.elapsed_s <= 20  # and it used most of it
    assert burst.attempts == len(calls) and burst.errors == ["StoreUnavailable"] * len(calls)


def test_a_zero_budget_means_no_retry_and_other_errors_are_never_retried() -> None:
    clock = FakeClock()
    op = FailingFor(clock, clock.now + 1, StoreUnavailable("down"))
    with pytest.raises(StoreUnavailable):
        retry.run(op, retry.RetryPolicy(budget_s=0), clock=clock, sleep=clock.sleep)
    assert op.calls == 1 and clock.sleeps == []

    def broken() -> None:
        raise KeyError("a bug, not an outage")

    with pytest.raises(KeyError):
        retry.run(broken, retry.RetryPolicy(budget_s=20), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_before_probe_runs_before_each_retry_and_its_own_failure_is_just_another_attempt() -> None:
    clock = FakeClock()
    op = FailingFor(clock, clock.now + 1, StoreUnavailable("down"))
    reopens: list[float] = []

    def reopen() -> None:
        reopens.append(clock.now)
        if len(reopens) <= 2:
            raise StoreUnavailable("reopen failed too")

    burst = retry.RetryBurst()
    policy = retry.RetryPolicy(budget_s=20)
    assert retry.run(op, policy, before_probe=reopen, clock=clock, sleep=clock.sleep, burst=burst) == "ok"
    assert len(reopens) == burst.attempts - 1  # every attempt but the first is a probe after a reopen
    assert op.calls == burst.attempts - 2  # the two failed reopens were attempts that never reached the store


class OutageStore(InMemoryOrderStore):
    """Commits fail with `error` until the fake clock passes `until`."""

    def __init__(self, clock: FakeClock, until: float, error: TransientStoreError) -> None:
        super().__init__()
        self.clock, self.until, self.error = clock, until, error

    def commit(self, changes: object) -> None:
        if self.clock.now < self.until:
            raise self.error
        super().commit(changes)  # type: ignore[arg-type]


def service_on(store: InMemoryOrderStore, clock: FakeClock, budget: float = 20) -> OrderService:
    settings = AppSettings(store_retry_seconds=budget)
    return OrderService(settings, store, sleep=clock.sleep, clock=clock)


def test_service_rides_out_an_outage_reopening_the_store_and_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orders.processing")
    clock = FakeClock()
    store = OutageStore(clock, clock.now + 8, StoreUnavailable("database is locked"))
    result = service_on(store, clock).handle(step("order.placed", 1))
    assert result.outcome is Outcome.APPLIED
    retries = len(clock.sleeps)
    assert retries >= 3
    assert store.reopened == retries and store.evictions == ["cust-1"] * retries
    burst_lines = [r for r in caplog.records if "retr" in r.getMessage()]
    assert [r.getMessage() for r in burst_lines] == ["store recovered after retries"]  # not one per attempt
    line = burst_lines[0]
    assert getattr(line, "attempts", None) == retries + 1
    assert getattr(line, "errors", None) == ["StoreUnavailable"]
    assert line.exc_info is None  # an expected outage logs no traceback


def test_service_gives_the_message_back_after_the_budget(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="orders.processing")
    clock = FakeClock()
    store = OutageStore(clock, clock.now + 3600, StoreUnavailable("readonly database"))
    with pytest.raises(StoreUnavailable):
        service_on(store, clock, budget=25).handle(step("order.placed", 1))
    assert 20 <= clock.now - 1000.0 <= 25
    lines = [r for r in caplog.records if getattr(r, "outcome", None) == "retry"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert getattr(lines[0], "attempts", 0) > 3
    assert store.evictions[-1] == "cust-1"  # the redelivery re-reads, wherever it lands


def test_a_conflict_evicts_the_session_and_is_retried_without_reopening() -> None:
    clock = FakeClock()
    store = OutageStore(clock, clock.now + 0.01, ConcurrencyConflict("ledger changed since it was read"))
    assert service_on(store, clock).handle(step("order.placed", 1)).outcome is Outcome.APPLIED
    assert store.evictions == ["cust-1"] and store.reopened == 0


def test_the_apps_policy_probes_at_least_ten_times_per_budget_and_at_most_every_5_s() -> None:
    assert retry.RetryPolicy.for_budget(420).max_delay_s == 5.0
    assert retry.RetryPolicy.for_budget(4).max_delay_s == pytest.approx(0.4)
    policy = retry.RetryPolicy.for_budget(4)
    assert max(policy.delay(n, lambda: 1.0) for n in range(1, 30)) <= 0.4
