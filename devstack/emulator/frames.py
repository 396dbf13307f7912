"""AMQP 1.0 frame layout, performative codes and the few composite types the broker emits."""

from __future__ import annotations

import struct
from typing import Any

from .codec import Described, Symbol, decode, encode
from .descriptors import (
    ACCEPTED as ACCEPTED,
)
from .descriptors import (
    AMQP_SEQUENCE as AMQP_SEQUENCE,
)
from .descriptors import (
    AMQP_VALUE as AMQP_VALUE,
)
from .descriptors import (
    APPLICATION_PROPERTIES as APPLICATION_PROPERTIES,
)
from .descriptors import (
    ATTACH as ATTACH,
)
from .descriptors import (
    BEGIN as BEGIN,
)
from .descriptors import (
    CLOSE as CLOSE,
)
from .descriptors import (
    DATA as DATA,
)
from .descriptors import (
    DELIVERY_ANNOTATIONS as DELIVERY_ANNOTATIONS,
)
from .descriptors import (
    DETACH as DETACH,
)
from .descriptors import (
    DISPOSITION as DISPOSITION,
)
from .descriptors import (
    END as END,
)
from .descriptors import (
    ERROR as ERROR,
)
from .descriptors import (
    FLOW as FLOW,
)
from .descriptors import (
    FOOTER as FOOTER,
)
from .descriptors import (
    HEADER as HEADER,
)
from .descriptors import (
    MESSAGE_ANNOTATIONS as MESSAGE_ANNOTATIONS,
)
from .descriptors import (
    MODIFIED as MODIFIED,
)
from .descriptors import (  # re-exported: frames.OPEN etc. are used across the emulator
    OPEN as OPEN,
)
from .descriptors import (
    PROPERTIES as PROPERTIES,
)
from .descriptors import (
    RECEIVED as RECEIVED,
)
from .descriptors import (
    REJECTED as REJECTED,
)
from .descriptors import (
    RELEASED as RELEASED,
)
from .descriptors import (
    SASL_CHALLENGE as SASL_CHALLENGE,
)
from .descriptors import (
    SASL_INIT as SASL_INIT,
)
from .descriptors import (
    SASL_MECHANISMS as SASL_MECHANISMS,
)
from .descriptors import (
    SASL_OUTCOME as SASL_OUTCOME,
)
from .descriptors import (
    SASL_RESPONSE as SASL_RESPONSE,
)
from .descriptors import (
    SOURCE as SOURCE,
)
from .descriptors import (
    TARGET as TARGET,
)
from .descriptors import (
    TRANSFER as TRANSFER,
)
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
    if not isinstance(value, Described):
        raise ValueError("frame body is not a described performative")
    code = value.descriptor
    if not isinstance(code, int):
        code = _SYMBOLIC.get(str(code), -1)
    fields = value.value if isinstance(value.value, list) else []
    return code, fields, pos


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
