"""Message locks, abandon, MaxDeliveryCount, dead-lettering, defer, peek, scheduling, TTL."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError, MessageNotFoundError

from tests.emulator._helpers import client, wait_until


def _one(r, wait=2):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msgs = r.receive_messages(max_message_count=1, max_wait_time=wait)
        if msgs:
            return msgs[0]
    raise AssertionError("no message received")


def test_lock_expiry_redelivers_with_incremented_delivery_count(servicebus_emulator, fresh_queue):
    q = fresh_queue(lock_duration="PT1S")
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("x"))
        with c.get_queue_receiver(q, max_wait_time=3) as r:
            first = _one(r)
            assert first.delivery_count == 0
            renewed = r.renew_message_lock(first)
            assert renewed >= first.locked_until_utc
            # don't settle: the lock lapses, the message comes back with delivery_count 1
            second = _one(r, wait=4)
            assert second.sequence_number == first.sequence_number
            assert second.delivery_count == 1
            assert second.lock_token != first.lock_token
            with pytest.raises(MessageLockLostError):
                r.complete_message(first)
            r.complete_message(second)
    assert servicebus_emulator.counts(q)["total"] == 0


def test_abandon_then_max_delivery_count_dead_letters(servicebus_emulator, fresh_queue):
    q = fresh_queue(max_delivery_count=3, lock_duration="PT30S")
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("poison", application_properties={"kind": "poison"}))
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            counts = []
            for _ in range(3):
                m = _one(r)
                counts.append(m.delivery_count)
                r.abandon_message(m)
            assert counts == [0, 1, 2]
            assert r.receive_messages(max_wait_time=0.5) == []
        assert servicebus_emulator.dead_letter_count(q) == 1
        with c.get_queue_receiver(q, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=1) as d:
            m = _one(d)
            assert m.dead_letter_reason == "MaxDeliveryCountExceeded"
            assert m.dead_letter_error_description
            assert m.application_properties[b"kind"] == b"poison"
            d.complete_message(m)
    assert servicebus_emulator.counts(q) == {
        "active": 0,
        "locked": 0,
        "deferred": 0,
        "scheduled": 0,
        "dead_lettered": 0,
        "total": 0,
    }


def test_dead_letter_with_reason_and_description(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("bad", subject="order"))
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            m = _one(r)
            r.dead_letter_message(m, reason="ValidationFailed", error_description="missing customer id")
        with c.get_queue_receiver(q, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=1) as d:
            dm = _one(d)
            assert dm.dead_letter_reason == "ValidationFailed"
            assert dm.dead_letter_error_description == "missing customer id"
            assert dm.subject == "order"
            assert dm.sequence_number == m.sequence_number
            d.complete_message(dm)


def test_defer_and_receive_deferred_by_sequence_number(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages([ServiceBusMessage("later"), ServiceBusMessage("now")])
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            later = _one(r)
            seq = later.sequence_number
            r.defer_message(later)
            now = _one(r)
            assert str(now) == "now"
            r.complete_message(now)
            assert servicebus_emulator.counts(q)["deferred"] == 1
            [peeked] = r.peek_messages(max_message_count=5, sequence_number=1)
            assert peeked.state == ServiceBusMessageState.DEFERRED
            [d] = r.receive_deferred_messages([seq])
            assert str(d) == "later" and d.sequence_number == seq
            r.complete_message(d)
            with pytest.raises(MessageNotFoundError):
                r.receive_deferred_messages([seq])
    assert servicebus_emulator.counts(q)["total"] == 0


def test_peek_does_not_lock_and_is_ordered(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages([ServiceBusMessage(f"p{i}") for i in range(5)])
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            first = r.peek_messages(max_message_count=3)
            rest = r.peek_messages(max_message_count=10)
            assert [str(m) for m in first + rest] == [f"p{i}" for i in range(5)]
            assert servicebus_emulator.counts(q)["locked"] == 0
            with pytest.raises(ValueError):
                r.complete_message(first[0])


def test_scheduled_messages_and_cancel(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    with client(servicebus_emulator.connection_string) as c:  # noqa: SIM117 - nesting shows which call must raise
        with c.get_queue_sender(q) as s, c.get_queue_receiver(q, max_wait_time=1) as r:
            when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1.5)
            keep, drop = s.schedule_messages([ServiceBusMessage("keep"), ServiceBusMessage("drop")], when)
            assert keep < drop
            s.cancel_scheduled_messages(drop)
            msg = ServiceBusMessage("via-send")
            msg.scheduled_enqueue_time_utc = when
            s.send_messages(msg)
            assert servicebus_emulator.counts(q)["scheduled"] == 2
            peeked = r.peek_messages(max_message_count=5)
            assert {m.state for m in peeked} == {ServiceBusMessageState.SCHEDULED}
            assert r.receive_messages(max_wait_time=0.3) == []
            got: list[Any] = []
            deadline = time.monotonic() + 10
            while len(got) < 2 and time.monotonic() < deadline:
                got += r.receive_messages(max_message_count=2, max_wait_time=1)
            assert sorted(str(m) for m in got) == ["keep", "via-send"]
            assert all(m.enqueued_time_utc is not None for m in got)
            for m in got:
                r.complete_message(m)
    assert servicebus_emulator.counts(q)["total"] == 0


def test_ttl_expiry_dead_letters_when_configured(servicebus_emulator, fresh_queue):
    dl = fresh_queue(dead_letter_on_expiration=True)
    drop = fresh_queue(dead_letter_on_expiration=False, default_ttl="PT0.5S")
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(dl) as s:
            s.send_messages(ServiceBusMessage("short", time_to_live=datetime.timedelta(seconds=1)))
            s.send_messages(ServiceBusMessage("long"))
        with c.get_queue_sender(drop) as s:
            s.send_messages(ServiceBusMessage("gone"))
        assert wait_until(lambda: servicebus_emulator.dead_letter_count(dl) == 1, timeout=5)
        assert wait_until(lambda: servicebus_emulator.counts(drop)["total"] == 0, timeout=5)
        assert servicebus_emulator.dead_letter_count(drop) == 0
        with c.get_queue_receiver(dl, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=1) as d:
            m = _one(d)
            assert str(m) == "short"
            assert m.dead_letter_reason == "TTLExpiredException"
            d.complete_message(m)
    assert servicebus_emulator.counts(dl)["active"] == 1


def test_forward_dead_lettered_messages(servicebus_emulator, fresh_queue):
    target = fresh_queue()
    q = fresh_queue(max_delivery_count=1, forward_dead_lettered_to=target)
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("fwd"))
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            r.abandon_message(_one(r))
        assert wait_until(lambda: servicebus_emulator.counts(target)["active"] == 1, timeout=3)
        with c.get_queue_receiver(target, max_wait_time=1) as r:
            m = _one(r)
            assert m.dead_letter_reason == "MaxDeliveryCountExceeded"
            assert m.dead_letter_source == q
            r.complete_message(m)
