"""Every frame the emulator sends, captured on the wire, has the AMQP 1.0 type the spec gives each field.

A recording proxy sits between the clients and the emulator. The azure-servicebus SDK drives a real
session through it (send, receive, complete, abandon, dead-letter, defer, deferred receive, peek,
session state, schedule, an attach to a missing queue), and a raw client adds what the SDK never sends
($management requests whose message-id is a ulong, uuid, string and binary; drain and echo flows; a
released outcome; a malformed frame). Every server-to-client frame is then decoded here by reading
the constructor byte of each field and compared with the table below, which is written out from the
spec independently of devstack/emulator/wire.py.

Spec: OASIS AMQP 1.0 (amqp-core-complete-v1.0-os). Part 1 section 1.6 (encodings: the constructor codes
below), Part 2 section 2.7 (performatives), 2.8 (restricted types: role, settle modes, handle, seconds,
milliseconds, delivery-number, transfer-number, sequence-no, fields, error), Part 3 section 3.2.4
(properties) and 3.2.11-3.2.14 (message-id types), 3.4 (delivery states), 3.5.3/3.5.4 (source, target),
Part 5 section 5.3.3 (SASL frames).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
)
from azure.servicebus.exceptions import ServiceBusError

from devstack.emulator.codec import Described, Int, Long, Symbol, ULong, decode, encode, skip
from devstack.emulator.server import SAS_KEY_NAME

# ------------------------------------------------------------------ the spec's types as constructor codes
NULL = 0x40
CODES: dict[str, set[int]] = {
    "boolean": {0x41, 0x42, 0x56},
    "ubyte": {0x50},
    "ushort": {0x60},
    "uint": {0x43, 0x52, 0x70},
    "ulong": {0x44, 0x53, 0x80},
    "int": {0x54, 0x71},
    "timestamp": {0x83},
    "uuid": {0x98},
    "binary": {0xA0, 0xB0},
    "string": {0xA1, 0xB1},
    "symbol": {0xA3, 0xB3},
    "map": {0xC1, 0xD1},
    "described": {0x00},
}
CODES["symbol[]"] = CODES["symbol"] | {0xE0, 0xF0}  # multiple="true": one symbol or an array of them
CODES["fields"] = CODES["map"]
CODES["message-id"] = CODES["ulong"] | CODES["uuid"] | CODES["binary"] | CODES["string"]  # 3.2.11-3.2.14

# descriptor code -> (name with spec section, ((field, type, mandatory), ...))
SPEC: dict[int, tuple[str, tuple[tuple[str, str, bool], ...]]] = {
    0x10: (
        "open 2.7.1",
        (
            ("container-id", "string", True),
            ("hostname", "string", False),
            ("max-frame-size", "uint", False),
            ("channel-max", "ushort", False),
            ("idle-time-out", "uint", False),  # milliseconds 2.8.6
            ("outgoing-locales", "symbol[]", False),
            ("incoming-locales", "symbol[]", False),
            ("offered-capabilities", "symbol[]", False),
            ("desired-capabilities", "symbol[]", False),
            ("properties", "fields", False),
        ),
    ),
    0x11: (
        "begin 2.7.2",
        (
            ("remote-channel", "ushort", False),
            ("next-outgoing-id", "uint", True),  # transfer-number 2.8.9
            ("incoming-window", "uint", True),
            ("outgoing-window", "uint", True),
            ("handle-max", "uint", False),  # handle 2.8.4
            ("offered-capabilities", "symbol[]", False),
            ("desired-capabilities", "symbol[]", False),
            ("properties", "fields", False),
        ),
    ),
    0x12: (
        "attach 2.7.3",
        (
            ("name", "string", True),
            ("handle", "uint", True),
            ("role", "boolean", True),  # role 2.8.1
            ("snd-settle-mode", "ubyte", False),  # sender-settle-mode 2.8.2
            ("rcv-settle-mode", "ubyte", False),  # receiver-settle-mode 2.8.3
            ("source", "source", False),
            ("target", "target", False),
            ("unsettled", "map", False),
            ("incomplete-unsettled", "boolean", False),
            ("initial-delivery-count", "uint", False),  # sequence-no 2.8.10
            ("max-message-size", "ulong", False),
            ("offered-capabilities", "symbol[]", False),
            ("desired-capabilities", "symbol[]", False),
            ("properties", "fields", False),
        ),
    ),
    0x13: (
        "flow 2.7.4",
        (
            ("next-incoming-id", "uint", False),
            ("incoming-window", "uint", True),
            ("next-outgoing-id", "uint", True),
            ("outgoing-window", "uint", True),
            ("handle", "uint", False),
            ("delivery-count", "uint", False),
            ("link-credit", "uint", False),
            ("available", "uint", False),
            ("drain", "boolean", False),
            ("echo", "boolean", False),
            ("properties", "fields", False),
        ),
    ),
    0x14: (
        "transfer 2.7.5",
        (
            ("handle", "uint", True),
            ("delivery-id", "uint", False),  # delivery-number 2.8.8
            ("delivery-tag", "binary", False),  # delivery-tag 2.8.7
            ("message-format", "uint", False),  # message-format 2.8.11
            ("settled", "boolean", False),
            ("more", "boolean", False),
            ("rcv-settle-mode", "ubyte", False),
            ("state", "delivery-state", False),
            ("resume", "boolean", False),
            ("aborted", "boolean", False),
            ("batchable", "boolean", False),
        ),
    ),
    0x15: (
        "disposition 2.7.6",
        (
            ("role", "boolean", True),
            ("first", "uint", True),
            ("last", "uint", False),
            ("settled", "boolean", False),
            ("state", "delivery-state", False),
            ("batchable", "boolean", False),
        ),
    ),
    0x16: (
        "detach 2.7.7",
        (("handle", "uint", True), ("closed", "boolean", False), ("error", "error", False)),
    ),
    0x17: ("end 2.7.8", (("error", "error", False),)),
    0x18: ("close 2.7.9", (("error", "error", False),)),
    0x1D: (
        "error 2.8.14",
        (("condition", "symbol", True), ("description", "string", False), ("info", "fields", False)),
    ),
    0x23: ("received 3.4.1", (("section-number", "uint", True), ("section-offset", "ulong", True))),
    0x24: ("accepted 3.4.2", ()),
    0x25: ("rejected 3.4.3", (("error", "error", False),)),
    0x26: ("released 3.4.4", ()),
    0x27: (
        "modified 3.4.5",
        (
            ("delivery-failed", "boolean", False),
            ("undeliverable-here", "boolean", False),
            ("message-annotations", "fields", False),
        ),
    ),
    0x28: (
        "source 3.5.3",
        (
            ("address", "string", False),  # address-string 3.2.15
            ("durable", "uint", False),  # terminus-durability 3.5.5
            ("expiry-policy", "symbol", False),
            ("timeout", "uint", False),  # seconds 2.8.5
            ("dynamic", "boolean", False),
            ("dynamic-node-properties", "fields", False),
            ("distribution-mode", "symbol", False),
            ("filter", "fields", False),  # filter-set 3.5.8
            ("default-outcome", "outcome", False),
            ("outcomes", "symbol[]", False),
            ("capabilities", "symbol[]", False),
        ),
    ),
    0x29: (
        "target 3.5.4",
        (
            ("address", "string", False),
            ("durable", "uint", False),
            ("expiry-policy", "symbol", False),
            ("timeout", "uint", False),
            ("dynamic", "boolean", False),
            ("dynamic-node-properties", "fields", False),
            ("capabilities", "symbol[]", False),
        ),
    ),
    0x40: ("sasl-mechanisms 5.3.3.1", (("sasl-server-mechanisms", "symbol[]", True),)),
    0x44: ("sasl-outcome 5.3.3.5", (("code", "ubyte", True), ("additional-data", "binary", False))),
    0x73: (
        "properties 3.2.4",
        (
            ("message-id", "message-id", False),
            ("user-id", "binary", False),
            ("to", "string", False),
            ("subject", "string", False),
            ("reply-to", "string", False),
            ("correlation-id", "message-id", False),
            ("content-type", "symbol", False),
            ("content-encoding", "symbol", False),
            ("absolute-expiry-time", "timestamp", False),
            ("creation-time", "timestamp", False),
            ("group-id", "string", False),
            ("group-sequence", "uint", False),
            ("reply-to-group-id", "string", False),
        ),
    ),
}
COMPOSITE_FIELDS = {
    "source": {0x28},
    "target": {0x29},
    "error": {0x1D},
    "delivery-state": {0x23, 0x24, 0x25, 0x26, 0x27},
    "outcome": {0x24, 0x25, 0x26, 0x27},
}
PERFORMATIVES = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x40, 0x44}


# ------------------------------------------------------------------ reading the bytes
def _list_elements(buf: bytes, pos: int) -> list[int]:
    """Positions of the elements of the list encoded at pos (list0, list8, list32)."""
    code = buf[pos]
    if code == 0x45:
        return []
    if code == 0xC0:
        count, p = buf[pos + 2], pos + 3
    elif code == 0xD0:
        count, p = struct.unpack_from(">I", buf, pos + 5)[0], pos + 9
    else:
        raise AssertionError(f"composite body is not a list (constructor 0x{code:02x})")
    out = []
    for _ in range(count):
        out.append(p)
        p = skip(buf, p)
    return out


@dataclass
class Checked:
    """What the checker saw: composites by name, every violation, and the decoded descriptors."""

    seen: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def check_composite(buf: bytes, pos: int, allowed: set[int], where: str, out: Checked) -> int:
    """Check the described list at pos against SPEC; returns its descriptor code."""
    assert buf[pos] == 0x00, f"{where}: not a described type"
    descriptor, body = decode(buf, pos + 1)
    if descriptor not in allowed:
        out.errors.append(f"{where}: descriptor {descriptor!r} not one of {sorted(allowed)}")
        return -1
    if buf[pos + 1] not in CODES["ulong"]:
        out.errors.append(f"{where}: descriptor encoded as 0x{buf[pos + 1]:02x}, not ulong")
    name, fields = SPEC[descriptor]
    out.seen.add(name.split()[0])
    elements = _list_elements(buf, body)
    if len(elements) > len(fields):
        out.errors.append(f"{name}: {len(elements)} fields, the spec has {len(fields)}")
    for i, (fname, ftype, mandatory) in enumerate(fields):
        code = buf[elements[i]] if i < len(elements) else NULL
        at = f"{where} > {name} {fname}"
        if code == NULL:
            if mandatory:
                out.errors.append(f"{at}: mandatory field is null")
            continue
        if ftype in COMPOSITE_FIELDS:
            check_composite(buf, elements[i], COMPOSITE_FIELDS[ftype], at, out)
        elif code not in CODES[ftype]:
            out.errors.append(f"{at}: constructor 0x{code:02x} is not a {ftype} ({sorted(CODES[ftype])})")
        elif ftype == "fields":
            _check_symbol_keys(buf, elements[i], at, out)
        elif ftype == "symbol[]" and code in (0xE0, 0xF0):
            width = 1 if code == 0xE0 else 4
            element_code = buf[elements[i] + 1 + 2 * width]
            if element_code not in CODES["symbol"]:
                out.errors.append(f"{at}: array of 0x{element_code:02x}, not of symbols")
    return int(descriptor)


def _check_symbol_keys(buf: bytes, pos: int, where: str, out: Checked) -> None:
    """`fields` (2.8.13) and filter-set (3.5.8): every key a symbol."""
    code = buf[pos]
    count, p = (
        (buf[pos + 2], pos + 3) if code == 0xC1 else (struct.unpack_from(">I", buf, pos + 5)[0], pos + 9)
    )
    for _ in range(count // 2):
        if buf[p] not in CODES["symbol"]:
            out.errors.append(f"{where}: map key constructor 0x{buf[p]:02x} is not a symbol")
        p = skip(buf, skip(buf, p))


def frames_of(stream: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(frame type, channel, body) of every frame in a byte stream, protocol headers skipped."""
    pos = 0
    while pos + 8 <= len(stream):
        if stream[pos : pos + 4] == b"AMQP":
            pos += 8
            continue
        size, doff, ftype, channel = struct.unpack_from(">IBBH", stream, pos)
        if size < 8 or pos + size > len(stream):
            return
        yield ftype, channel, stream[pos + doff * 4 : pos + size]
        pos += size


