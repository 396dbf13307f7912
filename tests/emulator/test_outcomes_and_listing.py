"""AMQP outcomes mapped as Service Bus maps them, and get-message-sessions paging/filters.

The Python SDK's abandon always sends `modified` with delivery-failed=True, so the outcomes other
clients send (`modified` without delivery-failed, with property changes, a plain `rejected`) and the
`released` it sends for buffered messages on close are sent here through the SDK's own AMQP stack
(its receive link), i.e. real frames on the wire.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiver,
)
from azure.servicebus._pyamqp.error import AMQPError
from azure.servicebus.exceptions import SessionCannotBeLockedError

from tests.emulator._helpers import client


def _receive_one(r: ServiceBusReceiver) -> ServiceBusReceivedMessage:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = r.receive_messages(max_message_count=1, max_wait_time=1)
        if got:
            return got[0]
    raise AssertionError("no message arrived")


def _settle(r: ServiceBusReceiver, m: ServiceBusReceivedMessage, outcome: str, **kwargs: Any) -> None:
    """Send one raw outcome on the receiver's link and wait for the broker's answer."""
    handler: Any = r._handler  # the SDK's pyamqp ReceiveClient
    handler.settle_messages(
        m._delivery_id, m._delivery_tag, outcome, await_outcome=True, outcome_timeout=10, **kwargs
    )


def test_modified_counts_as_abandon_with_property_changes_released_does_not_count(
    servicebus_emulator, fresh_queue
):
    q = fresh_queue(max_delivery_count=10)
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("x", application_properties={"keep": "yes", "step": 0}))
        with c.get_queue_receiver(q) as r:
            m = _receive_one(r)
            assert m.delivery_count == 0
            _settle(
                r, m, "modified", delivery_failed=False, message_annotations={"step": 1, "note": "abandoned"}
            )
            m = _receive_one(r)
            assert m.delivery_count == 1
            assert m.application_properties == {b"keep": b"yes", b"step": 1, b"note": b"abandoned"}
            _settle(r, m, "modified", delivery_failed=True)
            m = _receive_one(r)
            assert m.delivery_count == 2
            _settle(r, m, "released")  # back at once, not counted
            m = _receive_one(r)
            assert m.delivery_count == 2
            r.complete_message(m)
    assert servicebus_emulator.counts(q)["total"] == 0


def test_modified_counts_toward_max_delivery_count_released_never_does(servicebus_emulator, fresh_queue):
    q = fresh_queue(max_delivery_count=2)
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages([ServiceBusMessage("released"), ServiceBusMessage("modified")])
        with c.get_queue_receiver(q) as r:
            for _ in range(2):
                for m in (_receive_one(r), _receive_one(r)):
                    _settle(r, m, "released" if str(m) == "released" else "modified")
            [left] = r.peek_messages(max_message_count=10, sequence_number=1)
            assert (str(left), left.delivery_count) == ("released", 0)
        with c.get_queue_receiver(q, sub_queue="deadletter") as d:
            dead = _receive_one(d)
            assert (str(dead), dead.dead_letter_reason) == ("modified", "MaxDeliveryCountExceeded")
            d.complete_message(dead)


def test_plain_rejection_dead_letters_with_its_condition_and_description(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("x"))
        with c.get_queue_receiver(q) as r:
            err = AMQPError(condition=b"app:bad-order", description="total is negative")
            _settle(r, _receive_one(r), "rejected", error=err)
        with c.get_queue_receiver(q, sub_queue="deadletter") as d:
            dead = _receive_one(d)
            assert (dead.dead_letter_reason, dead.dead_letter_error_description) == (
                "app:bad-order",
                "total is negative",
            )
            d.complete_message(dead)


def test_list_sessions_pages_to_the_end(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    ids = {f"s{i:03d}" for i in range(151)}
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages([ServiceBusMessage("x", session_id=sid) for sid in ids])
        listed = list(c.list_queue_sessions(q, timeout=30))
    assert len(listed) == 151
    assert set(listed) == ids


def test_list_sessions_includes_state_only_and_filters_by_state_update(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(
                [ServiceBusMessage("x", session_id="with-msg"), ServiceBusMessage("y", session_id="st")]
            )
        with c.get_queue_receiver(q, session_id="st") as r:
            r.session.set_state(b"progress")
            r.complete_message(_receive_one(r))
        assert servicebus_emulator.session_counts(q) == {"with-msg": 1}
        assert sorted(c.list_queue_sessions(q)) == ["st", "with-msg"]
        before = datetime.now(UTC) - timedelta(seconds=5)
        assert list(c.list_queue_sessions(q, state_updated_after=before)) == ["st"]
        later = datetime.now(UTC) + timedelta(seconds=5)
        assert list(c.list_queue_sessions(q, state_updated_after=later)) == []
        with c.get_queue_receiver(q, session_id="st") as r:
            r.session.set_state(None)
        assert list(c.list_queue_sessions(q)) == ["with-msg"]


def test_specific_session_held_elsewhere_fails_at_once_holder_keeps_it(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    conn = servicebus_emulator.connection_string
    with client(conn) as c, ServiceBusClient.from_connection_string(conn, retry_total=0) as other:
        with c.get_queue_sender(q) as s:
            s.send_messages(
                [ServiceBusMessage("a1", session_id="sA"), ServiceBusMessage("a2", session_id="sA")]
            )
        for how in ("sA", NEXT_AVAILABLE_SESSION):
            with c.get_queue_receiver(q, session_id=how, max_wait_time=2) as holder:
                m = _receive_one(holder)
                with pytest.raises(SessionCannotBeLockedError):  # noqa: SIM117 - the attach itself must raise
                    with other.get_queue_receiver(q, session_id="sA", max_wait_time=2) as r2:
                        r2.receive_messages(max_wait_time=1)
                # refused at attach (a queued attach would end in OperationTimeoutError instead), and the
                # holder's session lock is untouched
                holder.session.renew_lock()
                holder.complete_message(m)
    assert servicebus_emulator.counts(q)["total"] == 0
