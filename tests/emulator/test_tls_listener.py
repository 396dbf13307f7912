"""The optional TLS listener: the SDK's default (TLS) transport reaches the emulator with the CA file it
is given, and nothing else gets through that port.

uamqp, which speaks only TLS, runs the shared scenarios over it in test_conformance_uamqp.py.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, TransportType

from devstack.emulator.server import EmulatorServer

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(None, port=0, tls_port=0)
    server.start()
    server.create_queue("tls-q")
    try:
        yield server
    finally:
        server.stop()


def test_the_python_sdk_sends_and_receives_over_tls(tls_server: EmulatorServer) -> None:
    options = tls_server.tls_client_options()
    with ServiceBusClient.from_connection_string(
        tls_server.tls_connection_string, transport_type=TransportType.Amqp, retry_total=0, **options
    ) as c:
        with c.get_queue_sender("tls-q") as s:
            s.send_messages(ServiceBusMessage("over tls"))
        with c.get_queue_receiver("tls-q", max_wait_time=5) as r:
            got = r.receive_messages(max_wait_time=5)
            assert [str(m) for m in got] == ["over tls"]
            r.complete_message(got[0])


def test_the_certificate_names_the_local_host_and_verifies_as_its_own_ca(tls_server: EmulatorServer) -> None:
    from cryptography import x509  # not in scripts/ci/emulator_compat.sh's minimal venv

    ca = tls_server.tls_ca_file
    assert ca is not None and tls_server.tls_port
    cert = x509.load_pem_x509_certificate(ca.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"AMQP\x00\x01\x00\x00")
        assert tls.recv(8) == b"AMQP\x00\x01\x00\x00"


def test_a_client_without_the_ca_is_refused(tls_server: EmulatorServer) -> None:
    ctx = ssl.create_default_context()  # the system trust store does not know the emulator's certificate
    with (
        socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="localhost")


def test_no_tls_listener_unless_asked() -> None:
    server = EmulatorServer(None, port=0)
    server.start()
    try:
        assert server.tls_ca_file is None
        with pytest.raises(RuntimeError, match="without a TLS listener"):
            server.tls_client_options()
    finally:
        server.stop()


def test_the_certificate_directory_is_removed_on_stop() -> None:
    server = EmulatorServer(None, port=0, tls_port=0)
    server.start()
    ca = server.tls_ca_file
    assert ca is not None and ca.exists()
    server.stop()
    assert not ca.parent.exists()


def test_cli_tls_port_logs_the_port_and_ca_file_and_serves_tls(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.emulator",
            "--port",
            "0",
            "--tls-port",
            "0",
            "--tls-dir",
            str(tmp_path),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    try:
        assert proc.stderr is not None
        assert "listening on 127.0.0.1:" in proc.stderr.readline()
        line = proc.stderr.readline()
        found = re.search(r"AMQP over TLS on 127\.0\.0\.1:(\d+), CA certificate for clients: (\S+)", line)
        assert found, line
        port, ca = int(found.group(1)), Path(found.group(2))
        assert ca.parent == tmp_path and ca.exists()
        ctx = ssl.create_default_context(cafile=str(ca))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"AMQP\x00\x01\x00\x00")
            assert tls.recv(8) == b"AMQP\x00\x01\x00\x00"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err
        assert ca.exists(), "a --tls-dir the user chose is left in place"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_bad_tls_port_is_a_one_line_error() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "devstack.emulator", "--tls-port", "70000"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    assert res.returncode != 0
    assert "port out of range: 70000" in res.stderr and "Traceback" not in res.stderr