def check_stream(stream: bytes, out: Checked) -> list[bytes]:
    """Check every frame the server sent; return the payloads of single-frame transfers (messages)."""
    payloads = []
    for ftype, _channel, body in frames_of(stream):
        if not body:
            continue  # heartbeat
        code = check_composite(body, 0, PERFORMATIVES, f"frame type {ftype}", out)
        if code == 0x14:
            elements = _list_elements(body, skip(body, 1))
            end = skip(body, 0)
            more = len(elements) > 5 and body[elements[5]] == 0x41
            if not more and body[elements[1]] != NULL:
                payloads.append(body[end:])
    return payloads


def message_sections(payload: bytes) -> dict[int, int]:
    """Section descriptor -> position of the section, for a (management reply) message."""
    out: dict[int, int] = {}
    pos = 0
    while pos < len(payload):
        descriptor, _ = decode(payload, pos + 1)
        out[int(descriptor)] = pos
        pos = skip(payload, pos)
    return out


# ------------------------------------------------------------------ a recording proxy
class RecordingProxy:
    """Forward 127.0.0.1:<port> to the emulator and keep each connection's bytes in both directions."""

    def __init__(self, target_port: int) -> None:
        """Listen on a free port."""
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.to_client: list[bytearray] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            record = bytearray()
            with self.lock:
                self.to_client.append(record)
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, record), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if record is not None:
                    with self.lock:
                        record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def streams(self) -> list[bytes]:
        """What the server sent on each connection so far."""
        with self.lock:
            return [bytes(r) for r in self.to_client]

    def close(self) -> None:
        """Stop accepting."""
        self.closed = True
        self.listener.close()


