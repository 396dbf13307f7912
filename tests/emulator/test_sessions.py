"""Sessions: next-available, named sessions, exclusivity, FIFO, state, lock renew/expiry, peek."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from tests.emulator._helpers import client, wait_until


def _send(c, q, items):
    with c.get_queue_sender(q) as s:
        for sid, body in items:
            s.send_messages(ServiceBusMessage(body, session_id=sid))


def _drain(r, expected, wait=1):
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < expected and time.monotonic() < deadline:
        got += r.receive_messages(max_message_count=expected - len(got), max_wait_time=wait)
    return got


def test_shipped_queue_next_available_fifo_per_session(servicebus_emulator):
    q = servicebus_emulator.queue_name
    with client(servicebus_emulator.connection_string) as c:
        _send(c, q, [("A", "a1"), ("B", "b1"), ("A", "a2"), ("B", "b2"), ("A", "a3")])
        assert servicebus_emulator.session_counts(q) == {"A": 3, "B": 2}
        seen = {}
        for _ in range(2):
            with c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r:
                sid = r.session.session_id
                want = 3 if sid == "A" else 2
                msgs = _drain(r, want)
                assert all(m.session_id == sid for m in msgs)
                seqs = [m.sequence_number for m in msgs]
                assert seqs == sorted(seqs)
                for m in msgs:
                    r.complete_message(m)
                seen[sid] = [str(m) for m in msgs]
    assert seen == {"A": ["a1", "a2", "a3"], "B": ["b1", "b2"]}
    assert servicebus_emulator.counts(q)["total"] == 0


def test_named_session_is_exclusive(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True, lock_duration="PT5S")
    with client(servicebus_emulator.connection_string) as c:
        _send(c, q, [("S1", "x")])
        with c.get_queue_receiver(q, session_id="S1", max_wait_time=1) as r1:
            [m] = _drain(r1, 1)
            assert m.session_id == "S1"
            with pytest.raises(SessionCannotBeLockedError):  # noqa: SIM117 - nesting shows which call must raise
                with c.get_queue_receiver(q, session_id="S1", max_wait_time=1) as r2:
                    r2.receive_messages(max_wait_time=1)
            r1.complete_message(m)
        # released on close: can be locked again straight away
        with c.get_queue_receiver(q, session_id="S1", max_wait_time=1) as r3:
            assert r3.session.session_id == "S1"


def test_next_available_skips_locked_sessions(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c:
        _send(c, q, [("one", "1"), ("two", "2")])
        with c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r1:
            with c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r2:
                assert {r1.session.session_id, r2.session.session_id} == {"one", "two"}
                [m2] = _drain(r2, 1)
                assert m2.session_id == r2.session.session_id
                r2.complete_message(m2)
            [m1] = _drain(r1, 1)
            r1.complete_message(m1)


def test_next_available_with_nothing_available_times_out(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c, pytest.raises(OperationTimeoutError):  # noqa: SIM117 - nesting shows which call must raise
        with c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1) as r:
            r.receive_messages(max_wait_time=1)


def test_next_available_waits_for_a_session_to_arrive(servicebus_emulator, fresh_queue):
    import threading

    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c:
        t = threading.Timer(0.8, lambda: _send(c, q, [("late", "x")]))
        t.start()
        try:
            with c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as r:
                assert r.session.session_id == "late"
                [m] = _drain(r, 1)
                r.complete_message(m)
        finally:
            t.join()


def test_session_state_round_trip(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c:
        _send(c, q, [("st", "x")])
        with c.get_queue_receiver(q, session_id="st", max_wait_time=1) as r:
            assert r.session.get_state() in (None, b"")
            r.session.set_state(b"\x00checkpoint-1")
            assert r.session.get_state() == b"\x00checkpoint-1"
        with c.get_queue_receiver(q, session_id="st", max_wait_time=1) as r:
            assert r.session.get_state() == b"\x00checkpoint-1"
            r.session.set_state(None)
            assert r.session.get_state() in (None, b"")
            [m] = _drain(r, 1)
            r.complete_message(m)


def test_session_lock_renew_and_expiry(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True, lock_duration="PT2S")
    with client(servicebus_emulator.connection_string) as c:
        _send(c, q, [("L", "first"), ("L", "second")])
        with c.get_queue_receiver(q, session_id="L", max_wait_time=1) as r:
            first_until = r.session.locked_until_utc
            assert first_until is not None
            [m] = _drain(r, 1)
            assert m.delivery_count == 0
            time.sleep(1.2)
            renewed = r.session.renew_lock()
            assert renewed > first_until
            r.complete_message(m)  # still holding the lock thanks to the renewal
            [m2] = _drain(r, 1)
            assert str(m2) == "second"
            assert wait_until(lambda: servicebus_emulator.counts(q)["locked"] == 0, timeout=6)
            with pytest.raises(SessionLockLostError):
                r.complete_message(m2)
        # the unsettled message came back with its delivery counted
        with c.get_queue_receiver(q, session_id="L", max_wait_time=1) as r:
            [again] = _drain(r, 1)
            assert str(again) == "second"
            assert again.delivery_count == 1
            r.complete_message(again)


def test_session_peek_filters_by_session(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c:
        _send(c, q, [("P", "p1"), ("Q", "q1"), ("P", "p2")])
        with c.get_queue_receiver(q, session_id="P", max_wait_time=1) as r:
            peeked = r.peek_messages(max_message_count=10)
            assert [str(m) for m in peeked] == ["p1", "p2"]
            assert all(m.session_id == "P" for m in peeked)
    assert servicebus_emulator.counts(q)["active"] == 3
