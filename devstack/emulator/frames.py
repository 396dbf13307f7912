"""AMQP 1.0 frame layout, performative codes and the few composite types the broker emits."""

from __future__ import annotations

import struct
from typing import Any

from . import descriptors as d
from .codec import DecodeError, Described, Symbol, decode, encode
from .descriptors import *  # noqa: F403  (re-exported: frames.OPEN etc. are used across the emulator)
from .wire import composite

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
TLS_HEADER = b"AMQP\x02\x01\x00\x00"

FRAME_AMQP = 0
FRAME_SASL = 1


BATCH_MESSAGE_FORMAT = 0x80013700

# roles on the wire: false = sender, true = receiver
ROLE_SENDER = False
ROLE_RECEIVER = True

_FRAME_HEADER = struct.Struct(">IBBH")


def pad(fields: list[Any], width: int) -> list[Any]:
    """Extend a composite's field list with nulls to its full width (for strict decoders)."""
    return fields + [None] * (width - len(fields)) if len(fields) < width else fields


OUTCOME_NAMES = {
    d.ACCEPTED: "accepted",
    d.REJECTED: "rejected",
    d.RELEASED: "released",
    d.MODIFIED: "modified",
    d.RECEIVED: "received",
}


def build_frame(
    channel: int, performative: int, fields: list[Any], payload: bytes = b"", ftype: int = 0
) -> bytes:
    """Encode a performative (and optional transfer payload) into one frame."""
    body = bytearray(_FRAME_HEADER.size)
    # every field typed by the spec schema (wire.py) and sent, trailing nulls included
    encode(composite(performative, fields), body)
    body += payload
    _FRAME_HEADER.pack_into(body, 0, len(body), 2, ftype, channel)
    return bytes(body)


def frame_overhead(channel: int, performative: int, fields: list[Any]) -> int:
    """Size of a frame without payload; used to split large transfers to the peer's max frame size."""
    return len(build_frame(channel, performative, fields))


EMPTY_FRAME = _FRAME_HEADER.pack(8, 2, 0, 0)


def parse_frame_body(body: bytes) -> tuple[int, list[Any], int]:
    """Decode the performative in a frame body: (code, fields, offset where the payload starts)."""
    value, pos = decode(body, 0)
    if not isinstance(value, Described) or not isinstance(value.value, list):
        raise DecodeError("frame body is not a described list (a performative)")
    code = value.descriptor
    if isinstance(code, bool) or not isinstance(code, int):
        code = _SYMBOLIC.get(str(code), -1)
    return code, value.value, pos


_SYMBOLIC = {
    "amqp:open:list": d.OPEN,
    "amqp:begin:list": d.BEGIN,
    "amqp:attach:list": d.ATTACH,
    "amqp:flow:list": d.FLOW,
    "amqp:transfer:list": d.TRANSFER,
    "amqp:disposition:list": d.DISPOSITION,
    "amqp:detach:list": d.DETACH,
    "amqp:end:list": d.END,
    "amqp:close:list": d.CLOSE,
    "amqp:sasl-init:list": d.SASL_INIT,
    "amqp:sasl-response:list": d.SASL_RESPONSE,
}


def field(fields: list[Any], index: int, default: Any = None) -> Any:
    """Fetch a performative field that the peer may have left out (trailing nulls omitted)."""
    if index < len(fields):
        v = fields[index]
        return default if v is None else v
    return default


def amqp_error(
    condition: str, description: str | None = None, info: dict[Any, Any] | None = None
) -> Described:
    """An AMQP error composite (condition is sent as a symbol)."""
    # all three fields are always present: the SDK indexes info without checking the length
    return Described(d.ERROR, [Symbol(condition), description, info])


def outcome(code: int, fields: list[Any] | None = None) -> Described:
    """A delivery-state outcome such as accepted or rejected."""
    return Described(code, fields or [])


def describe_descriptor(value: Any) -> int:
    """Normalise a described value's descriptor to its numeric code (symbols mapped where known)."""
    if isinstance(value, Described):
        d = value.descriptor
        if isinstance(d, int):
            return d
        return {
            "amqp:accepted:list": d.ACCEPTED,
            "amqp:rejected:list": d.REJECTED,
            "amqp:released:list": d.RELEASED,
            "amqp:modified:list": d.MODIFIED,
            "amqp:received:list": d.RECEIVED,
            "amqp:source:list": d.SOURCE,
            "amqp:target:list": d.TARGET,
        }.get(str(d), -1)
    return -1
