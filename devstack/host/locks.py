"""Lock renewal done by the thread that owns the receiver, for up to host.json maxAutoLockRenewalDuration.

The extension renews a session's lock (and, without sessions, each message's) in the background while it
holds it. The local host did that with the SDK's AutoLockRenewer, whose threads then used the receiver's
AMQP connection while the receiver's own thread was receiving, settling or closing it. The pure-Python
AMQP stack of azure-servicebus is not thread-safe: with short locks every run logged SDK errors at ERROR
("Unexpected error occurred (AttributeError(\"'NoneType' object has no attribute 'recv_into'\")). Handler
shutting down.", issue 19 point 8). Here the receiver's thread renews between receives and while it waits
for an invocation (the host's wait loop calls `keep_alive` every few tens of milliseconds), so one thread
at a time ever touches a connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("devstack.host")

CHECK_EVERY_S = 0.1  # how often keep_alive looks at the clocks at most
MAX_MARGIN_S = 10.0  # renew when this little is left (the SDK's AutoLockRenewer uses 10 s)


def _left(locked_until: datetime | None) -> float | None:
    if locked_until is None:
        return None
    return (locked_until - datetime.now(UTC)).total_seconds()


class LockKeeper:
    """Keeps one receiver's session lock, or the locks of the messages it is handling, alive."""

    def __init__(self, receiver: Any, max_duration_s: float, *, clock: Callable[[], float] = time.monotonic):
        self.receiver = receiver
        self.max_duration_s = max_duration_s
        self._clock = clock
        self._session_deadline = clock() + max_duration_s
        self._span: dict[int, float] = {}  # per lock: its length when last taken/renewed
        self._messages: dict[int, tuple[Any, float]] = {}  # id -> (message, renewal deadline)
        self._next_check = 0.0
        self._failed = False

    def handling(self, messages: Iterable[Any]) -> None:
        """Without sessions: renew these messages' locks while they are handled."""
        deadline = self._clock() + self.max_duration_s
        self._messages = {id(m): (m, deadline) for m in messages}

    def done(self) -> None:
        self._messages = {}

    def keep_alive(self) -> None:
        """Renew what is close to expiring; a clock read when nothing is (called in tight loops)."""
        now = self._clock()
        if self.max_duration_s <= 0 or self._failed or now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY_S
        session = getattr(self.receiver, "session", None)
        try:
            locked_until = getattr(session, "locked_until_utc", None)
            if (
                session is not None
                and now < self._session_deadline
                and self._due(id(session), _left(locked_until))
            ):
                session.renew_lock()
                self._taken(id(session), _left(session.locked_until_utc))
            for key, (message, deadline) in list(self._messages.items()):
                if now < deadline and self._due(key, _left(getattr(message, "locked_until_utc", None))):
                    self.receiver.renew_message_lock(message)
                    self._taken(key, _left(message.locked_until_utc))
        except Exception as exc:  # the lock is lost or the link is gone: settling will say so
            self._failed = True
            log.warning(
                "lock renewal failed",
                extra={
                    "session_id": getattr(session, "session_id", None),
                    "error": type(exc).__name__,
                    "detail": str(exc)[:300],
                },
            )

    def _due(self, key: int, left: float | None) -> bool:
        if left is None:
            return False
        span = self._span.setdefault(key, max(left, 0.0))  # first sight: the lock's length, near enough
        return left <= max(0.5, min(MAX_MARGIN_S, span / 2))

    def _taken(self, key: int, left: float | None) -> None:
        if left is not None:
            self._span[key] = max(left, 0.0)
