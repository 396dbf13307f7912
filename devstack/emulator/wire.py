"""The AMQP 1.0 type of every field the emulator sends, and the encoder side that applies it.

Every performative, delivery state, terminus and error the emulator writes goes through `composite()`,
which coerces each field to the type the spec gives it, so a value that was decoded from the peer and
echoed back (a settle mode, a terminus, a filter) leaves with its spec type, not with whatever Python
type the decoder produced (a plain int would otherwise encode as a long, 0x55/0x81). A value that
cannot have the field's type is a bug in the emulator and raises `WireTypeError` before anything is
written.

Sources (OASIS AMQP 1.0, http://docs.oasis-open.org/amqp/core/v1.0/os/amqp-core-complete-v1.0-os.pdf):
Part 2 section 2.7 (performatives), 2.8 (role, settle modes, handle, seconds, milliseconds,
delivery-tag/-number, transfer-number, sequence-no, message-format, fields, error); Part 3 section 3.2
(header, properties, message-id-ulong/-uuid/-binary/-string: 3.2.11-3.2.14), 3.4 (delivery states), 3.5
(source 3.5.3, target 3.5.4, terminus-durability 3.5.5, filter-set 3.5.8); Part 5 section 5.3.3 (SASL
frames). tests/emulator/test_wire_types.py checks the bytes a real session produces against the same
table written out independently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from . import descriptors as frames
from .codec import (
    Array,
    Byte,
    DecodeError,
    Described,
    Int,
    Long,
    Short,
    Symbol,
    Timestamp,
    UByte,
    UInt,
    ULong,
    UShort,
    decode,
    skip,
)

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


class WireTypeError(ValueError):
    """A value the emulator was about to send does not fit the field's AMQP type (in practice: a value
    echoed from a peer's frame that had the wrong type there; the connection closes with decode-error)."""


def _unsigned(cls: type[int], limit: int) -> Callable[[Any], Any]:
    def coerce(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= limit:
            raise WireTypeError(f"{v!r} is not a {cls.__name__.lower()}")
        return v if type(v) is cls else cls(v)

    return coerce


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise WireTypeError(f"{v!r} is not a boolean")
    return v


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise WireTypeError(f"{v!r} is not a string")
    return v if type(v) is str else str.__str__(v)


def _symbol(v: Any) -> Symbol:
    if not isinstance(v, str):
        raise WireTypeError(f"{v!r} is not a symbol")
    return v if isinstance(v, Symbol) else Symbol(v)


def _symbols(v: Any) -> Any:
    """A `multiple="true"` symbol field: one symbol, or an array of symbols (Part 1 section 1.3)."""
    if isinstance(v, str):
        return _symbol(v)
    if isinstance(v, list):
        return Array([_symbol(x) for x in v], Symbol)
    raise WireTypeError(f"{v!r} is not a symbol or an array of symbols")


def _binary(v: Any) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise WireTypeError(f"{v!r} is not binary")
    return bytes(v)


def _timestamp(v: Any) -> Timestamp:
    if isinstance(v, bool) or not isinstance(v, int):
        raise WireTypeError(f"{v!r} is not a timestamp")
    return v if isinstance(v, Timestamp) else Timestamp(v)


def _symbol_keyed_map(v: Any) -> dict[Any, Any]:
    """`fields` (2.8.13), `filter-set` (3.5.8), `node-properties`: symbol keys, values of any type."""
    if not isinstance(v, dict):
        raise WireTypeError(f"{v!r} is not a map")
    return {_symbol(k): item for k, item in v.items()}


def _any_map(v: Any) -> dict[Any, Any]:
    if not isinstance(v, dict):
        raise WireTypeError(f"{v!r} is not a map")
    return v


def message_id(v: Any) -> Any:
    """message-id-ulong / -uuid / -binary / -string (Part 3 sections 3.2.11-3.2.14), kept as they are.

    A plain non-negative int is taken to be a ulong: the only integer form a message-id may have.
    """
    if isinstance(v, (uuid.UUID, ULong)):
        return v
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return _unsigned(ULong, _U64_MAX)(v)
    raise WireTypeError(f"{v!r} is not a message-id (ulong, uuid, binary or string)")


_SYMBOLIC_DESCRIPTORS = {
    "amqp:error:list": frames.ERROR,
    "amqp:received:list": frames.RECEIVED,
    "amqp:accepted:list": frames.ACCEPTED,
    "amqp:rejected:list": frames.REJECTED,
    "amqp:released:list": frames.RELEASED,
    "amqp:modified:list": frames.MODIFIED,
    "amqp:source:list": frames.SOURCE,
    "amqp:target:list": frames.TARGET,
}


def _composite_of(*codes: int) -> Callable[[Any], Any]:
    """A field whose value is one of the listed composites (an error, a terminus, a delivery state);
    a composite decoded from the peer is re-encoded field by field with its numeric descriptor."""

    def coerce(v: Any) -> Any:
        if not isinstance(v, Described):
            raise WireTypeError(f"{v!r} is not a described composite")
        d = v.descriptor
        code = d if isinstance(d, int) else _SYMBOLIC_DESCRIPTORS.get(str(d), -1)
        if code not in codes:
            raise WireTypeError(f"{v!r} is not one of the composites {[hex(c) for c in codes]}")
        values = v.value if isinstance(v.value, list) else []
        return composite(code, values, full_width=False)

    return coerce


_UINT = _unsigned(UInt, _U32_MAX)
_ULONG = _unsigned(ULong, _U64_MAX)
_UBYTE = _unsigned(UByte, 255)
_USHORT = _unsigned(UShort, 65535)

TYPES: dict[str, Callable[[Any], Any]] = {
    "boolean": _boolean,
    "ubyte": _UBYTE,
    "ushort": _USHORT,
    "uint": _UINT,
    "ulong": _ULONG,
    "string": _string,
    "symbol": _symbol,
    "symbol[]": _symbols,
    "binary": _binary,
    "timestamp": _timestamp,
    "fields": _symbol_keyed_map,
    "map": _any_map,
    "message-id": message_id,
    "error": _composite_of(frames.ERROR),
    "delivery-state": _composite_of(
        frames.ACCEPTED, frames.REJECTED, frames.RELEASED, frames.MODIFIED, frames.RECEIVED
    ),
    "outcome": _composite_of(frames.ACCEPTED, frames.REJECTED, frames.RELEASED, frames.MODIFIED),
    "source": _composite_of(frames.SOURCE),
    "target": _composite_of(frames.TARGET),
    "*": lambda v: v,
}

# (field name, AMQP type): the restricted types of section 2.8 are written as their source types
# (role = boolean, sender-settle-mode = ubyte, handle = uint, milliseconds = uint, seconds = uint, ...).
SCHEMA: dict[int, tuple[str, tuple[tuple[str, str], ...]]] = {
    frames.OPEN: (
        "open (2.7.1)",
        (
            ("container-id", "string"),
            ("hostname", "string"),
            ("max-frame-size", "uint"),
            ("channel-max", "ushort"),
            ("idle-time-out", "uint"),  # milliseconds
            ("outgoing-locales", "symbol[]"),  # ietf-language-tag
            ("incoming-locales", "symbol[]"),
            ("offered-capabilities", "symbol[]"),
            ("desired-capabilities", "symbol[]"),
            ("properties", "fields"),
        ),
    ),
    frames.BEGIN: (
        "begin (2.7.2)",
        (
            ("remote-channel", "ushort"),
            ("next-outgoing-id", "uint"),  # transfer-number
            ("incoming-window", "uint"),
            ("outgoing-window", "uint"),
            ("handle-max", "uint"),  # handle
            ("offered-capabilities", "symbol[]"),
            ("desired-capabilities", "symbol[]"),
            ("properties", "fields"),
        ),
    ),
    frames.ATTACH: (
        "attach (2.7.3)",
        (
            ("name", "string"),
            ("handle", "uint"),
            ("role", "boolean"),
            ("snd-settle-mode", "ubyte"),  # sender-settle-mode 2.8.2
            ("rcv-settle-mode", "ubyte"),  # receiver-settle-mode 2.8.3
            ("source", "source"),
            ("target", "target"),
            ("unsettled", "map"),
            ("incomplete-unsettled", "boolean"),
            ("initial-delivery-count", "uint"),  # sequence-no
            ("max-message-size", "ulong"),
            ("offered-capabilities", "symbol[]"),
            ("desired-capabilities", "symbol[]"),
            ("properties", "fields"),
        ),
    ),
    frames.FLOW: (
        "flow (2.7.4)",
        (
            ("next-incoming-id", "uint"),
            ("incoming-window", "uint"),
            ("next-outgoing-id", "uint"),
            ("outgoing-window", "uint"),
            ("handle", "uint"),
            ("delivery-count", "uint"),  # sequence-no
            ("link-credit", "uint"),
            ("available", "uint"),
            ("drain", "boolean"),
            ("echo", "boolean"),
            ("properties", "fields"),
        ),
    ),
    frames.TRANSFER: (
        "transfer (2.7.5)",
        (
            ("handle", "uint"),
            ("delivery-id", "uint"),  # delivery-number
            ("delivery-tag", "binary"),
            ("message-format", "uint"),
            ("settled", "boolean"),
            ("more", "boolean"),
            ("rcv-settle-mode", "ubyte"),
            ("state", "delivery-state"),
            ("resume", "boolean"),
            ("aborted", "boolean"),
            ("batchable", "boolean"),
        ),
    ),
    frames.DISPOSITION: (
        "disposition (2.7.6)",
        (
            ("role", "boolean"),
            ("first", "uint"),
            ("last", "uint"),
            ("settled", "boolean"),
            ("state", "delivery-state"),
            ("batchable", "boolean"),
        ),
    ),
    frames.DETACH: ("detach (2.7.7)", (("handle", "uint"), ("closed", "boolean"), ("error", "error"))),
    frames.END: ("end (2.7.8)", (("error", "error"),)),
    frames.CLOSE: ("close (2.7.9)", (("error", "error"),)),
    frames.ERROR: (
        "error (2.8.14)",
        (("condition", "symbol"), ("description", "string"), ("info", "fields")),
    ),
    frames.RECEIVED: ("received (3.4.1)", (("section-number", "uint"), ("section-offset", "ulong"))),
    frames.ACCEPTED: ("accepted (3.4.2)", ()),
    frames.REJECTED: ("rejected (3.4.3)", (("error", "error"),)),
    frames.RELEASED: ("released (3.4.4)", ()),
    frames.MODIFIED: (
        "modified (3.4.5)",
        (
            ("delivery-failed", "boolean"),
            ("undeliverable-here", "boolean"),
            ("message-annotations", "fields"),
        ),
    ),
    frames.SOURCE: (
        "source (3.5.3)",
        (
            ("address", "string"),  # address-string 3.2.15
            ("durable", "uint"),  # terminus-durability 3.5.5
            ("expiry-policy", "symbol"),
            ("timeout", "uint"),  # seconds
            ("dynamic", "boolean"),
            ("dynamic-node-properties", "fields"),
            ("distribution-mode", "symbol"),
            ("filter", "fields"),  # filter-set 3.5.8
            ("default-outcome", "outcome"),
            ("outcomes", "symbol[]"),
            ("capabilities", "symbol[]"),
        ),
    ),
    frames.TARGET: (
        "target (3.5.4)",
        (
            ("address", "string"),
            ("durable", "uint"),
            ("expiry-policy", "symbol"),
            ("timeout", "uint"),
            ("dynamic", "boolean"),
            ("dynamic-node-properties", "fields"),
            ("capabilities", "symbol[]"),
        ),
    ),
    frames.HEADER: (
        "header (3.2.1)",
        (
            ("durable", "boolean"),
            ("priority", "ubyte"),
            ("ttl", "uint"),  # milliseconds
            ("first-acquirer", "boolean"),
            ("delivery-count", "uint"),
        ),
    ),
    frames.PROPERTIES: (
        "properties (3.2.4)",
        (
            ("message-id", "message-id"),
            ("user-id", "binary"),
            ("to", "string"),
            ("subject", "string"),
            ("reply-to", "string"),
            ("correlation-id", "message-id"),
            ("content-type", "symbol"),
            ("content-encoding", "symbol"),
            ("absolute-expiry-time", "timestamp"),
            ("creation-time", "timestamp"),
            ("group-id", "string"),
            ("group-sequence", "uint"),  # sequence-no
            ("reply-to-group-id", "string"),
        ),
    ),
    frames.SASL_MECHANISMS: ("sasl-mechanisms (5.3.3.1)", (("sasl-server-mechanisms", "symbol[]"),)),
    frames.SASL_OUTCOME: ("sasl-outcome (5.3.3.5)", (("code", "ubyte"), ("additional-data", "binary"))),
}


def _int(v: Any) -> Int:
    if isinstance(v, bool) or not isinstance(v, int) or not -(2**31) <= v < 2**31:
        raise WireTypeError(f"{v!r} is not an int")
    return v if type(v) is Int else Int(v)


def _long(v: Any) -> Long:
    if isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63:
        raise WireTypeError(f"{v!r} is not a long")
    return v if type(v) is Long else Long(v)


def _uuid(v: Any) -> uuid.UUID:
    if not isinstance(v, uuid.UUID):
        raise WireTypeError(f"{v!r} is not a uuid")
    return v


def _array_of(element: Callable[[Any], Any], element_type: type) -> Callable[[Any], Any]:
    def coerce(v: Any) -> Array:
        if not isinstance(v, list):
            raise WireTypeError(f"{v!r} is not an array")
        return Array([element(x) for x in v], element_type)

    return coerce


TYPES.update(
    {
        "int": _int,
        "long": _long,
        "uuid": _uuid,
        "timestamp[]": _array_of(_timestamp, Timestamp),
        "long[]": _array_of(_long, Long),
        "string[]": _array_of(_string, str),
    }
)

# Service Bus AMQP management (request-response) replies: application properties and the amqp-value
# body map, by key. Source: Microsoft Learn, "AMQP 1.0 in Azure Service Bus: request-response-based
# operations" (service-bus-amqp-request-response) and, for $cbs, the AMQP CBS draft as Service Bus
# documents it (service-bus-amqp-protocol-guide, "Claims-based authorization").
REPLY_PROPERTIES: dict[str, str] = {
    "statusCode": "int",
    "statusDescription": "string",
    "errorCondition": "symbol",
    "status-code": "int",  # $cbs
    "status-description": "string",
}
REPLY_BODY: dict[str, str] = {
    "expirations": "timestamp[]",  # renew-lock
    "expiration": "timestamp",  # renew-session-lock
    "session-state": "binary",  # get-session-state
    "messages": "messages",  # peek-message, receive-by-sequence-number
    "sequence-numbers": "long[]",  # schedule-message
    "sessions-ids": "string[]",  # get-message-sessions
    "skip": "int",
}
REPLY_MESSAGE: dict[str, str] = {"message": "binary", "lock-token": "uuid"}


def _string_keyed(schema: dict[str, str], what: str) -> Callable[[Any], dict[str, Any]]:
    """A map with string keys whose values are typed by `schema`; a key outside it is a bug."""

    def coerce(v: Any) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise WireTypeError(f"{v!r} is not a map")
        out: dict[str, Any] = {}
        for key, value in v.items():
            amqp_type = schema.get(str(key))
            if amqp_type is None:
                raise WireTypeError(f"{what} has no key {key!r} in its schema")
            try:
                out[_string(key)] = None if value is None else TYPES[amqp_type](value)
            except WireTypeError as exc:
                raise WireTypeError(f"{what} {key}: {exc}") from None
        return out

    return coerce


_reply_message = _string_keyed(REPLY_MESSAGE, "reply message")


def _messages(v: Any) -> list[dict[str, Any]]:
    """`messages`: a list of maps, one per message (`message` binary, `lock-token` uuid)."""
    if not isinstance(v, list):
        raise WireTypeError(f"{v!r} is not a list")
    return [_reply_message(m) for m in v]


TYPES["messages"] = _messages
reply_properties = _string_keyed(REPLY_PROPERTIES, "reply application-properties")
reply_body = _string_keyed(REPLY_BODY, "reply body")


# the schema with each type name resolved to its coercion, once (build_frame runs for every frame)
_PLAN: dict[int, tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]] = {
    code: (name, tuple((field_name, TYPES[amqp_type]) for field_name, amqp_type in fields))
    for code, (name, fields) in SCHEMA.items()
}


