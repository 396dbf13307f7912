"""Connect, send (single/batch), receive in both modes, message fidelity, errors."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import MessagingEntityNotFoundError, ServiceBusError

from devstack.emulator.config import QueueProperties
from devstack.emulator.server import EmulatorServer
from tests.emulator._helpers import client


def test_send_receive_complete_sets_broker_annotations(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("hello"))
        assert servicebus_emulator.counts(q)["active"] == 1
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            [m] = r.receive_messages(max_message_count=1, max_wait_time=2)
            assert str(m) == "hello"
            assert m.delivery_count == 0
            assert m.sequence_number is not None and m.sequence_number > 0
            assert m.enqueued_time_utc is not None and m.enqueued_time_utc >= before
            assert m.locked_until_utc is not None and m.locked_until_utc > m.enqueued_time_utc
            assert isinstance(m.lock_token, uuid.UUID)
            assert servicebus_emulator.counts(q)["locked"] == 1
            r.complete_message(m)
    assert servicebus_emulator.counts(q)["total"] == 0


def test_batch_send_keeps_order_and_increasing_sequence_numbers(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            batch = s.create_message_batch()
            for i in range(25):
                batch.add_message(ServiceBusMessage(f"m{i}"))
            s.send_messages(batch)
            s.send_messages([ServiceBusMessage("list-a"), ServiceBusMessage("list-b")])
        got: list[Any] = []
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            while len(got) < 27:
                msgs = r.receive_messages(max_message_count=30, max_wait_time=1)
                assert msgs, f"only received {len(got)}"
                for m in msgs:
                    r.complete_message(m)
                got.extend(msgs)
    assert [str(m) for m in got] == [f"m{i}" for i in range(25)] + ["list-a", "list-b"]
    seqs = [m.sequence_number or 0 for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_receive_and_delete_removes_on_delivery(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        with c.get_queue_receiver(
            q, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=1
        ) as r:
            msgs = r.receive_messages(max_message_count=2, max_wait_time=2)
            while len(msgs) < 2:
                more = r.receive_messages(max_message_count=2, max_wait_time=1)
                assert more
                msgs += more
            assert [str(m) for m in msgs] == ["a", "b"]
            with pytest.raises(ValueError):
                r.complete_message(msgs[0])
    assert servicebus_emulator.counts(q)["total"] == 0


def test_properties_and_application_properties_round_trip(servicebus_emulator, fresh_queue):
    q = fresh_queue()
    app: dict[str | bytes, Any] = {
        "str": "text ü",
        "int": 42,
        "neg": -(2**20),
        "float": 1.5,
        "bool": True,
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "none": None,
    }
    sent = ServiceBusMessage(
        b"\x00binary body",
        content_type="application/octet-stream",
        correlation_id="corr-1",
        subject="subj",
        to="dest",
        reply_to="reply-queue",
        message_id="mid-1",
        time_to_live=datetime.timedelta(minutes=5),
        application_properties=app,
    )
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(sent)
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            [m] = r.receive_messages(max_wait_time=2)
            r.complete_message(m)
    assert b"".join(m.body) == b"\x00binary body"
    assert m.content_type == "application/octet-stream"
    assert m.correlation_id == "corr-1"
    assert m.subject == "subj"
    assert m.to == "dest"
    assert m.reply_to == "reply-queue"
    assert m.message_id == "mid-1"
    assert m.time_to_live == datetime.timedelta(minutes=5)
    props = m.application_properties
    assert props is not None
    assert props[b"str"] == "text ü".encode()
    assert props[b"int"] == 42
    assert props[b"neg"] == -(2**20)
    assert props[b"float"] == 1.5
    assert props[b"bool"] is True
    assert props[b"uuid"] == app["uuid"]
    assert props[b"none"] is None


def test_one_megabyte_message_spans_frames_on_premium():
    """Standard refuses a message over 256 KB (test_limits.py); a Premium entity with a 2 MiB message size
    takes 1 MiB, which crosses Premium's 1 MiB frames in both directions."""
    srv = EmulatorServer(None, limits="premium")
    srv.start()
    q = srv.create_queue("big", QueueProperties(max_message_size_kib=2048))
    body = bytes(range(256)) * 4096  # 1 MiB
    with srv, client(srv.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage(body))
        with c.get_queue_receiver(q, max_wait_time=3) as r:
            [m] = r.receive_messages(max_wait_time=3)
            assert b"".join(m.body) == body
            r.complete_message(m)


