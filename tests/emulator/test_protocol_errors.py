"""Protocol errors end the connection the AMQP way (AMQP 1.0 2.2, 2.3.1, 2.4.1-2.4.5, 2.7.1, 2.8.15/16).

A raw peer sends exact bytes; each test checks which frames the emulator answers with and that it hangs
up within a generous bound. The emulator here runs with short deadlines (Deadlines below).
"""

from __future__ import annotations

import logging
import socket
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage

from devstack.emulator import frames
from devstack.emulator.codec import (
    MAX_NESTING_DEPTH,
    DecodeError,
    Described,
    Symbol,
    UInt,
    decode,
    encode_bytes,
    skip,
)
from devstack.emulator.config import QueueProperties
from devstack.emulator.deadlines import Deadlines
from devstack.emulator.limits import Limits
from devstack.emulator.server import EmulatorServer

from ._helpers import client, wait_until
from ._raw_amqp import CLOSE, EMPTY, frame, frame_with_body, handshake, parse_stream, run_exchange

SHORT = Deadlines(header_s=1.0, open_s=1.0, idle_timeout_ms=1500, close_linger_s=1.0)
BOUND_S = 15.0  # generous: the deadlines above are 1-1.5 s


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    srv = EmulatorServer(None, deadlines=SHORT)
    srv.start()
    yield srv
    srv.stop()


def deep_list(depth: int) -> bytes:
    """`depth` nested list8 constructors around a null (each declares a tiny size, as a fuzzer would)."""
    return b"\xc0\x03\x01" * depth + b"\x40"


# ------------------------------------------------------------------ decoder bounds (no socket)


def test_50000_deep_list_is_a_decode_error_not_a_recursion_error() -> None:
    for buf in (deep_list(50_000), b"\x00" * 50_000 + b"\x40", b"\x00\x53\x10" * 50_000 + b"\x45"):
        with pytest.raises(DecodeError) as info:
            decode(buf)
        assert info.value.condition == "amqp:decode-error"
    with pytest.raises(DecodeError):
        skip(b"\x00" * 50_000 + b"\x40", 0)


def test_nesting_up_to_the_bound_still_decodes() -> None:
    nested: list[Any] = [None]  # 64 sized lists (list8), one inside the other
    for _ in range(MAX_NESTING_DEPTH - 1):
        nested = [nested]
    value, end = decode(encode_bytes(nested))
    assert value == nested and end == len(encode_bytes(nested))
    with pytest.raises(DecodeError):
        decode(encode_bytes([nested]))


@pytest.mark.parametrize(
    ("buf", "why"),
    [
        (b"\xd0\xff\xff\xff\xff\x00\x00\x00\x01\x40", "list32 size beyond the buffer"),
        (b"\xd0\x00\x00\x00\x05\xff\xff\xff\xff\x40", "list32 count beyond the buffer"),
        (b"\xf0\x00\x00\x00\x05\xff\xff\xff\xff\x40", "array of 4 billion nulls"),
        (b"\xb0\xff\xff\xff\xf0abc", "binary32 longer than the buffer"),
        (b"\xc1\x03\x01\x40", "map with an odd count"),
        (b"\xc1\x05\x02\xc0\x01\x00\x40", "map keyed by a list"),
        (b"\xa1\x02\xff\xfe", "invalid UTF-8"),
        (b"\xa3\x01\xe9", "non-ASCII symbol"),
        (b"\x98\x01\x02", "truncated uuid"),
        (b"\x94\x01", "truncated decimal128"),
        (b"\x70\x01", "truncated uint"),
        (b"\xe0\x03\x01\x00\x40", "array whose element constructor is a descriptor without a value"),
        (b"", "nothing at all"),
    ],
)
def test_malformed_values_are_typed_decode_errors(buf: bytes, why: str) -> None:
    with pytest.raises(DecodeError):
        decode(buf)


def test_unknown_constructor_is_invalid_field_like_microsoft_amqp() -> None:
    with pytest.raises(DecodeError) as info:
        decode(b"\x99")
    assert info.value.condition == "amqp:invalid-field"


# ------------------------------------------------------------------ over the wire


