"""Quotas (devstack/emulator/limits.py) with the real SDK: message and batch size, frame size, connections,
Config.json bounds, and agreement with the app's own body limit."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    ServiceBusError,
    ServiceBusQuotaExceededError,
)

from devstack.emulator import frames
from devstack.emulator.config import ConfigError, QueueProperties, make_config
from devstack.emulator.limits import Limits
from devstack.emulator.server import EmulatorServer
from shared.envelope import MAX_BODY_BYTES
from tests.emulator._helpers import client

KIB = 1024


def _server(limits: str, **queues: QueueProperties) -> EmulatorServer:
    return EmulatorServer(make_config(queues or {"q": QueueProperties()}), limits=limits)


@pytest.fixture
def standard() -> Iterator[EmulatorServer]:
    srv = _server("standard")
    srv.start()
    yield srv
    srv.stop()


def _send(srv: EmulatorServer, body: bytes, queue: str = "q") -> None:
    with client(srv.connection_string) as c, c.get_queue_sender(queue) as s:
        s.send_messages(ServiceBusMessage(body))


def test_standard_refuses_a_300_kib_message_with_message_size_exceeded(standard: EmulatorServer) -> None:
    with pytest.raises(MessageSizeExceededError):
        _send(standard, b"x" * 300 * KIB)
    assert standard.queue_counts("q")["total"] == 0
    _send(standard, b"x" * 200 * KIB)  # the link stays usable and smaller messages pass
    assert standard.queue_counts("q")["total"] == 1


def test_standard_sender_link_advertises_256_kib_and_batches_stay_within_it(standard: EmulatorServer) -> None:
    with client(standard.connection_string) as c, c.get_queue_sender("q") as s:
        batch = s.create_message_batch()
        assert batch.max_size_in_bytes == 256 * KIB  # from the attach's max-message-size
        added = 0
        with pytest.raises(MessageSizeExceededError):
            while True:
                batch.add_message(ServiceBusMessage(b"y" * 10 * KIB))
                added += 1
        s.send_messages(batch)
    assert standard.queue_counts("q")["total"] == added > 20


def test_app_body_limit_and_emulator_limit_agree(standard: EmulatorServer) -> None:
    """A body at the app's limit (262,144 bytes) plus any metadata is over Service Bus Standard's 256 KB
    message: the emulator refuses it as Azure would. So every body Standard accepts is within the app's
    bound, and the largest body it accepts is only the message overhead below it."""
    assert Limits.standard().max_message_bytes == MAX_BODY_BYTES
    with pytest.raises(MessageSizeExceededError):
        _send(standard, b"z" * MAX_BODY_BYTES)
    _send(standard, b"z" * (MAX_BODY_BYTES - 512))
    with client(standard.connection_string) as c, c.get_queue_receiver("q", max_wait_time=5) as r:
        got = r.receive_messages(max_wait_time=5)
        assert len(b"".join(got[0].body)) == MAX_BODY_BYTES - 512 <= MAX_BODY_BYTES
        r.complete_message(got[0])


def test_premium_takes_the_entity_message_size_and_1_mib_batches() -> None:
    with _server("premium") as srv:  # 1 MiB by default; 4 MiB on "big" (MaxMessageSizeInKilobytes)
        srv.create_queue("big", QueueProperties(max_message_size_kib=4096))
        _send(srv, b"p" * 1000 * KIB)
        with pytest.raises(MessageSizeExceededError):
            _send(srv, b"p" * 1536 * KIB)
        _send(srv, b"p" * 1536 * KIB, queue="big")
        assert srv.queue_counts("big")["total"] == 1
        with client(srv.connection_string) as c, c.get_queue_sender("big") as s:
            assert s.create_message_batch().max_size_in_bytes == 1024 * KIB  # batches: 1 MiB on Premium


def _open_frame(sock: socket.socket) -> list[Any]:
    """Raw AMQP: header, open; return the server's open fields."""
    sock.sendall(b"AMQP\x00\x01\x00\x00")
    assert sock.recv(8) == b"AMQP\x00\x01\x00\x00"
    sock.sendall(frames.build_frame(0, frames.OPEN, ["raw-client", "localhost"]))
    size = struct.unpack(">I", sock.recv(4))[0]
    data = b""
    while len(data) < size - 4:
        data += sock.recv(size - 4 - len(data))
    doff = data[0] * 4  # data offset counts the 4 size bytes already read
    code, fields, _ = frames.parse_frame_body(data[doff - 4 :])
    assert code == frames.OPEN
    return fields