def test_unknown_entity_raises_entity_not_found(servicebus_emulator):
    with client(servicebus_emulator.connection_string) as c:
        with pytest.raises(MessagingEntityNotFoundError), c.get_queue_sender("does-not-exist") as s:
            s.send_messages(ServiceBusMessage("x"))
        with pytest.raises(MessagingEntityNotFoundError):  # noqa: SIM117 - nesting shows which call must raise
            with c.get_queue_receiver("does-not-exist", max_wait_time=1) as r:
                r.receive_messages(max_wait_time=1)


def test_non_session_receiver_on_session_queue_is_rejected(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c, pytest.raises(ServiceBusError) as info:  # noqa: SIM117 - nesting shows which call must raise
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            r.receive_messages(max_wait_time=1)
    assert "not-allowed" in str(info.value)


def test_send_without_session_id_to_session_queue_fails(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_session=True)
    with client(servicebus_emulator.connection_string) as c, c.get_queue_sender(q) as s:  # noqa: SIM117 - nesting shows which call must raise
        with pytest.raises(ServiceBusError):
            s.send_messages(ServiceBusMessage("no session"))
    assert servicebus_emulator.counts(q)["total"] == 0


def test_duplicate_detection_by_message_id(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_duplicate_detection=True, duplicate_window="PT10M")
    with client(servicebus_emulator.connection_string) as c, c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("first", message_id="dup"))
        s.send_messages(ServiceBusMessage("second", message_id="dup"))
        s.send_messages(ServiceBusMessage("other", message_id="other"))
    assert servicebus_emulator.counts(q)["active"] == 2


def test_duplicate_detection_is_queue_wide_and_outlives_the_message(servicebus_emulator, fresh_queue):
    """As Service Bus (not partitioned): the id alone is the key, whatever the session, and it is remembered
    for the window after the first message was received and completed (a replay under it is dropped)."""
    q = fresh_queue(requires_session=True, requires_duplicate_detection=True, duplicate_window="PT10M")
    with client(servicebus_emulator.connection_string) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("a", session_id="cust-a", message_id="ord-1:1"))
        with c.get_queue_receiver(q, session_id="cust-a", max_wait_time=2) as r:
            [m] = r.receive_messages(max_message_count=1, max_wait_time=2)
            r.complete_message(m)
        assert servicebus_emulator.counts(q)["total"] == 0
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage("again", session_id="cust-a", message_id="ord-1:1"))
            s.send_messages(ServiceBusMessage("b", session_id="cust-b", message_id="ord-1:1"))
            s.send_messages(ServiceBusMessage("b", session_id="cust-b", message_id="cust-b:ord-1:1"))
    assert servicebus_emulator.counts(q)["total"] == 1  # both sends "succeeded"; only the new id is kept


def test_a_refused_send_does_not_enter_the_duplicate_history(servicebus_emulator, fresh_queue):
    """A message the queue refuses (no session id on a session queue) was never sent into it, so the
    corrected resend under the same id is kept, not silently dropped."""
    q = fresh_queue(requires_session=True, requires_duplicate_detection=True, duplicate_window="PT10M")
    with client(servicebus_emulator.connection_string) as c, c.get_queue_sender(q) as s:
        with pytest.raises(ServiceBusError):
            s.send_messages(ServiceBusMessage("no session", message_id="cust-a:ord-1:1"))
        s.send_messages(ServiceBusMessage("fixed", session_id="cust-a", message_id="cust-a:ord-1:1"))
    assert servicebus_emulator.counts(q)["total"] == 1


def test_duplicate_window_expires(servicebus_emulator, fresh_queue):
    q = fresh_queue(requires_duplicate_detection=True, duplicate_window="PT0.3S")
    import time

    with client(servicebus_emulator.connection_string) as c, c.get_queue_sender(q) as s:
        s.send_messages(ServiceBusMessage("first", message_id="dup"))
        time.sleep(0.5)
        s.send_messages(ServiceBusMessage("again", message_id="dup"))
    assert servicebus_emulator.counts(q)["active"] == 2