# ------------------------------------------------------------------ a raw client for what the SDK never sends
def _frame(channel: int, code: int, fields: list[Any], payload: bytes = b"", ftype: int = 0) -> bytes:
    body = bytearray()
    encode(Described(code, fields), body)
    body += payload
    return struct.pack(">IBBH", 8 + len(body), 2, ftype, channel) + bytes(body)


def _request(message_id: Any, reply_to: str, operation: str, body: dict[str, Any]) -> bytes:
    out = bytearray()
    encode(Described(0x73, [message_id, None, None, None, reply_to]), out)
    encode(Described(0x74, {"operation": operation}), out)
    encode(Described(0x77, body), out)
    return bytes(out)


class RawClient:
    """Just enough AMQP to attach links and send a few frames; the replies are read by the proxy."""

    def __init__(self, port: int) -> None:
        """Connect, SASL ANONYMOUS, open, begin."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"AMQP\x03\x01\x00\x00")
        self.sock.sendall(_frame(0, 0x41, [Symbol("ANONYMOUS")], ftype=1))
        self.sock.sendall(b"AMQP\x00\x01\x00\x00")
        self.sock.sendall(_frame(0, 0x10, ["raw-wire-check", "localhost", 65536]))
        self.sock.sendall(_frame(0, 0x11, [None, 0, 5000, 5000]))
        self.next_transfer = 0

    def attach(self, handle: int, name: str, role: bool, address: str, **kw: Any) -> None:
        """role False = we send, True = we receive."""
        source = Described(
            0x28, [address if role else name, None, None, None, None, None, None, kw.get("filter")]
        )
        target = Described(0x29, [name if role else address])
        self.sock.sendall(
            _frame(0, 0x12, [name, handle, role, kw.get("snd", 0), kw.get("rcv", 0), source, target])
        )

    def flow(self, handle: int, credit: int, *, drain: bool = False, echo: bool = False) -> None:
        """Link flow: grant credit (optionally drain, or ask for the link state back)."""
        self.sock.sendall(
            _frame(0, 0x13, [0, 5000, self.next_transfer, 5000, handle, 0, credit, None, drain, echo])
        )

    def transfer(self, handle: int, delivery_id: int, payload: bytes, settled: bool = False) -> None:
        """One single-frame delivery."""
        tag = struct.pack(">I", delivery_id)
        self.sock.sendall(_frame(0, 0x14, [handle, delivery_id, tag, 0, settled, False], payload))
        self.next_transfer += 1

    def disposition(self, first: int, state: Described) -> None:
        """Settle our receiver's delivery with an outcome (unsettled, so the emulator answers)."""
        self.sock.sendall(_frame(0, 0x15, [True, first, first, False, state]))

    def close(self) -> None:
        """Send a malformed frame (a performative that is not a described list): the emulator closes."""
        try:
            self.sock.sendall(struct.pack(">IBBH", 12, 2, 0, 0) + b"\x71\x00\x00\x01")
            self.sock.settimeout(5)
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        self.sock.close()


