"""LockKeeper (devstack/host/locks.py): the receiver's own thread renews its session lock (or, without
sessions, its messages' locks) when little is left, for at most maxAutoLockRenewalDuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.host.locks import LockKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Session:
    def __init__(self, lock_s: float) -> None:
        self.lock_s = lock_s
        self.session_id = "cust-1"
        self.renewals = 0
        self.fail = False
        self.locked_until_utc = datetime.now(UTC) + timedelta(seconds=lock_s)

    def renew_lock(self) -> None:
        if self.fail:
            raise RuntimeError("SessionLockLostError")
        self.renewals += 1
        self.locked_until_utc = datetime.now(UTC) + timedelta(seconds=self.lock_s)


class Receiver:
    def __init__(self, session: Any = None) -> None:
        self.session = session
        self.renewed: list[str] = []

    def renew_message_lock(self, message: Any) -> None:
        self.renewed.append(message.message_id)
        message.locked_until_utc = datetime.now(UTC) + timedelta(seconds=30)


def test_the_session_lock_is_renewed_only_when_little_is_left_and_only_for_the_max_duration() -> None:
    clock, session = Clock(), Session(lock_s=30)
    keeper = LockKeeper(Receiver(session), max_duration_s=60, clock=clock)
    keeper.keep_alive()
    assert session.renewals == 0  # 30 s left: nothing to do
    session.locked_until_utc = datetime.now(UTC) + timedelta(seconds=5)  # 5 s left of a 30 s lock
    clock.now = 1.0
    keeper.keep_alive()
    assert session.renewals == 1
    clock.now = 1.05
    session.locked_until_utc = datetime.now(UTC) + timedelta(seconds=1)
    keeper.keep_alive()  # within CHECK_EVERY_S of the last look: not even a look
    assert session.renewals == 1
    clock.now = 61.0  # past maxAutoLockRenewalDuration: the lock is left to expire
    keeper.keep_alive()
    assert session.renewals == 1


def test_a_failed_renewal_is_one_warning_and_no_more_attempts(caplog: Any) -> None:
    clock, session = Clock(), Session(lock_s=2)
    session.locked_until_utc = datetime.now(UTC) + timedelta(seconds=0.2)
    session.fail = True
    keeper = LockKeeper(Receiver(session), max_duration_s=60, clock=clock)
    for step in range(5):
        clock.now = step * 1.0
        keeper.keep_alive()
    warnings = [r for r in caplog.records if r.getMessage() == "lock renewal failed"]
    assert len(warnings) == 1 and warnings[0].error == "RuntimeError"


def test_without_sessions_the_handled_messages_locks_are_renewed() -> None:
    from types import SimpleNamespace

    clock, receiver = Clock(), Receiver()
    near = SimpleNamespace(message_id="m-1", locked_until_utc=datetime.now(UTC) + timedelta(seconds=0.3))
    keeper = LockKeeper(receiver, max_duration_s=60, clock=clock)
    keeper.handling([near])
    keeper.keep_alive()
    assert receiver.renewed == ["m-1"]
    keeper.done()
    near.locked_until_utc = datetime.now(UTC)
    clock.now = 5.0
    keeper.keep_alive()
    assert receiver.renewed == ["m-1"]  # no longer handled: not renewed


def test_renewal_off_when_the_duration_is_zero() -> None:
    session = Session(lock_s=1)
    session.locked_until_utc = datetime.now(UTC)
    LockKeeper(Receiver(session), max_duration_s=0).keep_alive()
    assert session.renewals == 0
