"""Session exclusivity: a session is locked by at most one receiver at a time.

The SDK-level test runs several threads that keep accepting NEXT_AVAILABLE_SESSION, take one message,
leave a second one locked (so closing has to return it), hold the session briefly and close. A holder's
interval is [accept returned, close() called]: the emulator can only hand the session on after the
detach sent by close(), so a correct emulator never shows two overlapping intervals for one session.
(close() itself is not counted: the SDK keeps going for up to a second after the detach, joining its
keep-alive thread, while the session already belongs to the next receiver, as on the service.)

The broker-level tests pin the individual handover paths deterministically.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage
from azure.servicebus.exceptions import OperationTimeoutError

from devstack.emulator.broker import Broker, Session
from devstack.emulator.config import QueueProperties
from devstack.emulator.message import Message
from tests.emulator._helpers import client

SESSIONS = 3
PER_SESSION = 3


def test_next_available_session_is_never_held_twice(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True, lock_duration="PT30S", max_delivery_count=100)
    conn = servicebus_emulator.connection_string
    holds: list[tuple[str, float, float, str]] = []
    completed: dict[str, list[int]] = {f"s{i}": [] for i in range(SESSIONS)}
    batches: list[list[int]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()
    total = SESSIONS * PER_SESSION
    deadline = time.monotonic() + 14

    def done() -> bool:
        with guard:
            return sum(len(v) for v in completed.values()) >= total

    def worker() -> None:
        try:
            with client(conn) as c:
                while not done() and time.monotonic() < deadline:
                    r = c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1)
                    try:
                        r.__enter__()
                    except OperationTimeoutError:
                        continue
                    try:
                        t0 = time.monotonic()
                        sid = r.session.session_id
                        msgs = r.receive_messages(max_message_count=2, max_wait_time=0.5)
                        with guard:
                            batches.append([int(str(m)) for m in msgs])
                        if msgs:
                            r.complete_message(msgs[0])  # msgs[1:] stay locked until close returns them
                            with guard:
                                completed[sid].append(int(str(msgs[0])))
                        time.sleep(0.3)
                        t1 = time.monotonic()
                    finally:
                        r.close()
                    with guard:
                        holds.append((sid, t0, t1, r._name))
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    with client(conn) as c, c.get_queue_sender(q) as s:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # let receivers park as next-available waiters first
        s.send_messages(
            [
                ServiceBusMessage(str(i * 10 + k), session_id=f"s{i}")
                for k in range(PER_SESSION)
                for i in range(SESSIONS)
            ]
        )
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    overlaps = [(a, b) for a in holds for b in holds if a is not b and a[0] == b[0] and a[1] <= b[1] < a[2]]
    assert not overlaps, f"session held by two receivers at once: {overlaps}"
    # every session was eventually received, all of it, in FIFO order
    assert completed == {f"s{i}": [i * 10 + k for k in range(PER_SESSION)] for i in range(SESSIONS)}
    for b in batches:
        assert b == sorted(b)
    assert servicebus_emulator.counts(q)["total"] == 0


# ---------------------------------------------------------------------- broker level


@dataclass(eq=False)
class _FakeConsumer:
    name: str
    credit: int = 0
    receive_and_delete: bool = False
    closed: bool = False
    got: list[int] = field(default_factory=list)
    lost: int = 0

    def deliver(self, message: Message, lock_token: uuid.UUID | None, locked_until_ms: int | None) -> None:
        self.credit -= 1
        self.got.append(message.seq)

    def session_lost(self) -> None:
        self.lost += 1
        self.closed = True


def _queue(lock_s: float = 30.0):
    return Broker().add_queue("q", QueueProperties(requires_session=True, lock_duration=lock_s))


def _send(q, sid: str, n: int) -> None:
    for _ in range(n):
        q.enqueue(Message(session_id=sid))


def _park(q, c: _FakeConsumer, handed: dict[str, Session]):
    def cb(s: Session | None) -> bool:
        if s is not None:
            handed[c.name] = s
            q.pump_session(s)
        return True

    return q.wait_for_session(c, cb)


def test_release_with_locked_messages_hands_session_to_exactly_one_waiter():
    q = _queue()
    a = _FakeConsumer("a", credit=2)
    s = q.acquire_session(a, "s")
    _send(q, "s", 3)
    assert len(a.got) == 2
    handed: dict[str, Session] = {}
    w1, w2 = _FakeConsumer("w1", credit=5), _FakeConsumer("w2", credit=5)
    _park(q, w1, handed)
    _park(q, w2, handed)
    q.remove_consumer(a)  # receiver closed with two messages locked
    assert list(handed) == ["w1"]
    assert s.owner is w1
    assert w1.got == [1, 2, 3]  # FIFO: the two returned messages first, in order
    assert w2.got == []


def test_named_accept_of_expired_session_does_not_also_wake_a_waiter():
    q = _queue(lock_s=0.001)
    a = _FakeConsumer("a", credit=1)
    _send(q, "s", 1)
    s = q.acquire_session(a, None)
    assert s is not None
    q.pump_session(s)
    assert a.got
    handed: dict[str, Session] = {}
    w = _FakeConsumer("w", credit=5)
    _park(q, w, handed)
    time.sleep(0.01)  # lock expired, timer not run yet
    b = _FakeConsumer("b", credit=5)
    assert q.acquire_session(b, "s") is s
    assert s.owner is b and handed == {}
    assert a.lost == 1


def test_session_is_not_handed_to_a_closed_waiter():
    q = _queue()
    handed: dict[str, Session] = {}
    gone, alive = _FakeConsumer("gone"), _FakeConsumer("alive", credit=1)
    _park(q, gone, handed)
    _park(q, alive, handed)
    gone.closed = True
    _send(q, "s", 1)
    assert list(handed) == ["alive"] and alive.got


def test_session_refused_by_waiter_goes_to_the_next_one():
    q = _queue()
    handed: dict[str, Session] = {}
    refusing = _FakeConsumer("refusing")
    q.wait_for_session(refusing, lambda s: False)
    nxt = _FakeConsumer("next", credit=1)
    _park(q, nxt, handed)
    _send(q, "s", 1)
    assert list(handed) == ["next"] and nxt.got
    assert q.sessions["s"].owner is nxt