# ------------------------------------------------------------------ the session
MESSAGE_IDS: dict[str, Any] = {
    "ulong": ULong(7),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "string": "request-1",
    "binary": b"\x01\x02\x03",
}


@pytest.fixture(scope="module")
def captured(servicebus_emulator: Any) -> Iterator[tuple[Checked, list[bytes]]]:
    """Drive every kind of frame through the proxy; (check result, management reply payloads)."""
    proxy = RecordingProxy(servicebus_emulator.port)
    conn = (
        f"Endpoint=sb://127.0.0.1:{proxy.port};SharedAccessKeyName={SAS_KEY_NAME};SharedAccessKey=local;"
        "UseDevelopmentEmulator=true;"
    )
    plain = servicebus_emulator.make_queue(lock_duration=30.0)
    sessions = servicebus_emulator.make_queue(requires_session=True, lock_duration=30.0)
    try:
        _drive_sdk(conn, plain, sessions)
        _drive_raw(proxy.port, plain)  # returns once the emulator has closed the raw connection
        out = Checked()
        payloads: list[bytes] = []
        for stream in proxy.streams():
            payloads += check_stream(stream, out)
        yield out, payloads
    finally:
        proxy.close()
        servicebus_emulator.delete_queue(plain)
        servicebus_emulator.delete_queue(sessions)