def _assert_error_close(got, condition: str) -> str:
    """The emulator sent its open (2.4.1), then a close with `condition` as its last frame, then hung up."""
    assert got.eof, f"connection not ended within {BOUND_S} s: {got.frames}"
    codes = got.codes()
    assert frames.OPEN in codes, codes
    assert codes[-1] == frames.CLOSE, codes
    err = got.close_error()
    assert err is not None and err[0] == condition, err
    return err[1]


def test_deep_nesting_over_the_wire_closes_with_decode_error(server: EmulatorServer) -> None:
    got = run_exchange(server.port, [*handshake(), frame_with_body(deep_list(50_000))], timeout=BOUND_S)
    _assert_error_close(got, "amqp:decode-error")


def test_frame_larger_than_max_frame_size_is_a_framing_error(server: EmulatorServer) -> None:
    tier_frame = Limits.standard().max_frame_bytes  # what the emulator reads frames up to (Standard)
    oversized = struct.pack(">IBBH", tier_frame + 1, 2, 0, 0)
    got = run_exchange(server.port, [*handshake(), oversized], timeout=BOUND_S)
    description = _assert_error_close(got, "amqp:connection:framing-error")
    assert str(tier_frame + 1) in description


@pytest.mark.parametrize(
    "header",
    [
        struct.pack(">IBBH", 7, 2, 0, 0),  # size below the 8-byte header (2.3.1)
        struct.pack(">IBBH", 16, 1, 0, 0) + b"\x00" * 8,  # doff below 2
        struct.pack(">IBBH", 16, 5, 0, 0) + b"\x00" * 8,  # doff past the end of the frame
        struct.pack(">IBBH", 12, 2, 7, 0) + b"\x00\x53\x18\x45",  # unknown frame type
        frame(frames.BEGIN, [None, UInt(0), UInt(10), UInt(10)], channel=65535),  # beyond channel-max
    ],
    ids=["size<8", "doff<2", "doff>size", "type7", "channel>max"],
)
def test_bad_frame_headers_are_framing_errors(server: EmulatorServer, header: bytes) -> None:
    got = run_exchange(server.port, [*handshake(), header], timeout=BOUND_S)
    _assert_error_close(got, "amqp:connection:framing-error")


def test_first_frame_other_than_open_is_illegal_state(server: EmulatorServer) -> None:
    begin = frame(frames.BEGIN, [None, UInt(0), UInt(10), UInt(10)])
    got = run_exchange(server.port, [*handshake()[:-1], begin], timeout=BOUND_S)
    # the emulator had not sent its open yet: it sends one, then the close (2.4.1, 2.4.3)
    assert [code for ftype, _, code, _ in got.frames if ftype == frames.FRAME_AMQP] == [
        frames.OPEN,
        frames.CLOSE,
    ]
    _assert_error_close(got, "amqp:illegal-state")


def test_missing_mandatory_field_is_invalid_field(server: EmulatorServer) -> None:
    begin = frame(frames.BEGIN, [None, UInt(0), UInt(10), UInt(10)])
    attach_without_name = frame(frames.ATTACH, [None, UInt(0), True])
    got = run_exchange(server.port, [*handshake(), begin, attach_without_name], timeout=BOUND_S)
    description = _assert_error_close(got, "amqp:invalid-field")
    assert "attach.name" in description


def test_unknown_performative_descriptor_is_decode_error(server: EmulatorServer) -> None:
    body = encode_bytes(Described(Symbol("example:not-a-performative:list"), []))
    got = run_exchange(server.port, [*handshake(), frame_with_body(body)], timeout=BOUND_S)
    _assert_error_close(got, "amqp:decode-error")


def test_a_huge_disposition_range_is_answered_promptly(server: EmulatorServer) -> None:
    """first=0, last=2^32-1 must not walk four billion delivery ids."""
    begin = frame(frames.BEGIN, [None, UInt(0), UInt(10), UInt(10)])
    disposition = frame(frames.DISPOSITION, [True, UInt(0), UInt(2**32 - 1), False, None], channel=0)
    got = run_exchange(server.port, [*handshake(), begin, disposition, CLOSE], timeout=BOUND_S)
    assert got.eof
    assert got.codes()[-1] == frames.CLOSE and got.close_error() is None  # the ordinary close reply


