"""The optional TLS listener: the SDK's default (TLS) transport reaches the emulator with the CA file it
is given, and nothing else gets through that port.

uamqp, which speaks only TLS, runs the shared scenarios over it in test_conformance_uamqp.py.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, TransportType
from cryptography import x509

from devstack.emulator.server import EmulatorServer


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
