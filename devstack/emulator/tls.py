"""The optional TLS listener's certificate: self-signed, made at start, for clients that only speak amqps.

Service Bus listens for AMQP over TLS on port 5671 (and plain AMQP only in the official emulator, on
5672). Clients built on uamqp (azure-servicebus with `uamqp_transport=True`) cannot turn TLS off, so
the emulator can also listen with TLS (`--tls-port`). The certificate is made fresh at every start
with the `cryptography` package, valid for localhost, 127.0.0.1 and ::1 and the listen host; it is its
own CA, and its PEM file is what a client is given as its CA bundle (azure-servicebus:
`connection_verify=<file>`). Nothing here is a secret worth protecting: the key never leaves the
directory it is written to, and the emulator does not authenticate anyway.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

CERT_FILE = "emulator-ca.pem"
KEY_FILE = "emulator-key.pem"
VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    """Where the certificate (also the client's CA file) and its key were written."""

    cert: Path
    key: Path


def make_self_signed(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Write a fresh EC P-256 key and a self-signed CA:TRUE certificate for the local names into directory."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    dns = {"localhost"}
    ips = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        ips.add(ipaddress.ip_address(host))
    except ValueError:
        if host:
            dns.add(host)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(dns)]
    sans += [x509.IPAddress(ip) for ip in sorted(ips, key=str)]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(directory / CERT_FILE, directory / KEY_FILE)
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context for the listener."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx
