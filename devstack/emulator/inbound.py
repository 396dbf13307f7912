"""What a peer may send: frame headers and performative fields checked before any handler sees them.

Every violation is a ProtocolError carrying the AMQP error condition the connection closes with
(AMQP 1.0, OASIS standard, part 2):

* 2.3.1 frame layout: SIZE below 8 or DOFF below 2 is a malformed frame; 2.7.1 open: "A peer that
  receives an oversized frame MUST close the connection with the framing-error error-code", and the same
  for "a channel number outside the supported range". Both are `amqp:connection:framing-error` (2.8.16).
  Microsoft.Azure.Amqp (the stack Service Bus runs on) raises FramingError for the same sizes
  (Azure/azure-amqp src/FrameDecoder.cs).
* 2.7.1: "The first frame sent on a connection in either direction MUST contain an open performative";
  anything else first, or a second open, is `amqp:illegal-state` (2.8.15: "The peer sent a frame that is
  not permitted in the current state").
* 2.7.x mandatory fields (open.container-id, attach.name/handle/role, ...) missing, or a field whose value
  has the wrong kind or range, is `amqp:invalid-field` (2.8.15), as Microsoft.Azure.Amqp's
  Performative.EnsureRequired does (AmqpEncoding.GetEncodingException -> AmqpErrorCode.InvalidField).
* A performative body that is not a described list, or an unknown performative, is `amqp:decode-error`.

The checks look at value kinds and ranges, not at the exact wire constructor: the codec hands back plain
ints for uint, ulong and long alike.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from . import frames
from .codec import Described

FRAMING_ERROR = "amqp:connection:framing-error"
ILLEGAL_STATE = "amqp:illegal-state"
INVALID_FIELD = "amqp:invalid-field"
NOT_ALLOWED = "amqp:not-allowed"
DECODE_ERROR = "amqp:decode-error"
CONNECTION_FORCED = "amqp:connection:forced"

MIN_FRAME_SIZE = 8
_FRAME_HEADER = struct.Struct(">IBBH")


class ProtocolError(Exception):
    """A peer broke the protocol; the connection closes with `condition` (AMQP 1.0 2.8.15 / 2.8.16)."""

    def __init__(self, condition: str, description: str) -> None:
        """Remember the AMQP error to send."""
        super().__init__(f"{condition}: {description}")
        self.condition = condition
        self.description = description


class FrameHeader:
    """The fixed 8 bytes in front of every frame (2.3.1)."""

    __slots__ = ("channel", "doff", "size", "type")

    def __init__(self, size: int, doff: int, ftype: int, channel: int) -> None:
        """Plain fields; use read_frame_header to build one from bytes."""
        self.size = size
        self.doff = doff
        self.type = ftype
        self.channel = channel


def read_frame_header(buf: bytes | bytearray, pos: int, max_frame_size: int) -> FrameHeader:
    """Parse and check the header at pos (8 bytes must be available); raise ProtocolError(framing-error)."""
    size, doff, ftype, channel = _FRAME_HEADER.unpack_from(buf, pos)
    if size < MIN_FRAME_SIZE or size > max_frame_size:
        raise ProtocolError(
            FRAMING_ERROR, f"Invalid frame size {size}: frames are 8 to {max_frame_size} bytes here"
        )
    if doff < 2 or doff * 4 > size:
        raise ProtocolError(FRAMING_ERROR, f"Invalid data offset {doff} for a frame of {size} bytes")
    if ftype not in (frames.FRAME_AMQP, frames.FRAME_SASL):
        raise ProtocolError(FRAMING_ERROR, f"Unknown frame type 0x{ftype:02x}")
    return FrameHeader(size, doff, ftype, channel)


# --------------------------------------------------------------------------- performative fields

Check = Callable[[Any], bool]


def _uint(bits: int) -> Check:
    top = 1 << bits
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < top


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bytes(v: Any) -> bool:
    return isinstance(v, bytes)


def _is_map(v: Any) -> bool:
    return isinstance(v, dict)


def _is_composite(v: Any) -> bool:
    """A described list: source, target, delivery state, error."""
    return isinstance(v, Described) and isinstance(v.value, list)


def _is_symbols(v: Any) -> bool:
    """A `multiple` symbol field: one symbol or an array/list of them."""
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))


UBYTE, USHORT, UINT, ULONG = _uint(8), _uint(16), _uint(32), _uint(64)

# (index, name, check, mandatory) per performative, from AMQP 1.0 2.7.1-2.7.9 and 5.3.3.
_FIELDS: dict[int, tuple[tuple[int, str, Check, bool], ...]] = {
    frames.OPEN: (
        (0, "container-id", _is_str, True),
        (1, "hostname", _is_str, False),
        (2, "max-frame-size", UINT, False),
        (3, "channel-max", USHORT, False),
        (4, "idle-time-out", UINT, False),
        (5, "outgoing-locales", _is_symbols, False),
        (6, "incoming-locales", _is_symbols, False),
        (7, "offered-capabilities", _is_symbols, False),
        (8, "desired-capabilities", _is_symbols, False),
        (9, "properties", _is_map, False),
    ),
    frames.BEGIN: (
        (0, "remote-channel", USHORT, False),
        (1, "next-outgoing-id", UINT, True),
        (2, "incoming-window", UINT, True),
        (3, "outgoing-window", UINT, True),
        (4, "handle-max", UINT, False),
        (5, "offered-capabilities", _is_symbols, False),
        (6, "desired-capabilities", _is_symbols, False),
        (7, "properties", _is_map, False),
    ),
    frames.ATTACH: (
        (0, "name", _is_str, True),
        (1, "handle", UINT, True),
        (2, "role", _is_bool, True),
        (3, "snd-settle-mode", lambda v: UBYTE(v) and v <= 2, False),
        (4, "rcv-settle-mode", lambda v: UBYTE(v) and v <= 1, False),
        (5, "source", _is_composite, False),
        (6, "target", _is_composite, False),
        (7, "unsettled", _is_map, False),
        (8, "incomplete-unsettled", _is_bool, False),
        (9, "initial-delivery-count", UINT, False),
        (10, "max-message-size", ULONG, False),
        (11, "offered-capabilities", _is_symbols, False),
        (12, "desired-capabilities", _is_symbols, False),
        (13, "properties", _is_map, False),
    ),
    frames.FLOW: (
        (0, "next-incoming-id", UINT, False),
        (1, "incoming-window", UINT, True),
        (2, "next-outgoing-id", UINT, True),
        (3, "outgoing-window", UINT, True),
        (4, "handle", UINT, False),
        (5, "delivery-count", UINT, False),
        (6, "link-credit", UINT, False),
        (7, "available", UINT, False),
        (8, "drain", _is_bool, False),
        (9, "echo", _is_bool, False),
        (10, "properties", _is_map, False),
    ),
    frames.TRANSFER: (
        (0, "handle", UINT, True),
        (1, "delivery-id", UINT, False),
        (2, "delivery-tag", _is_bytes, False),
        (3, "message-format", UINT, False),
        (4, "settled", _is_bool, False),
        (5, "more", _is_bool, False),
        (6, "rcv-settle-mode", lambda v: UBYTE(v) and v <= 1, False),
        (7, "state", _is_composite, False),
        (8, "resume", _is_bool, False),
        (9, "aborted", _is_bool, False),
        (10, "batchable", _is_bool, False),
    ),
    frames.DISPOSITION: (
        (0, "role", _is_bool, True),
        (1, "first", UINT, True),
        (2, "last", UINT, False),
        (3, "settled", _is_bool, False),
        (4, "state", _is_composite, False),
        (5, "batchable", _is_bool, False),
    ),
    frames.DETACH: (
        (0, "handle", UINT, True),
        (1, "closed", _is_bool, False),
        (2, "error", _is_composite, False),
    ),
    frames.END: ((0, "error", _is_composite, False),),
    frames.CLOSE: ((0, "error", _is_composite, False),),
    frames.SASL_INIT: (
        (0, "mechanism", _is_str, True),
        (1, "initial-response", _is_bytes, False),
        (2, "hostname", _is_str, False),
    ),
    frames.SASL_RESPONSE: ((0, "response", _is_bytes, True),),
}

_NAMES = {
    frames.OPEN: "open",
    frames.BEGIN: "begin",
    frames.ATTACH: "attach",
    frames.FLOW: "flow",
    frames.TRANSFER: "transfer",
    frames.DISPOSITION: "disposition",
    frames.DETACH: "detach",
    frames.END: "end",
    frames.CLOSE: "close",
    frames.SASL_INIT: "sasl-init",
    frames.SASL_RESPONSE: "sasl-response",
}

AMQP_PERFORMATIVES = frozenset(range(frames.OPEN, frames.CLOSE + 1))
# what a client may send during SASL negotiation (5.3.3): sasl-mechanisms/challenge/outcome are ours
SASL_FROM_CLIENT = frozenset((frames.SASL_INIT, frames.SASL_RESPONSE))


def check_performative(ftype: int, code: int, fields: list[Any]) -> None:
    """Refuse an unknown performative for the frame type, or a missing or ill-typed field."""
    known = AMQP_PERFORMATIVES if ftype == frames.FRAME_AMQP else SASL_FROM_CLIENT
    if code not in known:
        kind = "AMQP" if ftype == frames.FRAME_AMQP else "SASL"
        raise ProtocolError(DECODE_ERROR, f"0x{code:x} is not a {kind} performative a client can send")
    name = _NAMES[code]
    for index, field_name, check, mandatory in _FIELDS[code]:
        value = fields[index] if index < len(fields) else None
        if value is None:
            if mandatory:
                raise ProtocolError(INVALID_FIELD, f"The mandatory {name}.{field_name} field is not set")
            continue
        if not check(value):
            raise ProtocolError(INVALID_FIELD, f"The {name}.{field_name} field has an invalid value")