def composite(code: int, values: list[Any], *, full_width: bool = True) -> Described:
    """The described list for composite `code`, every field coerced to its AMQP type.

    full_width sends every field (trailing nulls included): the spec allows trimming them, but
    azure-servicebus 7.14's decoder indexes performative fields directly.
    """
    name, plan = _PLAN[code]
    if len(values) > len(plan):
        raise WireTypeError(f"{name} has {len(plan)} fields, got {len(values)}")
    typed: list[Any] = []
    for (field_name, coerce), value in zip(plan, values, strict=False):
        if value is None:
            typed.append(None)
            continue
        try:
            typed.append(coerce(value))
        except WireTypeError as exc:
            raise WireTypeError(f"{name} field {field_name}: {exc}") from None
    if full_width and len(typed) < len(plan):
        typed += [None] * (len(plan) - len(typed))
    return Described(ULong(code), typed)


# constructor code -> the typed int class that re-encodes a decoded integer with its own type (Part 1 1.6)
_TYPED_INTS: dict[int, type[int]] = {
    0x50: UByte,
    0x51: Byte,
    0x60: UShort,
    0x61: Short,
    0x43: UInt,
    0x52: UInt,
    0x70: UInt,
    0x44: ULong,
    0x53: ULong,
    0x80: ULong,
    0x54: Int,
    0x71: Int,
    0x55: Long,
    0x81: Long,
    0x83: Timestamp,
}


def decode_typed(buf: bytes, pos: int) -> tuple[Any, int]:
    """Decode one value like codec.decode, but keep an integer's AMQP type (ulong stays ulong, ...).

    Used where the emulator must answer with the peer's own value and type: the `correlation-id` of a
    $management or $cbs reply is the request's `message-id` (uamqp checks it is a ulong).
    """
    value, end = decode(buf, pos)
    cls = _TYPED_INTS.get(buf[pos])
    return (cls(value) if cls is not None else value), end


def described_list_field(buf: bytes, pos: int, index: int) -> Any:
    """Field `index` of the described list at pos (a message section), decoded with its AMQP type."""
    if buf[pos] != 0x00:
        raise DecodeError("expected a described section")
    p = skip(buf, pos + 1)  # the descriptor
    code = buf[p]
    if code == 0x45:
        return None
    if code == 0xC0:
        count, p = buf[p + 2], p + 3
    elif code == 0xD0:
        count, p = int.from_bytes(buf[p + 5 : p + 9], "big"), p + 9
    else:
        raise DecodeError(f"expected a list, got constructor 0x{code:02x}")
    if index >= count:
        return None
    for _ in range(index):
        p = skip(buf, p)
    return decode_typed(buf, p)[0]
