"""Topics and subscriptions through the real azure-servicebus SDK: fan-out, correlation and SQL filters,
session subscriptions, per-subscription DLQ, defer, peek, schedule, forwarding, persistence."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import ServiceBusError, SessionCannotBeLockedError

from devstack.emulator.config import ConfigError, parse_config
from devstack.emulator.server import EmulatorServer
from tests.emulator._helpers import client

MakeTopic = Callable[..., str]


def _sub(name: str, rules: list[dict[str, Any]] | None = None, **props: Any) -> dict[str, Any]:
    return {"Name": name, "Properties": props, "Rules": rules or []}


def _sql(name: str, expr: str, action: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"FilterType": "Sql", "SqlFilter": {"SqlExpression": expr}}
    if action:
        p["Action"] = {"SqlExpression": action}
    return {"Name": name, "Properties": p}


def _corr(name: str, **spec: Any) -> dict[str, Any]:
    return {"Name": name, "Properties": {"FilterType": "Correlation", "CorrelationFilter": spec}}


@pytest.fixture
def make_topic(servicebus_emulator: Any) -> Iterator[MakeTopic]:
    """Create a uniquely named topic from official-format subscription entries; dropped afterwards."""
    created: list[str] = []

    def make(*subs: dict[str, Any], **props: Any) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        servicebus_emulator.server.create_topic(
            {"Name": name, "Properties": props, "Subscriptions": list(subs)}
        )
        created.append(name)
        return name

    yield make
    for name in created:
        servicebus_emulator.delete_queue(name)


def _drain(r: Any, expected: int, wait: float = 1) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < expected and time.monotonic() < deadline:
        got += r.receive_messages(max_message_count=expected - len(got), max_wait_time=wait)
    return got


def _receive_all(c: Any, topic: str, sub: str, expected: int, **kw: Any) -> list[str]:
    """Receive and complete `expected` messages, then check for (briefly) any surplus copy."""
    with c.get_subscription_receiver(topic, sub, max_wait_time=1, **kw) as r:
        msgs = _drain(r, expected)
        msgs += r.receive_messages(max_message_count=10, max_wait_time=0.3)
        for m in msgs:
            r.complete_message(m)
        return [str(m) for m in msgs]


def test_fan_out_copies_to_every_subscription_with_the_topic_sequence_number(servicebus_emulator, make_topic):
    t = make_topic(_sub("a"), _sub("b"))
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages([ServiceBusMessage(f"m{i}") for i in range(3)])
        seqs = {}
        for sub in ("a", "b"):
            with c.get_subscription_receiver(t, sub, max_wait_time=1) as r:
                msgs = _drain(r, 3)
                assert [str(m) for m in msgs] == ["m0", "m1", "m2"]
                seqs[sub] = [m.sequence_number for m in msgs]
                for m in msgs:
                    r.complete_message(m)
        assert seqs["a"] == seqs["b"]
        assert servicebus_emulator.counts(f"{t}/Subscriptions/a")["total"] == 0


def test_receiving_from_a_topic_or_sending_to_a_subscription_is_refused(servicebus_emulator, make_topic):
    t = make_topic(_sub("a"))
    with client(servicebus_emulator.connection_string) as c:
        with pytest.raises(ServiceBusError), c.get_queue_receiver(t, max_wait_time=1) as r:
            r.receive_messages(max_wait_time=1)
        with pytest.raises(ServiceBusError), c.get_queue_sender(f"{t}/Subscriptions/a") as s:
            s.send_messages(ServiceBusMessage("x"))
        with pytest.raises(ServiceBusError), c.get_subscription_receiver(t, "nope", max_wait_time=1) as r:
            r.receive_messages(max_wait_time=1)


def test_correlation_filters_match_system_and_user_properties(servicebus_emulator, make_topic):
    t = make_topic(
        _sub("red-important", [_corr("r", CorrelationId="important", Label="Red")]),
        _sub("by-prop", [_corr("p", Properties={"region": "eu", "tier": 2})]),
        _sub("by-to", [_corr("to", To="shipping", ContentType="application/json")]),
        _sub("all"),
    )
    msgs = [
        ServiceBusMessage("1", correlation_id="important", subject="Red"),
        ServiceBusMessage("2", correlation_id="important", subject="Blue"),
        ServiceBusMessage("3", correlation_id="other", subject="Red"),
        ServiceBusMessage("4", application_properties={"region": "eu", "tier": 2}),
        ServiceBusMessage("5", application_properties={"region": "eu", "tier": 3}),
        ServiceBusMessage("6", to="shipping", content_type="application/json"),
        ServiceBusMessage("7", to="shipping", content_type="text/plain"),
    ]
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages(msgs)
        assert _receive_all(c, t, "red-important", 1) == ["1"]
        assert _receive_all(c, t, "by-prop", 1) == ["4"]
        assert _receive_all(c, t, "by-to", 1) == ["6"]
        assert _receive_all(c, t, "all", 7) == [str(i) for i in range(1, 8)]


def test_sql_filters_common_forms_and_set_action(servicebus_emulator, make_topic):
    t = make_topic(
        _sub("eq", [_sql("r", "color = 'red'")]),
        _sub("num", [_sql("r", "quantity >= 10 AND quantity < 100")]),
        _sub("or-not", [_sql("r", "NOT (color = 'red') OR sys.Label = 'urgent'")]),
        _sub("in-like", [_sql("r", "color IN ('blue', 'green') AND name LIKE 'wid%'")]),
        _sub("null", [_sql("r", "color IS NULL")]),
        _sub("exists", [_sql("r", "EXISTS(quantity) AND quantity <> 5")]),
        _sub("two-rules", [_sql("a", "quantity = 5"), _sql("b", "color = 'green'")]),
        _sub("action", [_sql("r", "color = 'red'", "SET user.routed = 'yes'; SET level = quantity * 2")]),
    )
    msgs = [
        ServiceBusMessage("1", application_properties={"color": "red", "quantity": 5, "name": "widget"}),
        ServiceBusMessage("2", application_properties={"color": "blue", "quantity": 50, "name": "widget"}),
        ServiceBusMessage("3", application_properties={"color": "green", "quantity": 500, "name": "gadget"}),
        ServiceBusMessage("4", subject="urgent", application_properties={"color": "red"}),
        ServiceBusMessage("5", application_properties={"quantity": 10}),
    ]
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages(msgs)
        assert _receive_all(c, t, "eq", 2) == ["1", "4"]
        assert _receive_all(c, t, "num", 2) == ["2", "5"]
        assert _receive_all(c, t, "or-not", 3) == ["2", "3", "4"]  # 5: color missing -> unknown -> no match
        assert _receive_all(c, t, "in-like", 1) == ["2"]
        assert _receive_all(c, t, "null", 1) == ["5"]
        assert _receive_all(c, t, "exists", 3) == ["2", "3", "5"]
        assert _receive_all(c, t, "two-rules", 2) == ["1", "3"]  # one copy even when several rules match
        with c.get_subscription_receiver(t, "action", max_wait_time=1) as r:
            got = _drain(r, 2)
            props = [
                {k.decode() if isinstance(k, bytes) else k: v for k, v in m.application_properties.items()}
                for m in got
            ]
            assert [p.get("routed") for p in props] == [b"yes", b"yes"] or [
                p.get("routed") for p in props
            ] == ["yes", "yes"]
            assert props[0]["level"] == 10
            assert "level" not in props[1]  # quantity missing: the SET value is NULL, so nothing is set
            for m in got:
                r.complete_message(m)
        # the action changed only that subscription's copy
        with c.get_subscription_receiver(t, "eq", max_wait_time=1) as r:
            assert r.receive_messages(max_wait_time=0.5) == []


def test_bad_rules_are_config_errors():
    def cfg(rule: dict[str, Any]) -> dict[str, Any]:
        return {
            "UserConfig": {
                "Namespaces": [
                    {
                        "Name": "sbemulatorns",
                        "Queues": [],
                        "Topics": [{"Name": "t", "Subscriptions": [_sub("s", [rule])]}],
                    }
                ]
            }
        }

    for rule, fragment in [
        (_sql("r", "color = "), "rule 'r'"),
        (_sql("r", "sys.Nope = 1"), "sys.Nope"),
        (_corr("r"), "CorrelationFilter"),
        ({"Name": "r", "Properties": {"FilterType": "Regex"}}, "FilterType"),
        (_sql("r", "a = 1", "SET sys.Label = 'x'"), "user properties"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            parse_config(cfg(rule))


def test_session_subscription_next_available_specific_state_renew_exclusive(servicebus_emulator, make_topic):
    t = make_topic(_sub("sess", RequiresSession=True, LockDuration="PT5S"), _sub("plain"))
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            for sid, body in [("A", "a1"), ("B", "b1"), ("A", "a2")]:
                s.send_messages(ServiceBusMessage(body, session_id=sid))
            with pytest.raises(ServiceBusError):  # a session subscription matches: session id required
                s.send_messages(ServiceBusMessage("no-session"))
        assert servicebus_emulator.session_counts(f"{t}/Subscriptions/sess") == {"A": 2, "B": 1}
        with c.get_subscription_receiver(t, "sess", session_id="A", max_wait_time=1) as r:
            assert [str(m) for m in _drain(r, 2)] == ["a1", "a2"]
            r.session.set_state(b"cursor-2")
            assert r.session.get_state() == b"cursor-2"
            before = r.session.locked_until_utc
            assert before is not None
            time.sleep(0.05)
            r.session.renew_lock()
            after = r.session.locked_until_utc
            assert after is not None and after > before
            with (
                pytest.raises(SessionCannotBeLockedError),
                c.get_subscription_receiver(t, "sess", session_id="A", max_wait_time=1) as r2,
            ):
                r2.receive_messages(max_wait_time=1)
            for m in _drain(r, 0):
                r.complete_message(m)
        with c.get_subscription_receiver(t, "sess", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r:
            sid = r.session.session_id
            msgs = _drain(r, 1 if sid == "B" else 2)
            assert all(m.session_id == sid for m in msgs)
        assert sorted(_receive_all(c, t, "plain", 3)) == [
            "a1",
            "a2",
            "b1",
        ]  # no-session send was refused everywhere
        with c.get_subscription_receiver(t, "sess", session_id="A", max_wait_time=1) as r:
            assert r.session.get_state() == b"cursor-2"


def test_dead_letter_per_subscription_and_max_delivery(servicebus_emulator, make_topic):
    t = make_topic(_sub("a", MaxDeliveryCount=2), _sub("b"))
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages([ServiceBusMessage("poison"), ServiceBusMessage("bad")])
        with c.get_subscription_receiver(t, "a", max_wait_time=1) as r:
            first, second = _drain(r, 2)
            r.dead_letter_message(second, reason="Invalid", error_description="bad input")
            r.abandon_message(first)
            [again] = _drain(r, 1)
            assert str(again) == "poison" and again.delivery_count == 1
            r.abandon_message(again)  # second failed attempt: MaxDeliveryCount=2 dead-letters it
        with c.get_subscription_receiver(
            t, "a", sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=1
        ) as d:
            dead = _drain(d, 2)
            by_body = {str(m): m for m in dead}
            assert by_body["bad"].dead_letter_reason == "Invalid"
            assert by_body["bad"].dead_letter_error_description == "bad input"
            assert by_body["poison"].dead_letter_reason == "MaxDeliveryCountExceeded"
            for m in dead:
                d.complete_message(m)
        assert servicebus_emulator.counts(f"{t}/Subscriptions/b")["active"] == 2
        assert servicebus_emulator.dead_letter_count(f"{t}/Subscriptions/b") == 0


def test_defer_peek_and_receive_deferred_on_a_subscription(servicebus_emulator, make_topic):
    t = make_topic(_sub("a"))
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages([ServiceBusMessage("one"), ServiceBusMessage("two")])
        with c.get_subscription_receiver(t, "a", max_wait_time=1) as r:
            peeked = r.peek_messages(max_message_count=5)
            assert [str(m) for m in peeked] == ["one", "two"]
            one, two = _drain(r, 2)
            r.defer_message(one)
            r.complete_message(two)
            [back] = r.receive_deferred_messages([one.sequence_number])
            assert str(back) == "one"
            r.renew_message_lock(back)
            r.complete_message(back)
        assert servicebus_emulator.counts(f"{t}/Subscriptions/a")["total"] == 0


def test_schedule_on_topic_sender_fans_out_and_cancel_reaches_every_subscription(
    servicebus_emulator, make_topic
):
    t = make_topic(_sub("a"), _sub("b"))
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
            later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            [keep] = s.schedule_messages(ServiceBusMessage("soon"), soon)
            [drop] = s.schedule_messages(ServiceBusMessage("later"), later)
            assert keep != drop
            for sub in ("a", "b"):
                assert servicebus_emulator.counts(f"{t}/Subscriptions/{sub}")["scheduled"] == 2
            s.cancel_scheduled_messages(drop)
        for sub in ("a", "b"):
            with c.get_subscription_receiver(t, sub, max_wait_time=5) as r:
                [m] = _drain(r, 1, wait=5)
                assert str(m) == "soon" and m.sequence_number == keep
                r.complete_message(m)
            assert servicebus_emulator.counts(f"{t}/Subscriptions/{sub}")["total"] == 0


def test_forward_to_queue_and_to_topic(servicebus_emulator, make_topic, fresh_queue):
    q = fresh_queue()
    downstream = make_topic(_sub("final"))
    t = make_topic(_sub("to-queue", ForwardTo=q), _sub("to-topic", ForwardTo=downstream), _sub("kept"))
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages(ServiceBusMessage("hop"))
        with c.get_queue_receiver(q, max_wait_time=1) as r:
            [m] = _drain(r, 1)
            assert str(m) == "hop"
            r.complete_message(m)
        assert _receive_all(c, downstream, "final", 1) == ["hop"]
        assert _receive_all(c, t, "kept", 1) == ["hop"]
        assert servicebus_emulator.counts(f"{t}/Subscriptions/to-queue")["total"] == 0


def test_duplicate_detection_on_topic(servicebus_emulator, make_topic):
    t = make_topic(_sub("a"), RequiresDuplicateDetection=True, DuplicateDetectionHistoryTimeWindow="PT1M")
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages(
                [ServiceBusMessage("x", message_id="same"), ServiceBusMessage("y", message_id="same")]
            )
        assert _receive_all(c, t, "a", 1) == ["x"]


def test_subscriptions_persist_across_restart(tmp_path):
    doc = {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": "sbemulatorns",
                    "Queues": [],
                    "Topics": [
                        {
                            "Name": "events",
                            "Subscriptions": [
                                _sub("plain"),
                                _sub("sess", RequiresSession=True),
                                _sub("red", [_sql("r", "color = 'red'")]),
                            ],
                        }
                    ],
                }
            ]
        }
    }
    data = tmp_path / "data"
    with EmulatorServer(doc, data=data) as server, client(server.connection_string) as c:
        with c.get_topic_sender("events") as s:
            s.send_messages(ServiceBusMessage("m1", session_id="S", application_properties={"color": "red"}))
            s.send_messages(ServiceBusMessage("m2", session_id="S"))
        with c.get_subscription_receiver("events", "sess", session_id="S", max_wait_time=1) as r:
            r.session.set_state(b"st")
        with c.get_subscription_receiver("events", "plain", max_wait_time=1) as r:
            [m] = _drain(r, 1)
            r.dead_letter_message(m, reason="kept")
    with EmulatorServer(doc, data=data) as server:
        assert server.restored == 2 + 2 + 1  # plain: m2 + dead-lettered m1; sess: m1, m2; red: m1
        with client(server.connection_string) as c:
            with c.get_subscription_receiver("events", "sess", session_id="S", max_wait_time=1) as r:
                assert r.session.get_state() == b"st"
                assert [str(m) for m in _drain(r, 2)] == ["m1", "m2"]
            assert _receive_all(c, "events", "red", 1) == ["m1"]
            assert _receive_all(c, "events", "plain", 1) == ["m2"]
            with c.get_subscription_receiver(
                "events", "plain", sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=1
            ) as d:
                [m] = _drain(d, 1)
                assert m.dead_letter_reason == "kept"


def test_shipped_config_topic_routes_by_session_and_label(servicebus_emulator):
    """dev/servicebus/Config.json ships `order-events`: audit (all), per-customer (sessions), quarantined."""
    t = "order-events"
    assert servicebus_emulator.server.topic_names == [t]
    with client(servicebus_emulator.connection_string) as c:
        with c.get_topic_sender(t) as s:
            s.send_messages(ServiceBusMessage("applied", session_id="C1", subject="applied"))
            s.send_messages(ServiceBusMessage("quarantined", session_id="C1", subject="quarantined"))
            s.send_messages(ServiceBusMessage("no-customer", subject="quarantined"))
        assert _receive_all(c, t, "audit", 3) == ["applied", "quarantined", "no-customer"]
        assert _receive_all(c, t, "quarantined", 2) == ["quarantined", "no-customer"]
        with c.get_subscription_receiver(t, "per-customer", session_id="C1", max_wait_time=1) as r:
            got = _drain(r, 2)
            assert [str(m) for m in got] == ["applied", "quarantined"]
            for m in got:
                r.complete_message(m)


def test_cli_reports_a_bad_rule_in_one_line(tmp_path):
    bad = {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": "sbemulatorns",
                    "Queues": [],
                    "Topics": [{"Name": "t", "Subscriptions": [_sub("s", [_sql("r", "color = ")])]}],
                }
            ]
        }
    }
    path = tmp_path / "Config.json"
    path.write_text(json.dumps(bad))
    p = subprocess.run(
        [sys.executable, "-m", "devstack.emulator", "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"orders: error: --config {path}: topic 't' subscription 's' rule 'r': unexpected 'end of expression'"
    ]
