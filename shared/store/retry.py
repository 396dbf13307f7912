"""Retrying transient store failures inside one invocation: bounded by time (ORDERS_STORE_RETRY_SECONDS),
so an outage costs one delivery per budget, not one per failed attempt. Availability failures wait on
the process's store circuit (shared/store/circuit.py: one probe at a time, exponential back-off with
jitter); conflicts back off on their own.

Why here and not in the SDKs: the SQLite driver and the Table SDK retry single requests for a few
seconds; an outage of tens of seconds (a locked file, a restarting storage emulator, a read-only file
being fixed) needs the whole message decision re-run against a reopened store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from shared.store.base import ConcurrencyConflict, StoreUnavailable, TransientStoreError
from shared.store.circuit import StoreCircuit

T = TypeVar("T")

DEFAULT_RETRY_SECONDS = 20.0  # a RetryPolicy built without a budget (the app passes its own)
# One store attempt's own worst case, on top of the hold budget: Table 3 tries x (connect 5 s + read 30 s)
# + back-off <= 110 s (shared/store/table.py `_client_options`); SQLite's busy_timeout is 10 s. Then the
# step itself and the settlement: HOLD_MARGIN_S. host.json's functionTimeout and lock renewal must outlast
# budget + both (shared/host_json.py checks it at start, tests/infra/bicep_rules.py for the shipped values;
# docs/reliability.md "Store outages pause processing").
ATTEMPT_WORST_CASE_S = 110.0
HOLD_MARGIN_S = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based) failing waits min(max_delay, first_delay * 2**(n-1)), jittered to between
    half and all of that ("equal jitter": spreads sessions that failed together, never waits ~0).
    No new attempt starts once `budget_s` has passed since the first; 0 disables retrying."""

    budget_s: float = DEFAULT_RETRY_SECONDS
    first_delay_s: float = 0.1
    max_delay_s: float = 5.0

    @classmethod
    def for_budget(cls, budget_s: float) -> RetryPolicy:
        """The app's policy: probes at most a tenth of the budget apart (and at most 5 s), so the store's
        return is noticed well within one invocation's hold, whatever the budget."""
        return cls(budget_s=budget_s, max_delay_s=min(5.0, max(0.05, budget_s / 10)))

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * rng()


@dataclass(slots=True)
class RetryBurst:
    """What one call of `run` went through (for its single log line)."""

    attempts: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def retried(self) -> bool:
        return self.attempts > 1


def run(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    circuit: StoreCircuit | None = None,
    after_failure: Callable[[TransientStoreError], None] = lambda exc: None,
    before_probe: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    burst: RetryBurst | None = None,
) -> T:
    """Call `operation` until it returns or `policy.budget_s` has passed; then its last
    TransientStoreError is raised (or StoreUnavailable, if the circuit never let it try). Any other
    exception propagates at once.

    An availability failure opens `circuit` (shared by the process; a private one when None): the call
    then waits on it, and tries again only when it is its turn to probe (after `before_probe`: reopen
    the store) or when another caller's success closed it. A ConcurrencyConflict is an answer, not an
    outage: it is retried after its own back-off, the circuit untouched. `after_failure` runs after
    each failure (evict what was cached about the failed work). No attempt starts after the budget."""
    burst = burst if burst is not None else RetryBurst()
    circuit = circuit if circuit is not None else StoreCircuit(policy, clock=clock, sleep=sleep, rng=rng)
    started = clock()
    deadline = started + policy.budget_s
    last: TransientStoreError | None = None
    conflicts = 0
    while True:
        probe = circuit.enter(deadline, tried=burst.attempts > 0)
        if probe is None:
            burst.elapsed_s = clock() - started
            if last is not None:
                raise last
            raise StoreUnavailable(f"order store unavailable: no attempt within {policy.budget_s:g} s")
        burst.attempts += 1
        attempt_started = clock()
        try:
            if probe:
                before_probe()
            result = operation()
        except ConcurrencyConflict as exc:
            circuit.answered(probe, attempt_started)
            last = exc
            burst.errors.append(type(exc).__name__)
            after_failure(exc)
            conflicts += 1
            wait = policy.delay(conflicts, rng)
            burst.elapsed_s = clock() - started
            if burst.elapsed_s + wait > policy.budget_s:
                raise
            sleep(wait)
            continue
        except TransientStoreError as exc:
            circuit.failed(probe, exc, attempt_started)
            last = exc
            burst.errors.append(type(exc).__name__)
            after_failure(exc)
            burst.elapsed_s = clock() - started
            if clock() >= deadline:
                raise
            continue
        except BaseException:
            circuit.abandoned(probe)
            raise
        circuit.answered(probe, attempt_started)
        burst.elapsed_s = clock() - started
        return result
