"""ServiceBusAdministrationClient (sync and aio, unmodified) against the emulator's management endpoint
(devstack/emulator/admin.py, admin_http.py): entities, rules, runtime counts, errors, TLS, persistence."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.servicebus import ServiceBusMessage
from azure.servicebus.management import (
    CorrelationRuleFilter,
    ServiceBusAdministrationClient,
    SqlRuleAction,
    SqlRuleFilter,
)

from devstack.emulator.server import EmulatorServer, connection_string
from tests.emulator._helpers import client, wait_until

CONFIG = "dev/servicebus/Config.json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    srv = EmulatorServer(CONFIG, admin_port=0, cert_dir=tmp_path / "certs")
    srv.start()
    yield srv
    srv.stop()


def admin(srv: EmulatorServer) -> ServiceBusAdministrationClient:
    """How a user calls it: the management connection string plus the emulator's CA to trust."""
    return ServiceBusAdministrationClient.from_connection_string(
        srv.admin_connection_string, connection_verify=str(srv.admin_ca_path)
    )


def test_queue_create_get_update_list_delete(server: EmulatorServer) -> None:
    with admin(server) as a:
        created = a.create_queue(
            "adm-q",
            max_delivery_count=4,
            lock_duration=datetime.timedelta(seconds=30),
            requires_session=True,
            dead_lettering_on_message_expiration=True,
            user_metadata="owner=orders",
        )
        assert (created.name, created.max_delivery_count, created.requires_session) == ("adm-q", 4, True)
        got = a.get_queue("adm-q")
        assert got.lock_duration == datetime.timedelta(seconds=30)
        assert got.dead_lettering_on_message_expiration is True
        assert got.user_metadata == "owner=orders"
        assert got.max_message_size_in_kilobytes == 256
        assert got.max_size_in_megabytes == 1024  # Standard's default entity size
        got.max_delivery_count = 7
        a.update_queue(got)
        a.update_queue(a.get_queue("adm-q"), lock_duration=datetime.timedelta(minutes=2))
        again = a.get_queue("adm-q")
        assert (again.max_delivery_count, again.lock_duration) == (7, datetime.timedelta(minutes=2))
        # the broker itself changed, not just what the API reports
        props = server.call(lambda: server.broker.resolve("adm-q").props)
        assert (props.max_delivery_count, props.lock_duration, props.requires_session) == (7, 120.0, True)
        assert {q.name for q in a.list_queues()} == {"adm-q", "orders-with-sessions"}
        a.delete_queue("adm-q")
        with pytest.raises(ResourceNotFoundError):
            a.get_queue("adm-q")
        with pytest.raises(ResourceNotFoundError):
            a.delete_queue("adm-q")


def test_errors_are_the_service_status_codes(server: EmulatorServer) -> None:
    with admin(server) as a:
        with pytest.raises(ResourceExistsError):
            a.create_queue("orders-with-sessions")
        a.create_queue("gone")
        gone = a.get_queue("gone")
        a.delete_queue("gone")
        with pytest.raises(ResourceNotFoundError):
            a.update_queue(gone)
        with pytest.raises(HttpResponseError, match="LockDuration"):
            a.create_queue("too-long-lock", lock_duration=datetime.timedelta(minutes=6))
        with pytest.raises(HttpResponseError, match="Premium"):
            a.create_queue("big-messages", max_message_size_in_kilobytes=4096)
        with pytest.raises(HttpResponseError, match="RequiresSession cannot be changed"):
            a.update_queue(a.get_queue("orders-with-sessions"), requires_session=False)
        with pytest.raises(HttpResponseError, match="RequiresDuplicateDetection cannot be changed"):
            a.update_queue(a.get_queue("orders-with-sessions"), requires_duplicate_detection=False)
        a.create_subscription("order-events", "bad-rule")
        with pytest.raises(HttpResponseError) as bad_sql:
            a.create_rule("order-events", "bad-rule", "r", filter=SqlRuleFilter("color = = 'red'"))
        assert bad_sql.value.status_code == 400
        assert [r.name for r in a.list_rules("order-events", "bad-rule")] == ["$Default"]
        assert {q.name for q in a.list_queues()} == {"orders-with-sessions"}


def test_runtime_properties_count_active_dead_lettered_and_scheduled(server: EmulatorServer) -> None:
    with admin(server) as a:
        a.create_queue("counted", max_delivery_count=1)
        with client(server.connection_string) as c:
            with c.get_queue_sender("counted") as s:
                s.send_messages([ServiceBusMessage(f"m{i}") for i in range(3)])
                s.schedule_messages(
                    ServiceBusMessage("later"),
                    datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
                )
            with c.get_queue_receiver("counted", max_wait_time=5) as r:
                [m] = r.receive_messages(max_message_count=1, max_wait_time=5)
                r.dead_letter_message(m, reason="bad")
        rp = a.get_queue_runtime_properties("counted")
        assert (rp.active_message_count, rp.dead_letter_message_count, rp.scheduled_message_count) == (
            2,
            1,
            1,
        )
        assert rp.total_message_count == 4
        assert (rp.size_in_bytes or 0) > 0
        assert rp.transfer_message_count == rp.transfer_dead_letter_message_count == 0
        [listed] = [q for q in a.list_queues_runtime_properties() if q.name == "counted"]
        assert listed.active_message_count == 2


