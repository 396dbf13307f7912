"""A raw AMQP 1.0 peer for protocol-error tests: send exact bytes, read back frames until the socket ends.

Frames are built and parsed with the emulator's codec; what the tests check is the emulator's behaviour
(which frames it answers with, that it hangs up in time), not the codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from devstack.emulator import frames
from devstack.emulator.codec import Described, Symbol, UInt, encode_bytes

_HEADER = struct.Struct(">IBBH")


def frame(performative: int, fields: list[Any], *, channel: int = 0, ftype: int = 0) -> bytes:
    """One frame, encoded the ordinary way."""
    return frame_with_body(encode_bytes(Described(performative, fields)), channel=channel, ftype=ftype)


def frame_with_body(body: bytes, *, channel: int = 0, ftype: int = 0, doff: int = 2) -> bytes:
    """A frame around an arbitrary body (which need not be valid AMQP)."""
    pad = b"\x00" * (doff * 4 - 8) if doff >= 2 else b""
    return _HEADER.pack(8 + len(pad) + len(body), doff, ftype, channel) + pad + body


SASL_INIT_ANONYMOUS = frame(frames.SASL_INIT, [Symbol("ANONYMOUS")], ftype=frames.FRAME_SASL)


def open_frame(idle_timeout_ms: int | None = None) -> bytes:
    """A client open (container id only, plus an idle time-out when given)."""
    return frame(
        frames.OPEN, ["raw-test-client", "localhost", UInt(65536), None, UInt(idle_timeout_ms or 0) or None]
    )


CLOSE = frame(frames.CLOSE, [])
EMPTY = _HEADER.pack(8, 2, 0, 0)


@dataclass
class Received:
    """What the emulator sent back, and how the connection ended."""

    raw: bytes = b""
    frames: list[tuple[int, int, int, list[Any]]] = field(
        default_factory=list
    )  # (type, channel, code, fields)
    empty_frames: int = 0
    eof: bool = False
    elapsed_s: float = 0.0

    def codes(self) -> list[int]:
        """Performative codes in arrival order."""
        return [code for _, _, code, _ in self.frames]

    def close_error(self) -> tuple[str, str] | None:
        """(condition, description) of the emulator's close frame, if it sent one with an error."""
        for _, _, code, fields_ in self.frames:
            if code == frames.CLOSE and fields_ and isinstance(fields_[0], Described):
                err = fields_[0].value
                return str(err[0]), str(err[1] if len(err) > 1 else "")
        return None


def parse_stream(data: bytes) -> tuple[list[tuple[int, int, int, list[Any]]], int, bytes]:
    """Split server output into frames after any 8-byte protocol headers: (frames, empty frames, headers)."""
    out: list[tuple[int, int, int, list[Any]]] = []
    headers = b""
    empty = 0
    pos = 0
    while pos + 8 <= len(data):
        if data[pos : pos + 4] == b"AMQP":
            headers += data[pos : pos + 8]
            pos += 8
            continue
        size, doff, ftype, channel = _HEADER.unpack_from(data, pos)
        if size < 8 or pos + size > len(data):
            break
        body = data[pos + doff * 4 : pos + size]
        pos += size
        if not body:
            empty += 1
            continue
        code, fields_, _ = frames.parse_frame_body(body)
        out.append((ftype, channel, code, fields_))
    return out, empty, headers


async def exchange(
    port: int,
    chunks: list[bytes],
    *,
    timeout: float = 10.0,
    pause_s: float = 0.0,
    host: str = "127.0.0.1",
) -> Received:
    """Connect, write each chunk (pausing between them if asked) while reading, until EOF or timeout.

    Reading runs alongside writing, as a real client's does, so a close that arrives mid-way is seen."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    got = bytearray()

    async def read_all() -> bool:
        while True:
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError):
                return True
            if not data:
                return True
            got.extend(data)

    async def write_all() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                if pause_s:
                    await asyncio.sleep(pause_s)

    reading = asyncio.ensure_future(read_all())
    writing = asyncio.ensure_future(write_all())
    eof = False
    try:
        eof = await asyncio.wait_for(asyncio.shield(reading), timeout)
    except TimeoutError:
        reading.cancel()
    finally:
        writing.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    parsed, empty, _ = parse_stream(bytes(got))
    return Received(bytes(got), parsed, empty, eof, time.monotonic() - started)


def run_exchange(port: int, chunks: list[bytes], **kwargs: Any) -> Received:
    """Sync wrapper for tests."""
    return asyncio.run(exchange(port, chunks, **kwargs))


def handshake(idle_timeout_ms: int | None = None) -> list[bytes]:
    """The bytes of a SASL ANONYMOUS handshake up to and including the client's open (pipelined)."""
    return [frames.SASL_HEADER, SASL_INIT_ANONYMOUS, frames.AMQP_HEADER, open_frame(idle_timeout_ms)]
