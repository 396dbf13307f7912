"""`orders status` shows the queue's depth and dead-letter count through ServiceBusAdministrationClient
(orders_cli/queue_depth.py), against the emulator's management endpoint."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.identity import DefaultAzureCredential
from azure.servicebus import ServiceBusMessage

from devstack.emulator.server import EmulatorServer
from orders_cli import cli, queue_depth
from shared.order_workflow import ORDERS
from shared.store.sqlite import SqliteOrderStore
from tests.emulator._helpers import client

QUEUE = "orders-with-sessions"
SETTINGS = (
    "ServiceBusConnection",
    "ServiceBusConnection__fullyQualifiedNamespace",
    "OrderStoreConnection",
    "ORDERS_QUEUE_NAME",
    "ServiceBusAdministrationConnection",
    "ServiceBusAdministrationCA",
)


@pytest.fixture(autouse=True)
def clean_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    srv = EmulatorServer(_config(), admin_port=0, cert_dir=tmp_path / "certs")
    srv.start()
    yield srv
    srv.stop()


def _config() -> str:
    return str(Path(__file__).resolve().parents[2] / "dev" / "servicebus" / "Config.json")


def _status(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    path = tmp_path / "orders.db"
    SqliteOrderStore(path, codec=ORDERS).close()  # an empty store: status is about the queue here
    code = cli.main(["status", "--store", f"sqlite:///{path}", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _fill(srv: EmulatorServer) -> None:
    with client(srv.connection_string) as c:
        with c.get_queue_sender(QUEUE) as s:
            s.send_messages([ServiceBusMessage(f"m{i}", session_id="cust-1") for i in range(3)])
        with c.get_queue_receiver(QUEUE, session_id="cust-1", max_wait_time=5) as r:
            [m] = r.receive_messages(max_message_count=1, max_wait_time=5)
            r.dead_letter_message(m, reason="test")


def test_status_json_reports_depth_and_dlq(
    emulator: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fill(emulator)
    monkeypatch.setenv("ServiceBusConnection", emulator.connection_string)
    monkeypatch.setenv("ServiceBusAdministrationConnection", emulator.admin_connection_string)
    monkeypatch.setenv("ServiceBusAdministrationCA", str(emulator.admin_ca_path))
    code, out, err = _status(capsys, tmp_path, "--json")
    assert (code, err) == (0, "")
    depth = json.loads(out)["servicebus"]
    assert depth["queue"] == QUEUE
    assert (depth["active"], depth["dead_lettered"], depth["scheduled"], depth["total"]) == (2, 1, 0, 3)
    assert depth["size_bytes"] > 0


def test_status_table_shows_the_queue(
    emulator: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fill(emulator)
    monkeypatch.setenv("ServiceBusAdministrationConnection", emulator.admin_connection_string)
    monkeypatch.setenv("ServiceBusAdministrationCA", str(emulator.admin_ca_path))
    code, out, _ = _status(capsys, tmp_path, "--connection", emulator.connection_string)
    assert code == 0
    assert f"queue {QUEUE} (Service Bus)" in out
    assert "dead-lettered" in out and "orders dlq list" in out


def test_emulator_connection_defaults_to_the_management_port_and_local_ca(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the emulator's AMQP connection string, status asks the same host on the management port
    (5300, the official emulator's default; moved here to the test emulator's) and trusts
    .local/servicebus-emulator/admin-ca.pem (where `orders emulator` keeps its CA)."""
    assert (
        queue_depth.emulator_admin_connection(
            "Endpoint=sb://localhost:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
            5300,
        )
        == "Endpoint=sb://localhost:5300;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;"
    )
    ca = tmp_path / queue_depth.EMULATOR_CA
    ca.parent.mkdir(parents=True)
    ca.write_bytes(emulator.admin_ca_path.read_bytes())
    monkeypatch.setattr(queue_depth, "EMULATOR_ADMIN_PORT", emulator.admin_port)
    depth = queue_depth.queue_depth({}, emulator.connection_string, None, QUEUE)
    assert depth is not None and depth.get("active") == 0, depth


def test_unreachable_broker_is_a_note_not_a_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    conn = (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;"
    )
    monkeypatch.setenv("ServiceBusAdministrationConnection", conn)
    code, out, err = _status(capsys, tmp_path)
    assert (code, err) == (0, "")
    assert f"queue {QUEUE}: depth unavailable (" in out


def test_azure_namespace_uses_default_azure_credential() -> None:
    admin: Any = queue_depth.admin_client({}, None, "contoso.servicebus.windows.net")
    with admin:
        assert admin.fully_qualified_namespace == "contoso.servicebus.windows.net"
        assert isinstance(admin._credential, DefaultAzureCredential)
        assert admin._endpoint == "https://contoso.servicebus.windows.net"