@pytest.mark.parametrize(("profile", "frame"), [("standard", 262_144), ("premium", 1_048_576)])
def test_open_advertises_the_tier_max_frame_size(profile: str, frame: int) -> None:
    with _server(profile) as srv, socket.create_connection((srv.host, srv.port), timeout=10) as sock:
        assert int(_open_frame(sock)[2]) == frame


def test_official_emulator_profile_allows_ten_connections() -> None:
    with _server("official-emulator", q=QueueProperties(lock_duration=60, default_ttl=3600)) as srv:
        clients = [client(srv.connection_string) for _ in range(11)]
        senders = []
        try:
            for c in clients[:10]:
                s = c.get_queue_sender("q")
                s.__enter__()
                senders.append(s)
            with pytest.raises(ServiceBusError), clients[10].get_queue_sender("q") as s:
                s.send_messages(ServiceBusMessage(b"eleventh"))
            senders[0].send_messages(ServiceBusMessage(b"first still works"))
            assert srv.queue_counts("q")["total"] == 1
        finally:
            for s in senders:
                s.__exit__(None, None, None)
            for c in clients:
                c.close()


@pytest.mark.parametrize(
    ("profile", "props", "message"),
    [
        ("official-emulator", {"DefaultMessageTimeToLive": "P14D"}, "DefaultMessageTimeToLive"),
        ("official-emulator", {"MaxDeliveryCount": 11}, "MaxDeliveryCount"),
        ("official-emulator", {"LockDuration": "PT2S"}, "LockDuration"),
        ("standard", {"LockDuration": "PT6M"}, "LockDuration"),
        (
            "standard",
            {"RequiresDuplicateDetection": True, "DuplicateDetectionHistoryTimeWindow": "PT1S"},
            "Dup",
        ),
    ],
)
def test_config_values_outside_the_profile_are_config_errors(
    profile: str, props: dict[str, object], message: str
) -> None:
    doc = {"UserConfig": {"Namespaces": [{"Name": "ns", "Queues": [{"Name": "q", "Properties": props}]}]}}
    with pytest.raises(ConfigError, match=message):
        EmulatorServer(doc, limits=profile)


def test_official_emulator_profile_allows_50_entities() -> None:
    props = QueueProperties(default_ttl=3600)
    EmulatorServer(make_config({f"q{i}": props for i in range(50)}), limits="official-emulator")
    with pytest.raises(ConfigError, match="51 queues and topics exceed the namespace's 50"):
        EmulatorServer(make_config({f"q{i}": props for i in range(51)}), limits="official-emulator")


def test_shipped_config_fits_service_bus_but_not_the_official_emulator_schema() -> None:
    """The shipped queue mirrors production (infra: duplicate window PT10M); the official emulator's schema
    caps that window at PT5M, so only that value stands between the file and the official profile."""
    for profile in ("standard", "premium"):
        EmulatorServer("dev/servicebus/Config.json", limits=profile)
    with pytest.raises(ConfigError, match="'orders-with-sessions': DuplicateDetectionHistoryTimeWindow"):
        EmulatorServer("dev/servicebus/Config.json", limits="official-emulator")


def test_a_full_entity_refuses_sends_with_quota_exceeded(standard: EmulatorServer) -> None:
    """MaxSizeInMegabytes bounds what the entity holds, its dead-letter queue included; settling frees
    room. (1 MB here through the test helper; the admin API takes the tier's values, 1024-5120.)"""
    standard.create_queue("small", QueueProperties(max_size_mb=1, max_delivery_count=1))
    body = b"s" * (250 * KIB)
    with client(standard.connection_string) as c:
        with c.get_queue_sender("small") as s:
            for _ in range(4):
                s.send_messages(ServiceBusMessage(body))
            with pytest.raises(ServiceBusQuotaExceededError, match="maximum entity size"):
                s.send_messages(ServiceBusMessage(body))
        with c.get_queue_receiver("small", max_wait_time=5) as r:
            first, second = r.receive_messages(max_message_count=2, max_wait_time=5)
            r.complete_message(first)
            r.dead_letter_message(second)  # still counts: the DLQ is part of the entity
        with c.get_queue_sender("small") as s:
            s.send_messages(ServiceBusMessage(body))
            with pytest.raises(ServiceBusQuotaExceededError):
                s.send_messages(ServiceBusMessage(body))
    counts = standard.queue_counts("small")
    assert (counts["total"], counts["dead_lettered"]) == (3, 1)
    stored = standard.call(lambda: standard.broker.resolve("small").stored_bytes())
    assert 4 * len(body) < stored <= 4 * (len(body) + 512)