def _drive_sdk(conn: str, plain: str, sessions: str) -> None:
    with ServiceBusClient.from_connection_string(conn, retry_total=0) as c:
        with c.get_queue_sender(plain) as s:
            s.send_messages([ServiceBusMessage(f"m{i}") for i in range(5)])
            s.schedule_messages(ServiceBusMessage("later"), datetime.now(UTC) + timedelta(hours=1))
        with c.get_queue_receiver(plain, max_wait_time=2) as r:
            got: list[Any] = []
            deadline = time.monotonic() + 20
            while len(got) < 5 and time.monotonic() < deadline:
                got += r.receive_messages(max_message_count=5, max_wait_time=1)
            assert len(got) == 5
            r.complete_message(got[0])
            r.abandon_message(got[1])
            r.dead_letter_message(got[2], reason="r", error_description="d")
            r.defer_message(got[3])
            r.peek_messages(max_message_count=2)
            [deferred] = r.receive_deferred_messages([got[3].sequence_number])
            r.complete_message(deferred)
            r.renew_message_lock(got[4])
            r.complete_message(got[4])
        with c.get_queue_sender(plain) as s:
            [seq] = s.schedule_messages(
                ServiceBusMessage("cancelled"), datetime.now(UTC) + timedelta(hours=1)
            )
            s.cancel_scheduled_messages(seq)
        with c.get_queue_sender(sessions) as s:
            s.send_messages(ServiceBusMessage("x", session_id="S"))
        with c.get_queue_receiver(sessions, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r:
            r.session.set_state(b"state")
            r.session.get_state()
            r.session.renew_lock()
            for m in r.receive_messages(max_wait_time=2):
                r.complete_message(m)
        assert list(c.list_queue_sessions(sessions)) == ["S"]  # get-message-sessions
        with c.get_queue_receiver(plain, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
            r.receive_messages(max_wait_time=1)
        with pytest.raises(ServiceBusError), c.get_queue_sender("no-such-queue") as s:
            s.send_messages(ServiceBusMessage("x"))


def _drive_raw(port: int, plain: str) -> None:
    raw = RawClient(port)
    # $management: a request per message-id type, replies on a receiver link addressed by reply-to
    raw.attach(0, "mgmt-out", False, f"{plain}/$management")
    raw.attach(1, "mgmt-in", True, f"{plain}/$management")
    raw.flow(1, 10)
    for i, mid in enumerate(MESSAGE_IDS.values()):
        body = {"from-sequence-number": Long(1), "message-count": Int(1)}
        raw.transfer(0, i, _request(mid, "mgmt-in", "com.microsoft:peek-message", body))
    # $cbs put-token with a ulong message-id, as uamqp sends it
    raw.attach(2, "cbs-out", False, "$cbs")
    raw.attach(3, "cbs-in", True, "$cbs")
    raw.flow(3, 10)
    raw.transfer(2, 4, _request(ULong(99), "cbs-in", "put-token", {}))
    # one message in, then a peek-lock receiver: a released outcome, drain and echo flows
    raw.attach(5, "send", False, plain)
    message = _encoded(Described(0x77, "raw"))
    raw.transfer(5, 5, message)
    raw.attach(4, "recv", True, plain, snd=0, rcv=1)
    raw.flow(4, 1)
    time.sleep(1.0)
    raw.disposition(5, Described(0x26, []))  # delivery ids 0-4 were the five replies above
    raw.flow(4, 5, drain=True)
    raw.flow(4, 0, echo=True)
    time.sleep(1.0)
    raw.close()


# ------------------------------------------------------------------ the assertions
def test_every_field_of_every_frame_has_its_spec_type(captured: tuple[Checked, list[bytes]]) -> None:
    checked, _ = captured
    assert checked.errors == []


def test_every_frame_kind_and_outcome_was_seen(captured: tuple[Checked, list[bytes]]) -> None:
    checked, _ = captured
    performatives = {"open", "begin", "attach", "flow", "transfer", "disposition", "detach", "end", "close"}
    sasl = {"sasl-mechanisms", "sasl-outcome"}
    outcomes = {"accepted", "rejected", "modified", "released"}
    terminus = {"source", "target", "error"}
    assert performatives | sasl | outcomes | terminus <= checked.seen


def test_management_and_cbs_replies_keep_the_request_message_id_type(
    captured: tuple[Checked, list[bytes]],
) -> None:
    _, payloads = captured
    correlation: dict[bytes, tuple[int, dict[str, int]]] = {}
    for payload in payloads:
        sections = message_sections(payload)
        if 0x73 not in sections or 0x74 not in sections:
            continue  # a queue message, not a reply
        props = sections[0x73]
        elements = _list_elements(payload, skip(payload, props + 1))
        if len(elements) < 6 or payload[elements[5]] == NULL:
            continue
        cid_at = elements[5]
        raw_cid = payload[cid_at : skip(payload, cid_at)]
        app, _ = decode(payload, sections[0x74])
        status_codes = {
            str(k): payload[_value_position(payload, sections[0x74], str(k))]
            for k in app.value
            if str(k) in ("statusCode", "status-code")
        }
        correlation[raw_cid] = (payload[cid_at], status_codes)
    expected = {
        "ulong": ULong(7),
        "uuid": MESSAGE_IDS["uuid"],
        "string": MESSAGE_IDS["string"],
        "binary": MESSAGE_IDS["binary"],
        "cbs ulong": ULong(99),
    }
    for label, mid in expected.items():
        wire = _encoded(mid)
        assert wire in correlation, f"no reply correlated with the {label} message-id {mid!r}"
        code, status = correlation[wire]
        kind = label.split()[-1]
        assert code in CODES[kind], f"{label}: correlation-id constructor 0x{code:02x}"
        assert status and all(c in CODES["int"] for c in status.values()), (
            f"{label}: status code types {status}"
        )


# Service Bus management replies (Microsoft Learn, "AMQP 1.0 in Azure Service Bus: request-response-based
# operations"): application properties and amqp-value body entries -> (type, array element type)
REPLY_APPLICATION_PROPERTIES = {
    "statusCode": "int",
    "statusDescription": "string",
    "errorCondition": "symbol",
    "status-code": "int",  # $cbs
    "status-description": "string",
}
REPLY_BODY: dict[str, tuple[str, str | None]] = {
    "expirations": ("array", "timestamp"),  # renew-lock
    "expiration": ("timestamp", None),  # renew-session-lock
    "session-state": ("binary", None),  # get-session-state
    "messages": ("list", None),  # peek-message, receive-by-sequence-number: a list of maps
    "sequence-numbers": ("array", "long"),  # schedule-message
    "sessions-ids": ("array", "string"),  # get-message-sessions
    "skip": ("int", None),
}
REPLY_MESSAGE = {"message": "binary", "lock-token": "uuid"}
CODES["long"] = {0x55, 0x81}
CODES["array"] = {0xE0, 0xF0}
CODES["list"] = {0x45, 0xC0, 0xD0}


def _map_entries(buf: bytes, pos: int) -> list[tuple[str, int]]:
    """(key, value position) of the map encoded at pos."""
    code = buf[pos]
    assert code in CODES["map"], f"not a map: 0x{code:02x}"
    count, p = (
        (buf[pos + 2], pos + 3) if code == 0xC1 else (struct.unpack_from(">I", buf, pos + 5)[0], pos + 9)
    )
    out = []
    for _ in range(count // 2):
        key, after = decode(buf, p)
        out.append((str(key), after))
        p = skip(buf, after)
    return out


def _array_element_code(buf: bytes, pos: int) -> int:
    width = 1 if buf[pos] == 0xE0 else 4
    return buf[pos + 1 + 2 * width]


def test_management_reply_bodies_have_the_service_bus_types(captured: tuple[Checked, list[bytes]]) -> None:
    _, payloads = captured
    errors: list[str] = []
    seen: set[str] = set()
    for payload in payloads:
        sections = message_sections(payload)
        if 0x74 not in sections:
            continue
        app = _map_entries(payload, skip(payload, sections[0x74] + 1))
        if not {"statusCode", "status-code"} & {k for k, _ in app}:
            continue  # a queue message with application properties, not a reply
        for key, at in app:
            want = REPLY_APPLICATION_PROPERTIES.get(key)
            if want is None or payload[at] not in CODES[want]:
                errors.append(f"application property {key}: 0x{payload[at]:02x}, want {want}")
        body_at = skip(payload, sections[0x77] + 1)
        if payload[body_at] == NULL:
            continue
        for key, at in _map_entries(payload, body_at):
            seen.add(key)
            kind, element = REPLY_BODY.get(key, ("?", None))
            code = payload[at]
            if kind == "?" or (code != NULL and code not in CODES[kind]):
                errors.append(f"body {key}: 0x{code:02x}, want {kind}")
            elif (
                element is not None
                and code != NULL
                and _array_element_code(payload, at) not in CODES[element]
            ):
                errors.append(
                    f"body {key}: array of 0x{_array_element_code(payload, at):02x}, want {element}"
                )
            elif kind == "list":
                for item_at in _list_elements(payload, at):
                    for k, v in _map_entries(payload, item_at):
                        if payload[v] not in CODES[REPLY_MESSAGE.get(k, "described")]:
                            errors.append(f"body messages[] {k}: 0x{payload[v]:02x}")
    assert errors == []
    assert set(REPLY_BODY) <= seen, f"operations not exercised: {set(REPLY_BODY) - seen}"


def _encoded(value: Any) -> bytes:
    out = bytearray()
    encode(value, out)
    return bytes(out)


def _value_position(payload: bytes, section_pos: int, key: str) -> int:
    """Position of the value for `key` in the application-properties map of the section at pos."""
    p = skip(payload, section_pos + 1)
    code = payload[p]
    count, p = (
        (payload[p + 2], p + 3) if code == 0xC1 else (struct.unpack_from(">I", payload, p + 5)[0], p + 9)
    )
    for _ in range(count // 2):
        k, after = decode(payload, p)
        if str(k) == key:
            return after
        p = skip(payload, after)
    raise KeyError(key)