@pytest.mark.parametrize(
    "header",
    [
        b"HTTP/1.1",
        b"AMQP\x00\x01\x00\x01",
        b"AMQP\x01\x01\x00\x00",
        b"AMQP\x02\x01\x00\x00",
        b"\x16\x03\x01\x02\x00",
    ],
    ids=["http", "amqp-1.0.1", "proto-1", "tls", "tls-client-hello"],
)
def test_malformed_protocol_header_gets_our_header_and_a_closed_socket(
    server: EmulatorServer, header: bytes
) -> None:
    # 2.2: "the server MUST send a protocol header with a supported protocol version and then close
    # the socket"
    got = run_exchange(server.port, [header.ljust(8, b"\x00")], timeout=BOUND_S)
    assert got.eof
    assert got.raw == frames.SASL_HEADER


def test_bad_header_after_sasl_gets_the_amqp_header_back(server: EmulatorServer) -> None:
    sasl, init, _, _ = handshake()
    got = run_exchange(server.port, [sasl, init, b"AMQP\x00\x01\x00\x09"], timeout=BOUND_S)
    assert got.eof
    assert got.raw.endswith(frames.AMQP_HEADER)
    assert frames.CLOSE not in got.codes()  # no AMQP connection existed to close


def test_no_protocol_header_within_the_deadline_closes_the_socket(server: EmulatorServer) -> None:
    got = run_exchange(server.port, [b"AMQ"], timeout=BOUND_S)
    assert got.eof and got.raw == b""
    assert got.elapsed_s >= SHORT.header_s * 0.9


def test_no_open_after_the_header_gets_open_then_close(server: EmulatorServer) -> None:
    sasl, init, amqp, _ = handshake()
    got = run_exchange(server.port, [sasl, init, amqp], timeout=BOUND_S)
    description = _assert_error_close(got, "amqp:connection:forced")
    assert "No open frame" in description
    assert got.elapsed_s >= SHORT.open_s * 0.9


def test_no_open_during_sasl_closes_the_socket(server: EmulatorServer) -> None:
    got = run_exchange(server.port, [frames.SASL_HEADER], timeout=BOUND_S)
    assert got.eof
    assert got.raw.startswith(frames.SASL_HEADER)
    assert got.codes() == [frames.SASL_MECHANISMS]


def test_idle_peer_is_closed_like_service_bus_does(server: EmulatorServer) -> None:
    got = run_exchange(server.port, handshake(), timeout=BOUND_S)
    description = _assert_error_close(got, "amqp:connection:forced")
    assert "inactive for more than the allowed 1500 milliseconds" in description
    assert got.elapsed_s >= SHORT.idle_timeout_ms / 1000 * 0.9
    opens = [f for _, _, code, f in got.frames if code == frames.OPEN]
    assert opens[0][4] == SHORT.idle_timeout_ms  # advertised in open, then enforced


def test_empty_frames_keep_a_quiet_connection_open() -> None:
    # its own emulator with a 2.5 s idle time-out, so a stalled test process (up to ~2 s) is not mistaken
    # for an idle peer; empty frames 0.25 s apart for ~5.5 s: more than twice the time-out passes
    srv = EmulatorServer(None, deadlines=Deadlines(idle_timeout_ms=2500, close_linger_s=1.0))
    srv.start()
    try:
        chunks = [*handshake(), *([EMPTY] * 22), CLOSE]
        got = run_exchange(srv.port, chunks, pause_s=0.25, timeout=BOUND_S + 6)
    finally:
        srv.stop()
    assert got.eof
    assert got.codes()[-1] == frames.CLOSE
    assert got.close_error() is None  # the reply to our close, not an idle time-out


def test_emulator_sends_empty_frames_when_the_peer_asks_for_them(server: EmulatorServer) -> None:
    # the peer advertises 400 ms: the emulator owes it a frame every 200 ms; wait ~2.4 s
    chunks = [*handshake(idle_timeout_ms=400), *([EMPTY] * 8), CLOSE]
    got = run_exchange(server.port, chunks, pause_s=0.3, timeout=BOUND_S)
    assert got.eof and got.close_error() is None
    assert got.empty_frames >= 1


def test_service_bus_idle_time_out_is_the_default(servicebus_emulator) -> None:
    got = run_exchange(servicebus_emulator.port, [*handshake(), CLOSE], timeout=BOUND_S)
    opens = [f for _, _, code, f in got.frames if code == frames.OPEN]
    assert opens and opens[0][4] == 120_000


