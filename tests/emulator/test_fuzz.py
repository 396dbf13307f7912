"""Bounded fuzz: malformed AMQP never crashes the emulator, never leaves a connection hanging, and every
connection that got as far as AMQP ends with a close frame (AMQP 1.0 2.4.3) before the socket closes.

The seed corpus is captured, at test time, from a real azure-servicebus session (send, receive, complete)
through a recording proxy. A seeded generator (deterministic, no hypothesis database) derives cases
from it: bit flips and byte overwrites of single frames, truncations, deep nesting, huge declared sizes,
bad descriptors and random garbage. All cases run concurrently; the emulator uses short deadlines so the
cases that leave it waiting (truncations) end within about two seconds. Afterwards a normal SDK client
still sends and receives on the same emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from azure.servicebus import ServiceBusMessage

from devstack.emulator import frames
from devstack.emulator.codec import Described, Symbol, UInt, encode_bytes
from devstack.emulator.config import QueueProperties
from devstack.emulator.deadlines import Deadlines
from devstack.emulator.server import EmulatorServer, connection_string

from ._helpers import client, wait_until
from ._raw_amqp import CLOSE, Received, exchange, frame, frame_with_body

SEED = 20_261_207
DEADLINES = Deadlines(header_s=1.0, open_s=1.0, idle_timeout_ms=2000, close_linger_s=1.0)
CASE_BOUND_S = 15.0  # each case must end well within this (deadlines above are 1-2 s)
CONCURRENCY = 48
_HEADER = struct.Struct(">IBBH")


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    srv = EmulatorServer(None, deadlines=DEADLINES)
    srv.start()
    srv.create_queue("fuzz", QueueProperties())
    yield srv
    srv.stop()


# ------------------------------------------------------------------ capturing a real SDK session


class RecordingProxy:
    """TCP proxy to the emulator that records what each client connection sends."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.streams: list[bytearray] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            recorded = bytearray()
            self.streams.append(recorded)
            for src, dst, rec in ((downstream, upstream, recorded), (upstream, downstream, None)):
                t = threading.Thread(target=self._pipe, args=(src, dst, rec), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, rec: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if rec is not None:
                    rec += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        for t in self._threads:
            t.join(5)


def split_units(stream: bytes) -> list[bytes]:
    """A client byte stream as protocol headers and whole frames."""
    units: list[bytes] = []
    pos = 0
    while pos + 8 <= len(stream):
        if stream[pos : pos + 4] == b"AMQP":
            units.append(stream[pos : pos + 8])
            pos += 8
            continue
        size = _HEADER.unpack_from(stream, pos)[0]
        units.append(stream[pos : pos + size])
        pos += size
    return units


@pytest.fixture(scope="module")
def sdk_units(server: EmulatorServer) -> list[bytes]:
    proxy = RecordingProxy(server.port)
    try:
        with client(connection_string("127.0.0.1", proxy.port)) as sb:
            with sb.get_queue_sender("fuzz") as sender:
                sender.send_messages(
                    [ServiceBusMessage(f"seed-{i}", application_properties={"i": i}) for i in range(2)]
                )
            with sb.get_queue_receiver("fuzz", max_wait_time=2) as receiver:
                for m in receiver.receive_messages(max_message_count=2, max_wait_time=5):
                    receiver.complete_message(m)
    finally:
        proxy.close()
    longest = max(proxy.streams, key=len)
    units = split_units(bytes(longest))
    assert units[0] == frames.SASL_HEADER and frames.AMQP_HEADER in units, "unexpected capture"
    return units


# ------------------------------------------------------------------ case generation


def _open_index(units: list[bytes]) -> int:
    """Index of the client's open frame (the unit right after the AMQP header)."""
    return units.index(frames.AMQP_HEADER) + 1


def _with_body(unit: bytes, body: bytes) -> bytes:
    """The frame `unit` with its body replaced (size fixed up, header otherwise kept)."""
    _size, doff, ftype, channel = _HEADER.unpack_from(unit, 0)
    return _HEADER.pack(doff * 4 + len(body), doff, ftype, channel) + unit[8 : doff * 4] + body


def make_cases(units: list[bytes], rng: random.Random) -> list[tuple[str, list[bytes]]]:
    """Deterministic malformed inputs derived from the captured session."""
    cases: list[tuple[str, list[bytes]]] = []
    frame_idx = [i for i, u in enumerate(units) if not u.startswith(b"AMQP")]
    through_open = units[: _open_index(units) + 1]

    for n in range(90):  # one bit flipped anywhere in one frame (header or body), then a valid close
        i = rng.choice(frame_idx)
        flipped = bytearray(units[i])
        bit = rng.randrange(len(flipped) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        cases.append((f"bitflip-{n}-unit{i}-bit{bit}", [*units[:i], bytes(flipped), CLOSE]))

    for n in range(60):  # body bytes overwritten, size kept consistent: exercises the decoder itself
        i = rng.choice(frame_idx)
        unit = units[i]
        body = bytearray(unit[unit[4] * 4 :])
        if not body:
            continue
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        cases.append((f"overwrite-{n}-unit{i}", [*units[:i], _with_body(unit, bytes(body)), CLOSE]))

    for n in range(30):  # the stream cut in the middle of a unit: the deadlines must end it
        i = rng.randrange(len(units))
        cut = rng.randrange(1, len(units[i])) if len(units[i]) > 1 else 0
        cases.append((f"truncated-{n}-unit{i}-at{cut}", [*units[:i], units[i][:cut]]))

    deep = b"\xc0\x03\x01" * 50_000 + b"\x40"
    cases.append(("deep-list-performative", [*through_open, frame_with_body(deep)]))
    cases.append(("deep-described", [*through_open, frame_with_body(b"\x00" * 50_000 + b"\x40")]))
    attach = next(u for u in units if len(u) > 11 and u[8 + 2] == frames.ATTACH)
    cases.append(
        ("deep-list-in-attach", [*units[: units.index(attach)], _with_body(attach, b"\x00\x53\x12" + deep)])
    )

    huge = [
        ("frame-size-4GiB", _HEADER.pack(0xFFFFFFF0, 2, 0, 0)),
        ("frame-size-7", _HEADER.pack(7, 2, 0, 0)),
        ("doff-0", _HEADER.pack(12, 0, 0, 0) + b"\x00\x53\x18\x45"),
        ("list32-count-4G", frame_with_body(b"\x00\x53\x11\xd0\x00\x00\x00\x04\xff\xff\xff\xff")),
        ("list32-size-4G", frame_with_body(b"\x00\x53\x11\xd0\xff\xff\xff\xff\x00\x00\x00\x01\x40")),
        (
            "array-4G-nulls",
            frame_with_body(b"\x00\x53\x11\xc0\x07\x01\xf0\x00\x00\x00\x05\xff\xff\xff\xff\x40"),
        ),
        ("binary32-4G", frame_with_body(b"\x00\x53\x12\xc0\x06\x01\xb0\xff\xff\xff\xf0")),
        ("map-odd-count", frame_with_body(b"\x00\x53\x11\xc1\x02\x01\x40")),
    ]
    cases += [(name, [*through_open, f]) for name, f in huge]

    descriptors = [
        ("descriptor-list", b"\x00\xc0\x01\x00\x45"),
        ("descriptor-ulong-max", b"\x00\x80\xff\xff\xff\xff\xff\xff\xff\xff\x45"),
        ("descriptor-unknown-symbol", encode_bytes(Described(Symbol("amqp:nonsense:list"), []))),
        ("descriptor-described", b"\x00\x00\x53\x10\x45\x45"),
        ("descriptor-error-code", encode_bytes(Described(frames.ERROR, [Symbol("x")]))),
        ("descriptor-sasl-in-amqp", encode_bytes(Described(frames.SASL_INIT, [Symbol("PLAIN")]))),
        ("not-described", encode_bytes([UInt(1), UInt(2)])),
        ("described-not-list", encode_bytes(Described(frames.BEGIN, "text"))),
        ("unknown-constructor", b"\x00\x53\x11\xff"),
    ]
    cases += [(name, [*through_open, frame_with_body(body), CLOSE]) for name, body in descriptors]
    cases.append(("wrong-field-types", [*through_open, frame(frames.BEGIN, ["zero", [], {}, b"x"]), CLOSE]))

    for n in range(15):  # random garbage at each stage
        stage = rng.choice([1, 2, len(through_open)])
        garbage = rng.randbytes(rng.randint(1, 300))
        cases.append((f"garbage-{n}-after{stage}", [*units[:stage], garbage, CLOSE]))
    return cases


# ------------------------------------------------------------------ the test


async def _run_all(port: int, cases: list[tuple[str, list[bytes]]]) -> list[tuple[str, Received]]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str, chunks: list[bytes]) -> tuple[str, Received]:
        async with gate:
            return name, await exchange(port, chunks, timeout=CASE_BOUND_S)

    return list(await asyncio.gather(*(one(n, c) for n, c in cases)))


def test_fuzzed_frames_end_cleanly_and_the_sdk_keeps_working(
    server: EmulatorServer, sdk_units: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    cases = make_cases(sdk_units, random.Random(SEED))
    assert len(cases) > 200
    caplog.set_level(logging.INFO)
    results = asyncio.run(_run_all(server.port, cases))

    failures = []
    for name, got in results:
        if not got.eof:
            failures.append(f"{name}: not ended within {CASE_BOUND_S} s")
            continue
        amqp_codes = [code for ftype, _, code, _ in got.frames if ftype == frames.FRAME_AMQP]
        if frames.OPEN in amqp_codes and amqp_codes[-1] != frames.CLOSE:
            failures.append(f"{name}: the emulator's open was not followed by a close as the last frame")
    assert not failures, "\n".join(failures)

    # every case that reached the decoder got an answer it could act on: at least some error closes
    errors = [got.close_error() for _, got in results]
    conditions = {err[0] for err in errors if err is not None}
    assert {"amqp:decode-error", "amqp:connection:framing-error"} <= conditions, conditions

    # no traceback, no error-level log: protocol errors are warnings, deadlines are info
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]

    # no connection left behind, the server thread alive, and a normal client still works
    assert wait_until(lambda: server.call(lambda: len(server.core.connections)) == 0, timeout=10)
    server.create_queue("after-fuzz", QueueProperties())
    with client(server.connection_string) as sb:
        with sb.get_queue_sender("after-fuzz") as sender:
            sender.send_messages(ServiceBusMessage("still-alive"))
        with sb.get_queue_receiver("after-fuzz", max_wait_time=5) as receiver:
            got_msgs = receiver.receive_messages(max_message_count=1, max_wait_time=10)
            assert [str(m) for m in got_msgs] == ["still-alive"]
            receiver.complete_message(got_msgs[0])