def test_topic_subscription_and_rules_route_messages(server: EmulatorServer) -> None:
    with admin(server) as a:
        a.create_topic("adm-t", default_message_time_to_live=datetime.timedelta(minutes=30))
        a.create_subscription("adm-t", "reds")
        a.create_subscription("adm-t", "labelled", max_delivery_count=3)
        a.create_rule(
            "adm-t",
            "reds",
            "red",
            filter=SqlRuleFilter("color = 'red'"),
            action=SqlRuleAction("SET seen = 1"),
        )
        a.delete_rule("adm-t", "reds", "$Default")
        a.create_rule(
            "adm-t", "labelled", "by-label", filter=CorrelationRuleFilter(label="L", properties={"n": 5})
        )
        a.delete_rule("adm-t", "labelled", "$Default")
        rules = {r.name: r for r in a.list_rules("adm-t", "reds")}
        assert set(rules) == {"red"}
        assert isinstance(rules["red"].filter, SqlRuleFilter)
        assert rules["red"].filter.sql_expression == "color = 'red'"
        action = rules["red"].action
        assert isinstance(action, SqlRuleAction)
        assert action.sql_expression == "SET seen = 1"
        corr = a.get_rule("adm-t", "labelled", "by-label").filter
        assert isinstance(corr, CorrelationRuleFilter)
        assert (corr.label, dict(corr.properties or {})) == ("L", {"n": 5})
        with client(server.connection_string) as c, c.get_topic_sender("adm-t") as s:
            s.send_messages(
                [
                    ServiceBusMessage("1", application_properties={"color": "red"}),
                    ServiceBusMessage("2", application_properties={"color": "blue"}),
                    ServiceBusMessage("3", subject="L", application_properties={"n": 5}),
                ]
            )
        assert a.get_subscription_runtime_properties("adm-t", "reds").active_message_count == 1
        assert a.get_subscription_runtime_properties("adm-t", "labelled").active_message_count == 1
        topic = a.get_topic_runtime_properties("adm-t")
        assert topic.subscription_count == 2
        assert a.get_topic("adm-t").default_message_time_to_live == datetime.timedelta(minutes=30)
        sub = a.get_subscription("adm-t", "labelled")
        assert sub.max_delivery_count == 3
        a.update_subscription("adm-t", sub, max_delivery_count=5)
        assert a.get_subscription("adm-t", "labelled").max_delivery_count == 5
        assert {s.name for s in a.list_subscriptions("adm-t")} == {"reds", "labelled"}
        a.delete_subscription("adm-t", "reds")
        a.delete_topic("adm-t")
        assert {t.name for t in a.list_topics()} == {"order-events"}


def test_lists_page_with_next_links(server: EmulatorServer) -> None:
    with admin(server) as a:
        for i in range(5):
            a.create_queue(f"page-{i}")
        names = [q.name for q in a.list_queues(max_page_size=2)]
        assert names == sorted(["orders-with-sessions", *(f"page-{i}" for i in range(5))])


def test_namespace_properties_report_the_tier(server: EmulatorServer, tmp_path: Path) -> None:
    with admin(server) as a:
        assert a.get_namespace_properties().messaging_sku == "Standard"
    premium = EmulatorServer(None, limits="premium", admin_port=0, cert_dir=tmp_path / "p")
    with premium, admin(premium) as a:
        assert a.get_namespace_properties().messaging_sku == "Premium"
        q = a.create_queue("large", max_message_size_in_kilobytes=4096)
        assert q.max_message_size_in_kilobytes == 4096