def test_the_sdk_reconnects_after_an_idle_close(
    server: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender left idle past the time-out is closed (as Service Bus does after 120 s) and the SDK's next
    send opens a new connection and succeeds."""
    caplog.set_level(logging.INFO, logger="devstack.emulator")
    queue = server.create_queue(f"idle-{uuid.uuid4().hex[:8]}", QueueProperties())
    with client(server.connection_string) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("before"))
            assert wait_until(
                lambda: any("no idle within" in r.getMessage() for r in caplog.records), timeout=BOUND_S
            )
            sender.send_messages(ServiceBusMessage("after"))
        with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
            bodies = sorted(str(m) for m in receiver.receive_messages(max_message_count=2, max_wait_time=10))
    assert bodies == ["after", "before"]


def test_a_peer_that_never_answers_our_close_is_cut_off(server: EmulatorServer) -> None:
    """After an error close the emulator reads on for close_linger_s only (2.4.3), then drops the socket."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"".join([*handshake(), struct.pack(">IBBH", 7, 2, 0, 0)]))
        sock.settimeout(BOUND_S)
        received = b""
        while chunk := sock.recv(65536):  # the close, then EOF from the emulator's write side
            received += chunk
        assert frames.CLOSE in [code for _, _, code, _ in parse_stream(received)[0]]
        # the socket stays open on our side; the emulator gives up on its own
        assert wait_until(lambda: server.call(lambda: len(server.core.connections)) == 0, timeout=BOUND_S)


@pytest.fixture(scope="module")
def link_tracking_server() -> Iterator[EmulatorServer]:
    """No-link limit of 1 s; an idle time-out long enough that empty frames 0.25 s apart always satisfy it."""
    srv = EmulatorServer(None, deadlines=Deadlines(idle_timeout_ms=3000, no_link_s=1.0, close_linger_s=1.0))
    srv.start()
    yield srv
    srv.stop()


def test_a_connection_without_links_is_closed_like_service_bus_does(
    link_tracking_server: EmulatorServer,
) -> None:
    # heartbeats keep the idle timer happy, but no link is ever attached
    got = run_exchange(
        link_tracking_server.port, [*handshake(), *([EMPTY] * 12), CLOSE], pause_s=0.25, timeout=BOUND_S
    )
    description = _assert_error_close(got, "amqp:connection:forced")
    assert "allowed 1000 milliseconds and is closed by container 'LinkTracker'" in description


def test_a_connection_with_a_link_is_not_closed_for_want_of_links(
    link_tracking_server: EmulatorServer,
) -> None:
    begin = frame(frames.BEGIN, [None, UInt(0), UInt(100), UInt(100)])
    attach = frame(
        frames.ATTACH,
        ["cbs-receiver", UInt(0), True, None, None, Described(0x28, ["$cbs"]), Described(0x29, [])],
    )
    got = run_exchange(
        link_tracking_server.port,
        [*handshake(), begin, attach, *([EMPTY] * 10), CLOSE],
        pause_s=0.25,
        timeout=BOUND_S,
    )
    assert got.eof
    assert frames.ATTACH in got.codes()
    assert got.codes()[-1] == frames.CLOSE and got.close_error() is None


def test_a_message_with_an_undecodable_application_property_is_refused_at_send() -> None:
    """Sections the broker reads later (filters, forwarding, dead-lettering) are checked when they arrive."""
    from devstack.emulator.message import MessageError, parse_message

    body = b"\x00\x53\x75\xa0\x02hi"
    deep_value = b"\x00\x53\x74\xd1" + struct.pack(">II", 4 + 3 + 3 * 50_000 + 1, 2) + b"\xa1\x01k"
    deep_value += deep_list(50_000)
    with pytest.raises((DecodeError, MessageError)):
        parse_message(deep_value + body)
    bad_utf8 = b"\x00\x53\x74\xc1\x08\x02\xa1\x01k\xa1\x02\xff\xfe"
    with pytest.raises((DecodeError, MessageError)):
        parse_message(bad_utf8 + body)
    good = b"\x00\x53\x74\xc1\x08\x02\xa1\x01k\xa1\x02ok"
    assert parse_message(good + body).app_property("k") == "ok"
