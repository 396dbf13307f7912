"""The store circuit: one per process, shared by every invocation, so an outage pauses processing
instead of every session hammering a dead store (and spending its messages' deliveries).

Closed: every invocation calls the store. The first availability failure (`StoreUnavailable`, not a
`ConcurrencyConflict`: a conflict is an answer) opens it, with one log line. Open: invocations wait on
the circuit instead of calling the store; one at a time is let through as the probe (its own real work,
after the store is reopened), spaced by the retry policy's back-off; the others wait. The first success
anywhere closes it, with one log line, and wakes every waiter. Nothing in between is logged.

How long one invocation waits is not decided here: `shared/store/retry.run` bounds it by the retry
budget (ORDERS_STORE_RETRY_SECONDS), which host.json's functionTimeout and lock renewal must exceed
(docs/reliability.md "Store outages pause processing" has the delivery budget this buys).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("orders.processing")


class Backoff(Protocol):
    """How long to wait before probe n (1-based): shared/store/retry.py `RetryPolicy`."""

    def delay(self, attempt: int, rng: Callable[[], float]) -> float: ...


class StoreCircuit:
    """Closed or open, plus whose turn it is to probe. Thread-safe; never calls the store itself.

    `sleep`, when given (tests on a fake clock), replaces the condition wait: the circuit is then not
    woken early by a close, which a single-threaded fake-clock test does not need."""

    def __init__(
        self,
        policy: Backoff,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self._cond = threading.Condition()
        self._opened_at: float | None = None  # None: closed
        self._closed_at = float("-inf")
        self._probing = False
        self._next_probe_at = 0.0
        self._failures = 0  # availability failures since it opened (the probe back-off step)
        self._probes = 0
        self._waiting = 0
        self._first_error = ""
        self._released = False  # the worker is stopping: nobody waits any more
        self.openings = 0  # how many times it opened (tests, the bench)

    @property
    def is_open(self) -> bool:
        with self._cond:
            return self._opened_at is not None

    def enter(self, deadline: float, tried: bool = True) -> bool | None:
        """Wait until the caller may call the store: False at once while closed; True when it is the
        caller's turn to probe an open circuit; None when `deadline` (clock time) passed first. A caller
        that has not `tried` yet gets one probe at its deadline if nobody is probing then, so no delivery
        is spent without a single attempt (a budget shorter than the probe interval, or 0)."""
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    now = self._clock()
                    if self._opened_at is None:
                        return False
                    if self._released:
                        return None
                    if not self._probing and now >= self._next_probe_at:
                        self._probing = True
                        self._probes += 1
                        return True
                    if now >= deadline:
                        if tried or self._probing:
                            return None
                        self._probing = True
                        self._probes += 1
                        return True
                    wake = deadline if self._probing else min(deadline, self._next_probe_at)
                    self._wait(max(0.001, wake - now))
            finally:
                self._waiting -= 1

    def answered(self, probe: bool, started_at: float | None = None) -> None:
        """The store answered (a success, or a conflict: also an answer): close if open. An attempt that
        began (`started_at`) before the circuit opened proves nothing about the outage: it is ignored."""
        with self._cond:
            if probe:
                self._probing = False
            opened = self._opened_at
            stale = not probe and started_at is not None and opened is not None and started_at < opened
            if opened is not None and not stale:
                log.warning(
                    "order store available again: processing resumed",
                    extra={
                        "circuit": "closed",
                        "outage_s": round(self._clock() - opened, 3),
                        "probes": self._probes,
                        "waiting_invocations": self._waiting,
                        "error": self._first_error,
                    },
                )
                self._opened_at = None
                self._closed_at = self._clock()
                self._failures = self._probes = 0
                self._released = False
            self._cond.notify_all()

    def failed(self, probe: bool, exc: BaseException, started_at: float | None = None) -> None:
        """The store did not answer (an availability failure): open if closed; schedule the next probe.
        An attempt that began (`started_at`) before the circuit last closed is old news: ignored."""
        with self._cond:
            now = self._clock()
            if probe:
                self._probing = False
            if (
                not probe
                and started_at is not None
                and self._opened_at is None
                and started_at < self._closed_at
            ):
                self._cond.notify_all()
                return
            self._failures += 1
            if self._opened_at is None:
                self._opened_at = now
                self._first_error = type(exc).__name__
                self.openings += 1
                log.warning(
                    "order store unavailable: processing paused until it answers",
                    extra={"circuit": "open", "error": type(exc).__name__, "detail": str(exc)[:300]},
                )
            self._next_probe_at = max(self._next_probe_at, now + self.policy.delay(self._failures, self._rng))
            self._cond.notify_all()

    def abandoned(self, probe: bool) -> None:
        """The probe ended without a verdict on availability (a non-store exception): let the next one go."""
        with self._cond:
            if probe:
                self._probing = False
                self._next_probe_at = self._clock()
            self._cond.notify_all()

    def release(self) -> None:
        """The worker is stopping: every invocation waiting on the open circuit gives up now (its message
        is abandoned, as the host abandons it anyway) instead of holding the process open for the rest
        of its budget. Lasts until the circuit closes."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def _wait(self, seconds: float) -> None:
        if self._sleep is None:
            self._cond.wait(seconds)
            return
        self._cond.release()
        try:
            self._sleep(seconds)
        finally:
            self._cond.acquire()
