"""AMQP 1.0 frame layout, performative codes and the few composite types the broker emits."""

from __future__ import annotations

import struct
from typing import Any

from .codec import DecodeError, Described, Symbol, decode, encode

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
TLS_HEADER = b"AMQP\x02\x01\x00\x00"

FRAME_AMQP = 0
FRAME_SASL = 1

# performatives
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
ERROR = 0x1D
RECEIVED, ACCEPTED, REJECTED, RELEASED, MODIFIED = range(0x23, 0x28)
SOURCE, TARGET = 0x28, 0x29
SASL_MECHANISMS, SASL_INIT, SASL_CHALLENGE, SASL_RESPONSE, SASL_OUTCOME = range(0x40, 0x45)

# message sections
HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS, PROPERTIES, APPLICATION_PROPERTIES = range(0x70, 0x75)
DATA, AMQP_SEQUENCE, AMQP_VALUE, FOOTER = range(0x75, 0x79)

BATCH_MESSAGE_FORMAT = 0x80013700

# roles on the wire: false = sender, true = receiver
ROLE_SENDER = False
ROLE_RECEIVER = True

_FRAME_HEADER = struct.Struct(">IBBH")

FIELD_COUNTS = {
    OPEN: 10,
    BEGIN: 8,
    ATTACH: 14,
    FLOW: 11,
    TRANSFER: 11,
    DISPOSITION: 6,
    DETACH: 3,
    END: 1,
    CLOSE: 1,
    SASL_MECHANISMS: 1,
    SASL_OUTCOME: 2,
}


def pad(fields: list[Any], width: int) -> list[Any]:
    """Extend a composite's field list with nulls to its full width (for strict decoders)."""
    return fields + [None] * (width - len(fields)) if len(fields) < width else fields


OUTCOME_NAMES = {
    ACCEPTED: "accepted",
    REJECTED: "rejected",
    RELEASED: "released",
    MODIFIED: "modified",
    RECEIVED: "received",
}


def build_frame(
    channel: int, performative: int, fields: list[Any], payload: bytes = b"", ftype: int = 0
) -> bytes:
    """Encode a performative (and optional transfer payload) into one frame."""
    body = bytearray(_FRAME_HEADER.size)
    # Always send every field: the spec allows trimming trailing nulls, but older SDK decoders
    # (azure-servicebus 7.14) index the field list directly.
    width = FIELD_COUNTS.get(performative, len(fields))
    if len(fields) < width:
        fields = fields + [None] * (width - len(fields))
    encode(Described(performative, fields), body)
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
    "amqp:open:list": OPEN,
    "amqp:begin:list": BEGIN,
    "amqp:attach:list": ATTACH,
    "amqp:flow:list": FLOW,
    "amqp:transfer:list": TRANSFER,
    "amqp:disposition:list": DISPOSITION,
    "amqp:detach:list": DETACH,
    "amqp:end:list": END,
    "amqp:close:list": CLOSE,
    "amqp:sasl-init:list": SASL_INIT,
    "amqp:sasl-response:list": SASL_RESPONSE,
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
    return Described(ERROR, [Symbol(condition), description, info])


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
            "amqp:accepted:list": ACCEPTED,
            "amqp:rejected:list": REJECTED,
            "amqp:released:list": RELEASED,
            "amqp:modified:list": MODIFIED,
            "amqp:received:list": RECEIVED,
            "amqp:source:list": SOURCE,
            "amqp:target:list": TARGET,
        }.get(str(d), -1)
    return -1
