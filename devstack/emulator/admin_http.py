"""The management endpoint: HTTPS and plain HTTP on one port, serving admin.AdminApi and /health.

azure-servicebus's ServiceBusAdministrationClient always calls `https://{endpoint}` (management
_management_client.py: `self._endpoint = "https://" + fully_qualified_namespace`, also with
UseDevelopmentEmulator=true), so the port speaks TLS with a certificate issued at start by a local
CA kept in `cert_dir` (`admin-ca.pem`; trust it with `connection_verify=` or REQUESTS_CA_BUNDLE /
SSL_CERT_FILE). The first byte of a connection tells TLS (0x16, a handshake record) from plain HTTP, so
clients that call the official emulator's plain-HTTP port (the .NET client, the installer's samples,
`GET /health`) work unchanged on the same port.

Built on the standard library's http.server (one thread per connection); every request is handed to the
broker's event loop (`call`), so broker state is only ever touched there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .admin import Response

log = logging.getLogger("devstack.emulator")

TLS_HANDSHAKE = 0x16
CA_FILE = "admin-ca.pem"
_CA_KEY = "admin-ca.key"
READ_TIMEOUT_S = 30.0
MAX_BODY = 1024 * 1024

Handler = Callable[[str, str, dict[str, str], dict[str, str], bytes, str], Response]


def ensure_certificates(cert_dir: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """(ca.pem, server cert chain, server key): the CA is made once and kept; the server certificate is
    issued at every start for `hosts` (names and IP addresses), so it always matches how it is called."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_path, ca_key_path = cert_dir / CA_FILE, cert_dir / _CA_KEY
    now = dt.datetime.now(dt.UTC)
    ca_cert: Any = None
    if ca_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        ca_key: Any = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        if ca_cert.not_valid_after_utc < now + dt.timedelta(days=30):
            ca_cert = None
    if ca_cert is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Service Bus emulator local CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(key_cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_key_path.write_bytes(
            ca_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        ca_key_path.chmod(0o600)
        ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = cert_dir / "admin-server.pem", cert_dir / "admin-server.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    return ca_path, cert_path, key_path


def _usage(*, key_cert_sign: bool = False, digital_signature: bool = False) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def certificate_hosts(host: str) -> list[str]:
    """Names the certificate covers: loopback, this machine's name and the listen address."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if host not in ("0.0.0.0", "::", ""):
        names.insert(0, host)
    return names


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext
    handler: Handler

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Per connection (on its own thread): TLS when the client starts a TLS handshake."""
        request.settimeout(READ_TIMEOUT_S)
        try:
            first = request.recv(1, socket.MSG_PEEK)
            if first and first[0] == TLS_HANDSHAKE:
                request = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("admin connection from %s dropped during the handshake: %s", client_address, exc)
            return
        super().finish_request(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("admin %s %s", self.address_string(), format % args)

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, b"", {})
            return
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        path = "/".join(unquote(s) for s in split.path.split("/"))
        if path.rstrip("/") == "/health" and self.command == "GET":
            payload = json.dumps({"status": "healthy", "message": "Service is healthy."}).encode()
            self._answer(200, payload, {"Content-Type": "application/json"})
            return
        query = dict(parse_qsl(split.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        address = self.server.server_address
        host = self.headers.get("Host") or f"{address[0]!s}:{address[1]}"
        try:
            r = self.server.handler(self.command, path, query, headers, body, host)
        except Exception:  # the emulator keeps serving; the client gets a 500
            log.exception("admin request %s %s failed", self.command, split.path)
            r = Response(500, b"<Error><Code>500</Code><Detail>emulator error</Detail></Error>")
        self._answer(r.status, r.body, r.headers)

    do_GET = do_PUT = do_DELETE = do_POST = do_HEAD = _handle


class AdminHttpServer:
    """The listener; `handler` runs a request to a Response (EmulatorServer routes it to its loop)."""

    def __init__(self, handler: Handler, host: str, port: int, cert_dir: Path) -> None:
        """Issue the certificate and bind (port 0 = any free port)."""
        self.ca_path, cert, key = ensure_certificates(cert_dir, certificate_hosts(host))
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(cert, key)
        self._server = _Server((host, port), _RequestHandler)
        self._server.tls = tls
        self._server.handler = handler
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="servicebus-admin",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()
