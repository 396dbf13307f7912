"""Retrying transient store failures inside one invocation: exponential back-off with jitter, bounded
by time, so a short store outage costs no delivery count and a long one one delivery per bound.

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

from shared.store.base import TransientStoreError

T = TypeVar("T")

DEFAULT_RETRY_SECONDS = 20.0
# One store attempt's own worst case, on top of the retry budget: the Table client's read timeout (30 s)
# bounds one request; SQLite's busy_timeout is 10 s (docs/store.md "Transient failures"). host.json's
# functionTimeout and lock renewal must outlast budget + this (shared/host_json.py checks it at start).
ATTEMPT_WORST_CASE_S = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based) failing waits min(max_delay, first_delay * 2**(n-1)), jittered to between
    half and all of that ("equal jitter": spreads sessions that failed together, never waits ~0).
    No new attempt starts once `budget_s` has passed since the first; 0 disables retrying."""

    budget_s: float = DEFAULT_RETRY_SECONDS
    first_delay_s: float = 0.1
    max_delay_s: float = 5.0

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
    before_retry: Callable[[TransientStoreError], None] = lambda exc: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    burst: RetryBurst | None = None,
) -> T:
    """Call `operation` until it returns or the budget is spent; then its last TransientStoreError is
    raised. Any other exception propagates at once. `before_retry` runs after each failure that will be
    retried (evict caches, reopen connections) and may itself raise TransientStoreError (counted as the
    attempt's failure)."""
    burst = burst if burst is not None else RetryBurst()
    started = clock()
    while True:
        burst.attempts += 1
        try:
            result = operation()
        except TransientStoreError as exc:
            burst.errors.append(type(exc).__name__)
            wait = policy.delay(burst.attempts, rng)
            burst.elapsed_s = clock() - started
            if burst.elapsed_s + wait > policy.budget_s:
                raise
            sleep(wait)
            try:
                before_retry(exc)
            except TransientStoreError as again:
                burst.errors.append(type(again).__name__)
            continue
        burst.elapsed_s = clock() - started
        return result
