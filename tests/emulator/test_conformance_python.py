"""The shared conformance scenarios (tests/emulator/scenarios.py) through azure-servicebus (Python).

Each implementation only uses the SDK, like its Node twin in tests/emulator/node/conformance.cjs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusReceiver,
)
from azure.servicebus.exceptions import SessionCannotBeLockedError

from tests.emulator.scenarios import BY_ID as SCENARIOS
from tests.emulator.scenarios import applicable, create_entities

Impl = Callable[[str, dict[str, str]], None]
IMPLEMENTATIONS: dict[str, Impl] = {}
# extra ServiceBusClient keywords for every client the implementations make: the uamqp run
# (tests/emulator/side_clients/uamqp_conformance.py) sets uamqp_transport and the TLS endpoint here
CLIENT_OPTIONS: dict[str, Any] = {}


def implements(scenario_id: str) -> Callable[[Impl], Impl]:
    """Register the Python implementation of a scenario id."""

    def register(fn: Impl) -> Impl:
        assert scenario_id in SCENARIOS, f"unknown scenario id {scenario_id}"
        IMPLEMENTATIONS[scenario_id] = fn
        return fn

    return register


def _client(conn: str, **kw: Any) -> ServiceBusClient:
    kw = {**CLIENT_OPTIONS, **kw}
    kw.setdefault("retry_total", 1)
    return ServiceBusClient.from_connection_string(conn, retry_backoff_factor=0.1, **kw)


def _receive(r: ServiceBusReceiver, n: int, timeout: float = 10) -> list[ServiceBusReceivedMessage]:
    got: list[ServiceBusReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += r.receive_messages(max_message_count=n - len(got), max_wait_time=1)
    assert len(got) == n, f"expected {n} messages, got {len(got)}"
    return got


def _send(c: ServiceBusClient, q: str, *msgs: ServiceBusMessage) -> None:
    with c.get_queue_sender(q) as s:
        s.send_messages(list(msgs))


# ---------------------------------------------------------------------------------------------- sessions
@implements("session-next-available")
def session_next_available(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, *(ServiceBusMessage(f"{sid}{i}", session_id=sid) for i in range(3) for sid in ("A", "B")))
        with (
            c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as r1,
            c.get_queue_receiver(q, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as r2,
        ):
            assert r1.session is not None and r2.session is not None
            assert {r1.session.session_id, r2.session.session_id} == {"A", "B"}
            for r in (r1, r2):
                msgs = _receive(r, 3)
                sid = r.session.session_id
                assert [str(m) for m in msgs] == [f"{sid}0", f"{sid}1", f"{sid}2"]
                for m in msgs:
                    r.complete_message(m)


@implements("session-specific")
def session_specific(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("a", session_id="A"), ServiceBusMessage("b", session_id="B"))
        with c.get_queue_receiver(q, session_id="B", max_wait_time=2) as r:
            [m] = _receive(r, 1)
            assert (str(m), m.session_id) == ("b", "B")
            r.complete_message(m)
            assert r.receive_messages(max_wait_time=1) == []


@implements("session-cannot-be-locked")
def session_cannot_be_locked(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c, _client(conn, retry_total=0) as other:
        _send(c, q, ServiceBusMessage("x", session_id="S"))
        with c.get_queue_receiver(q, session_id="S", max_wait_time=2) as holder:
            [m] = _receive(holder, 1)
            with pytest.raises(SessionCannotBeLockedError):  # noqa: SIM117 - the attach itself must raise
                with other.get_queue_receiver(q, session_id="S", max_wait_time=2) as r2:
                    r2.receive_messages(max_wait_time=1)
            holder.session.renew_lock()
            holder.complete_message(m)


@implements("session-state")
def session_state(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("x", session_id="S"))
        with c.get_queue_receiver(q, session_id="S", max_wait_time=2) as r:
            assert r.session.get_state() is None
            r.session.set_state(b"step-1")
            assert r.session.get_state() == b"step-1"
        with c.get_queue_receiver(q, session_id="S", max_wait_time=2) as r:
            assert r.session.get_state() == b"step-1"
            r.session.set_state(None)
            assert r.session.get_state() is None
            r.complete_message(_receive(r, 1)[0])


@implements("session-renew")
def session_renew(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("x", session_id="S"))
        with c.get_queue_receiver(q, session_id="S", max_wait_time=2) as r:
            before = r.session.locked_until_utc
            assert before is not None
            time.sleep(0.05)
            after = r.session.renew_lock()
            assert after > before
            r.complete_message(_receive(r, 1)[0])


@implements("session-list")
def session_list(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    ids = {f"s{i:03d}" for i in range(120)}
    with _client(conn) as c:
        _send(c, q, *(ServiceBusMessage("x", session_id=sid) for sid in sorted(ids)))
        _send(c, q, ServiceBusMessage("y", session_id="state-only"))
        with c.get_queue_receiver(q, session_id="state-only", max_wait_time=2) as r:
            r.session.set_state(b"kept")
            r.complete_message(_receive(r, 1)[0])
        listed = list(c.list_queue_sessions(q, timeout=30))
        assert len(listed) == len(ids) + 1
        assert set(listed) == ids | {"state-only"}
        since = datetime.now(UTC) - timedelta(minutes=5)
        assert list(c.list_queue_sessions(q, state_updated_after=since)) == ["state-only"]


@implements("session-race")
def session_race(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("x", session_id="S"))
    outcomes: list[str] = []
    barrier = threading.Barrier(2)
    hold = threading.Event()

    def contender() -> None:
        with _client(conn, retry_total=0) as cc:
            barrier.wait()
            try:
                with cc.get_queue_receiver(q, session_id="S", max_wait_time=2) as r:
                    outcomes.append("won")
                    hold.wait(10)  # keep the session until the other contender has its answer
                    r.complete_message(_receive(r, 1)[0])
            except SessionCannotBeLockedError:
                outcomes.append("cannot-be-locked")
                hold.set()

    threads = [threading.Thread(target=contender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["cannot-be-locked", "won"]


@implements("session-release-accept-by-id")
def session_release_accept_by_id(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("x", session_id="S"))
        with c.get_queue_receiver(q, session_id="S", max_wait_time=2) as r:
            [m] = _receive(r, 1)
            assert m.delivery_count == 0
        with c.get_queue_receiver(q, session_id="S", max_wait_time=2) as r:
            [m] = _receive(r, 1)
            assert m.delivery_count == 1
            r.complete_message(m)


@implements("abandon-count")
def abandon_count(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("x", session_id="S"))
        with c.get_queue_receiver(q, session_id="S", max_wait_time=2) as r:
            for expected in (0, 1, 2):
                [m] = _receive(r, 1)
                assert m.delivery_count == expected
                r.abandon_message(m)
            [m] = _receive(r, 1)
            assert m.delivery_count == 3
            r.complete_message(m)


# ---------------------------------------------------------------------------------------------- settlement
@implements("defer")
def defer(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("later"), ServiceBusMessage("now"))
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            first, second = _receive(r, 2)
            seq = first.sequence_number
            assert seq is not None
            r.defer_message(first)
            r.complete_message(second)
            assert r.receive_messages(max_wait_time=1) == []
            [again] = r.receive_deferred_messages([seq])
            assert str(again) == "later"
            r.complete_message(again)


@implements("dead-letter")
def dead_letter(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("bad"))
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            r.dead_letter_message(_receive(r, 1)[0], reason="bad-total", error_description="total < 0")
        with c.get_queue_receiver(q, sub_queue="deadletter", max_wait_time=2) as d:
            [m] = _receive(d, 1)
            assert (m.dead_letter_reason, m.dead_letter_error_description) == ("bad-total", "total < 0")
            assert str(m) == "bad"
            d.complete_message(m)


@implements("peek")
def peek(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, *(ServiceBusMessage(f"m{i}") for i in range(3)))
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            peeked = r.peek_messages(max_message_count=10)
            assert [str(m) for m in peeked] == ["m0", "m1", "m2"]
            seqs = [m.sequence_number or 0 for m in peeked]
            assert seqs == sorted(seqs) and 0 not in seqs
            got = _receive(r, 3)  # nothing was locked by peeking
            for m in got:
                r.complete_message(m)


@implements("schedule-cancel")
def schedule_cancel(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    when = datetime.now(UTC) + timedelta(seconds=2)
    with _client(conn) as c:
        with c.get_queue_sender(q) as s:
            [keep] = s.schedule_messages(ServiceBusMessage("kept"), when)
            [drop] = s.schedule_messages(ServiceBusMessage("cancelled"), when)
            s.cancel_scheduled_messages(drop)
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            [p] = r.peek_messages(max_message_count=10)
            assert p.sequence_number == keep
            [m] = _receive(r, 1, timeout=15)
            assert str(m) == "kept"
            assert m.scheduled_enqueue_time_utc is not None
            assert abs((m.scheduled_enqueue_time_utc - when).total_seconds()) < 1
            r.complete_message(m)
            assert r.receive_messages(max_wait_time=1) == []


@implements("lock-expiry-max-delivery")
def lock_expiry_max_delivery(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("x"))
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            [m] = _receive(r, 1)
            assert m.delivery_count == 0
            [m] = _receive(r, 1, timeout=15)  # the lock expired: back with the count incremented
            assert m.delivery_count == 1
        with c.get_queue_receiver(q, sub_queue="deadletter", max_wait_time=2) as d:
            [dead] = _receive(d, 1, timeout=15)
            assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
            d.complete_message(dead)


@implements("close-link-holding-locks")
def close_link_holding_locks(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("a"), ServiceBusMessage("b"))
        with c.get_queue_receiver(q, max_wait_time=2, prefetch_count=0) as r:
            held = _receive(r, 2)
            assert [m.delivery_count for m in held] == [0, 0]
        with c.get_queue_receiver(q, max_wait_time=2, prefetch_count=0) as r:
            back = _receive(r, 2, timeout=15)  # only after the 2 s locks expire
            assert sorted(str(m) for m in back) == ["a", "b"]
            assert [m.delivery_count for m in back] == [1, 1]
            for m in back:
                r.complete_message(m)


@implements("receive-and-delete")
def receive_and_delete(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    with _client(conn) as c:
        _send(c, q, ServiceBusMessage("a"), ServiceBusMessage("b"))
        with c.get_queue_receiver(
            q, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=2
        ) as r:
            got = _receive(r, 2)
            assert [str(m) for m in got] == ["a", "b"]
            assert all(m.lock_token is None for m in got)
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            assert r.peek_messages(max_message_count=10) == []


@implements("properties-round-trip")
def properties_round_trip(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    mid = str(uuid.uuid4())
    sent = ServiceBusMessage(
        b'{"k": 1}',
        message_id=mid,
        correlation_id="corr-1",
        content_type="application/json",
        subject="order.created",
        to="dest",
        reply_to="replies",
        reply_to_session_id="rs-1",
        time_to_live=timedelta(minutes=5),
        application_properties={"s": "text", "i": 42, "f": 1.5, "b": True, "neg": -7},
    )
    with _client(conn) as c:
        _send(c, q, sent)
        with c.get_queue_receiver(q, max_wait_time=2) as r:
            [m] = _receive(r, 1)
            assert b"".join(m.body) == b'{"k": 1}'
            assert (m.message_id, m.correlation_id, m.content_type, m.subject) == (
                mid,
                "corr-1",
                "application/json",
                "order.created",
            )
            assert (m.to, m.reply_to, m.reply_to_session_id) == ("dest", "replies", "rs-1")
            assert m.time_to_live == timedelta(minutes=5)
            assert m.application_properties == {b"s": b"text", b"i": 42, b"f": 1.5, b"b": True, b"neg": -7}
            assert m.sequence_number is not None and m.sequence_number > 0
            assert m.enqueued_time_utc is not None
            assert abs((datetime.now(UTC) - m.enqueued_time_utc).total_seconds()) < 60
            r.complete_message(m)


@implements("large-message")
def large_message(conn: str, e: dict[str, str]) -> None:
    q = e["queue"]
    body = bytes(range(256)) * 1000  # 256,000 bytes: Standard refuses a message over 262,144 (limits.py)
    with _client(conn) as c:
        with c.get_queue_sender(q) as s:
            s.send_messages(ServiceBusMessage(body))  # one message, not a batch
        with c.get_queue_receiver(q, max_wait_time=5) as r:
            [m] = _receive(r, 1)
            assert b"".join(m.body) == body
            r.complete_message(m)


@implements("topic-fan-out-filters")
def _topic_fan_out_filters(conn: str, e: dict[str, str]) -> None:
    topic = e["topic"]
    with _client(conn) as c:
        with c.get_topic_sender(topic) as s:
            s.send_messages(
                [
                    ServiceBusMessage("plain"),
                    ServiceBusMessage("red", application_properties={"color": "red"}),
                    ServiceBusMessage("urgent", subject="urgent", application_properties={"color": "blue"}),
                ]
            )
        seqs: dict[str, int] = {}
        for sub, want in (("all", ["plain", "red", "urgent"]), ("red", ["red"]), ("urgent", ["urgent"])):
            with c.get_subscription_receiver(topic, sub, max_wait_time=1) as r:
                got = _receive(r, len(want))
                got += r.receive_messages(max_message_count=5, max_wait_time=0.5)
                assert [str(m) for m in got] == want, sub
                for m in got:
                    seqs.setdefault(str(m), m.sequence_number or 0)
                    assert seqs[str(m)] == m.sequence_number
                    r.complete_message(m)


@implements("topic-session-subscription")
def _topic_session_subscription(conn: str, e: dict[str, str]) -> None:
    topic = e["topic"]
    with _client(conn) as c, _client(conn, retry_total=0) as other:
        with c.get_topic_sender(topic) as s:
            s.send_messages([ServiceBusMessage("a", session_id="A"), ServiceBusMessage("b", session_id="B")])
        with c.get_subscription_receiver(topic, "sessions", session_id="B", max_wait_time=1) as r:
            [m] = _receive(r, 1)
            assert str(m) == "b" and m.session_id == "B"
            with (
                pytest.raises(SessionCannotBeLockedError),
                other.get_subscription_receiver(topic, "sessions", session_id="B", max_wait_time=1) as r2,
            ):
                r2.receive_messages(max_wait_time=1)
            r.session.set_state(b"st-B")
            assert r.session.get_state() == b"st-B"
            r.complete_message(m)
        with c.get_subscription_receiver(
            topic, "sessions", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2
        ) as r:
            assert r.session.session_id == "A"
            [m] = _receive(r, 1)
            assert str(m) == "a"
            r.complete_message(m)


@pytest.mark.parametrize("scenario_id", applicable("python"))
def test_scenario(scenario_id: str, servicebus_emulator: Any) -> None:
    names = create_entities(servicebus_emulator, SCENARIOS[scenario_id])
    try:
        IMPLEMENTATIONS[scenario_id](servicebus_emulator.connection_string, names)
    finally:
        for name in names.values():
            servicebus_emulator.delete_queue(name)