def test_the_certificate_is_verified(server: EmulatorServer) -> None:
    """TLS is real: without trusting the emulator's CA the client refuses the connection."""
    with (
        ServiceBusAdministrationClient.from_connection_string(server.admin_connection_string) as a,
        pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        a.get_queue("orders-with-sessions")


def test_async_client_with_the_same_arguments(server: EmulatorServer) -> None:
    from azure.servicebus.aio.management import ServiceBusAdministrationClient as AsyncAdmin

    async def run() -> tuple[bool, int | None]:
        async with AsyncAdmin.from_connection_string(
            server.admin_connection_string, connection_verify=str(server.admin_ca_path)
        ) as a:
            await a.create_queue("from-aio")
            q = await a.get_queue_runtime_properties("from-aio")
            return q.name == "from-aio", q.active_message_count

    assert asyncio.run(run()) == (True, 0)


def test_plain_http_on_the_same_port_like_the_official_emulator(server: EmulatorServer) -> None:
    """The official emulator serves plain HTTP on 5300 (health check, .NET client, the installer's Python
    sample that swaps the client's base URL): the same port answers it."""
    with urllib.request.urlopen(f"http://{server.host}:{server.admin_port}/health", timeout=10) as resp:
        assert json.loads(resp.read())["status"] == "healthy"
    with ServiceBusAdministrationClient.from_connection_string(server.admin_connection_string) as a:
        a._impl._client._base_url = f"http://{server.host}:{server.admin_port}"
        assert a.get_queue("orders-with-sessions").requires_session is True


def test_entities_persist_with_data_and_config_wins(tmp_path: Path) -> None:
    data = tmp_path / "data"
    certs = tmp_path / "certs"
    with EmulatorServer(CONFIG, data=data, admin_port=0, cert_dir=certs) as srv:
        with admin(srv) as a:
            a.create_queue("kept", max_delivery_count=6)
            a.create_topic("kept-topic")
            a.create_subscription("kept-topic", "s", lock_duration=datetime.timedelta(seconds=45))
            a.create_rule("kept-topic", "s", "only-red", filter=SqlRuleFilter("color = 'red'"))
            a.delete_rule("kept-topic", "s", "$Default")
            a.update_queue(a.get_queue("orders-with-sessions"), max_delivery_count=2)  # config wins
            a.create_queue("dropped")
            with client(srv.connection_string) as c, c.get_queue_sender("dropped") as s:
                s.send_messages(ServiceBusMessage("deleted with its queue"))
            a.delete_queue("dropped")
        with client(srv.connection_string) as c, c.get_queue_sender("kept") as s:
            s.send_messages(ServiceBusMessage("survives"))
        ca = srv.admin_ca_path.read_bytes()
    with EmulatorServer(CONFIG, data=data, admin_port=0, cert_dir=certs) as srv:
        assert srv.admin_ca_path.read_bytes() == ca  # the CA users trust is kept
        with admin(srv) as a:
            assert a.get_queue("kept").max_delivery_count == 6
            assert a.get_queue_runtime_properties("kept").active_message_count == 1
            assert a.get_subscription("kept-topic", "s").lock_duration == datetime.timedelta(seconds=45)
            assert [r.name for r in a.list_rules("kept-topic", "s")] == ["only-red"]
            assert a.get_queue("orders-with-sessions").max_delivery_count == 10
            with pytest.raises(ResourceNotFoundError):
                a.get_queue("dropped")
            a.create_queue("dropped")  # a new queue of that name starts empty
            assert a.get_queue_runtime_properties("dropped").total_message_count == 0
        with client(srv.connection_string) as c, c.get_topic_sender("kept-topic") as s:
            s.send_messages(
                [ServiceBusMessage("r", application_properties={"color": "red"}), ServiceBusMessage("b")]
            )
        assert wait_until(lambda: srv.queue_counts("kept-topic/Subscriptions/s")["total"] == 1)


def test_official_emulator_profile_refuses_the_51st_entity(tmp_path: Path) -> None:
    doc = {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [], "Topics": []}]}}
    srv = EmulatorServer(doc, limits="official-emulator", admin_port=0, cert_dir=tmp_path)
    with srv, admin(srv) as a:
        for i in range(50):
            a.create_queue(f"q{i}")
        with pytest.raises(HttpResponseError, match="QuotaExceeded"):
            a.create_queue("q50")
        with pytest.raises(HttpResponseError, match="DefaultMessageTimeToLive"):
            a.update_queue(a.get_queue("q0"), default_message_time_to_live=datetime.timedelta(hours=2))


def test_the_cli_serves_the_management_api(tmp_path: Path) -> None:
    """`python -m devstack.emulator` (its own event loop on the main thread): requests reach the broker."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.emulator", "--port", "0", "--admin-port", "0",
         "--admin-cert-dir", str(tmp_path), "--config", str(Path(CONFIG).resolve())],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        amqp = re.search(r"listening on 127\.0\.0\.1:(\d+)", proc.stderr.readline())
        mgmt = re.search(r"on https and http 127\.0\.0\.1:(\d+); trust (.+)$", proc.stderr.readline())
        assert amqp and mgmt
        conn = connection_string("127.0.0.1", int(amqp.group(1)))
        with ServiceBusAdministrationClient.from_connection_string(
            connection_string("127.0.0.1", int(mgmt.group(1))),
            connection_verify=str(tmp_path / mgmt.group(2)),
        ) as a:
            a.create_queue("from-cli")
            with client(conn) as c, c.get_queue_sender("from-cli") as s:
                s.send_messages([ServiceBusMessage("1"), ServiceBusMessage("2")])
            assert a.get_queue_runtime_properties("from-cli").active_message_count == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
