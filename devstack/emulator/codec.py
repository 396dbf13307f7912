"""A small AMQP 1.0 type-system codec.

Written for the emulator rather than reused from a library so that we control exactly which wire
forms are produced (the SDK's decoder has assumptions, e.g. sections described by smallulong) and
so message sections can be passed through untouched, byte for byte.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")


class DecodeError(ValueError):
    """Bytes on the wire are not a valid AMQP encoding; `condition` is the AMQP error to close with."""

    def __init__(self, description: str, condition: str = "amqp:decode-error") -> None:
        """Keep the AMQP error condition next to the message."""
        super().__init__(description)
        self.description = description
        self.condition = condition


class Symbol(str):
    """An AMQP symbol (ASCII); distinct from str so it round-trips with the right constructor."""

    __slots__ = ()


class UByte(int):
    """Typed int so the encoder emits ubyte."""

    __slots__ = ()


class UShort(int):
    """Typed int so the encoder emits ushort."""

    __slots__ = ()


class UInt(int):
    """Typed int so the encoder emits uint."""

    __slots__ = ()


class ULong(int):
    """Typed int so the encoder emits ulong."""

    __slots__ = ()


class Byte(int):
    """Typed int so the encoder emits byte."""

    __slots__ = ()


class Short(int):
    """Typed int so the encoder emits short."""

    __slots__ = ()


class Int(int):
    """Typed int so the encoder emits int."""

    __slots__ = ()


class Long(int):
    """Typed int so the encoder emits long (plain int does too; this documents intent)."""

    __slots__ = ()


class Timestamp(int):
    """Milliseconds since the Unix epoch, encoded as an AMQP timestamp."""

    __slots__ = ()


class Float(float):
    """Typed float so the encoder emits a 32-bit float."""

    __slots__ = ()


class Char(str):
    """A single UTF-32 character."""

    __slots__ = ()


class Decimal(bytes):
    """Opaque decimal32/64/128 value; kept as raw bytes plus its constructor."""

    code: int = 0x94

    def __new__(cls, data: bytes, code: int) -> Decimal:
        """Remember the constructor so re-encoding is lossless."""
        obj = super().__new__(cls, data)
        obj.code = code
        return obj


class Raw(bytes):
    """Already-encoded AMQP bytes, emitted verbatim by the encoder."""

    __slots__ = ()


class Described:
    """A described type: a descriptor (ulong code or symbol) and a value."""

    __slots__ = ("descriptor", "value")

    def __init__(self, descriptor: Any, value: Any) -> None:
        """Store the pair."""
        self.descriptor = descriptor
        self.value = value

    def __repr__(self) -> str:
        """Readable in logs and test failures."""
        return f"Described({self.descriptor!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        """Structural equality, handy in tests."""
        return (
            isinstance(other, Described) and self.descriptor == other.descriptor and self.value == other.value
        )

    def __hash__(self) -> int:
        """Hash on the descriptor only; values may be unhashable lists."""
        return hash(self.descriptor)


class Array(list[Any]):
    """An AMQP array: every element shares one constructor, given by `element_type`."""

    def __init__(self, items: Any = (), element_type: type | None = None) -> None:
        """element_type is one of the typed classes (or str/bytes/int/uuid.UUID/bool)."""
        super().__init__(items)
        self.element_type = element_type


# --------------------------------------------------------------------------- encoding


def _enc_null(out: bytearray, _v: Any) -> None:
    out.append(0x40)


def encode(value: Any, out: bytearray) -> None:
    """Append the AMQP encoding of value to out, choosing the most compact legal form."""
    t = type(value)
    enc = _ENCODERS.get(t)
    if enc is not None:
        enc(out, value)
        return
    if value is None:
        out.append(0x40)
    elif isinstance(value, Raw):
        out += value
    elif isinstance(value, bool):
        out.append(0x41 if value else 0x42)
    elif isinstance(value, Symbol):
        _enc_symbol(out, value)
    elif isinstance(value, Char):
        out.append(0x73)
        out += _U32.pack(ord(value))
    elif isinstance(value, str):
        _enc_str(out, value)
    elif isinstance(value, Decimal):
        out.append(value.code)
        out += value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        _enc_bin(out, bytes(value))
    elif isinstance(value, Described):
        _enc_described(out, value)
    elif isinstance(value, Array):
        _enc_array(out, value)
    elif isinstance(value, (list, tuple)):
        _enc_list(out, value)
    elif isinstance(value, dict):
        _enc_map(out, value)
    elif isinstance(value, uuid.UUID):
        out.append(0x98)
        out += value.bytes
    elif isinstance(value, int):
        for cls in (UInt, ULong, UByte, UShort, Byte, Short, Int, Timestamp, Long):
            if isinstance(value, cls):
                _ENCODERS[cls](out, value)
                return
        _enc_long(out, value)
    elif isinstance(value, float):
        if isinstance(value, Float):
            out.append(0x72)
            out += _F32.pack(value)
        else:
            out.append(0x82)
            out += _F64.pack(value)
    else:
        raise TypeError(f"cannot AMQP-encode {type(value).__name__}")


def encode_bytes(value: Any) -> bytes:
    """Convenience wrapper returning a new bytes object."""
    out = bytearray()
    encode(value, out)
    return bytes(out)


def _enc_sized(out: bytearray, b: bytes, short_code: int, long_code: int) -> None:
    """Variable-width value: one-byte length when it fits, else four."""
    if len(b) < 256:
        out.append(short_code)
        out.append(len(b))
    else:
        out.append(long_code)
        out += _U32.pack(len(b))
    out += b


def _enc_symbol(out: bytearray, v: str) -> None:
    _enc_sized(out, v.encode("ascii"), 0xA3, 0xB3)


def _enc_str(out: bytearray, v: str) -> None:
    _enc_sized(out, v.encode("utf-8"), 0xA1, 0xB1)


def _enc_bin(out: bytearray, b: bytes) -> None:
    _enc_sized(out, b, 0xA0, 0xB0)


def _enc_signed(out: bytearray, v: int, small_code: int, code: int, st: struct.Struct) -> None:
    """Signed integer: the one-byte form (smalllong/smallint) when it fits."""
    if -128 <= v <= 127:
        out.append(small_code)
        out += _I8.pack(v)
    else:
        out.append(code)
        out += st.pack(v)


def _enc_unsigned(
    out: bytearray, v: int, zero_code: int, small_code: int, code: int, st: struct.Struct
) -> None:
    """Unsigned integer: the empty form for 0 (uint0/ulong0), the one-byte form below 256."""
    if v == 0:
        out.append(zero_code)
    elif v < 256:
        out.append(small_code)
        out.append(v)
    else:
        out.append(code)
        out += st.pack(v)


def _enc_long(out: bytearray, v: int) -> None:
    _enc_signed(out, v, 0x55, 0x81, _I64)


def _enc_uint(out: bytearray, v: int) -> None:
    _enc_unsigned(out, v, 0x43, 0x52, 0x70, _U32)


def _enc_ulong(out: bytearray, v: int) -> None:
    _enc_unsigned(out, v, 0x44, 0x53, 0x80, _U64)


def _enc_int(out: bytearray, v: int) -> None:
    _enc_signed(out, v, 0x54, 0x71, _I32)


def _enc_described(out: bytearray, v: Described) -> None:
    out.append(0x00)
    d = v.descriptor
    if isinstance(d, int) and not isinstance(d, bool):
        _enc_ulong(out, d)
    elif isinstance(d, str):
        _enc_symbol(out, d)
    else:
        encode(d, out)
    encode(v.value, out)


def _enc_list(out: bytearray, v: Any) -> None:
    if not v:
        out.append(0x45)
        return
    body = bytearray()
    for item in v:
        encode(item, body)
    _write_compound_header(out, 0xC0, 0xD0, len(v), len(body))
    out += body


def _enc_map(out: bytearray, v: dict[Any, Any]) -> None:
    body = bytearray()
    for k, item in v.items():
        encode(k, body)
        encode(item, body)
    write_map_header(out, len(v) * 2, len(body))
    out += body


def write_map_header(out: bytearray, count: int, body_len: int) -> None:
    """Write a map constructor for `count` items (keys+values) whose encoding is body_len bytes."""
    _write_compound_header(out, 0xC1, 0xD1, count, body_len)


def _write_compound_header(
    out: bytearray, short_code: int, long_code: int, count: int, body_len: int
) -> None:
    """List, map or array header: one-byte size and count when both fit, else four-byte ones."""
    if body_len + 1 < 256 and count < 256:
        out.append(short_code)
        out.append(body_len + 1)
        out.append(count)
    else:
        out.append(long_code)
        out += _U32.pack(body_len + 4)
        out += _U32.pack(count)


_ARRAY_ELEMENT: dict[type, tuple[int, Callable[[Any], bytes]]] = {
    Symbol: (0xB3, lambda v: _U32.pack(len(v.encode("ascii"))) + v.encode("ascii")),
    str: (0xB1, lambda v: _U32.pack(len(v.encode("utf-8"))) + v.encode("utf-8")),
    bytes: (0xB0, lambda v: _U32.pack(len(v)) + bytes(v)),
    uuid.UUID: (0x98, lambda v: v.bytes),
    UInt: (0x70, _U32.pack),
    ULong: (0x80, _U64.pack),
    Int: (0x71, _I32.pack),
    Long: (0x81, _I64.pack),
    int: (0x81, _I64.pack),
    Timestamp: (0x83, _I64.pack),
    UByte: (0x50, _U8.pack),
    UShort: (0x60, _U16.pack),
    Byte: (0x51, _I8.pack),
    Short: (0x61, _I16.pack),
    float: (0x82, _F64.pack),
    Float: (0x72, _F32.pack),
    bool: (0x56, lambda v: b"\x01" if v else b"\x00"),
}


def _enc_array(out: bytearray, v: Array) -> None:
    et = v.element_type
    if et is None:
        et = type(v[0]) if v else Symbol
    if et in _ARRAY_ELEMENT:
        code, fn = _ARRAY_ELEMENT[et]
        body = bytearray([code])
        for item in v:
            body += fn(item)
    else:
        raise TypeError(f"unsupported array element type {et!r}")
    _write_compound_header(out, 0xE0, 0xF0, len(v), len(body))
    out += body


_ENCODERS: dict[type, Callable[[bytearray, Any], None]] = {
    type(None): _enc_null,
    bool: lambda out, v: out.append(0x41 if v else 0x42),
    int: _enc_long,
    Long: _enc_long,
    str: _enc_str,
    Symbol: _enc_symbol,
    bytes: _enc_bin,
    Raw: lambda out, v: out.extend(v),
    UInt: _enc_uint,
    ULong: _enc_ulong,
    Int: _enc_int,
    UByte: lambda out, v: out.extend((0x50, v)),
    UShort: lambda out, v: out.extend(b"\x60" + _U16.pack(v)),
    Byte: lambda out, v: out.extend(b"\x51" + _I8.pack(v)),
    Short: lambda out, v: out.extend(b"\x61" + _I16.pack(v)),
    Timestamp: lambda out, v: out.extend(b"\x83" + _I64.pack(v)),
    float: lambda out, v: out.extend(b"\x82" + _F64.pack(v)),
    Float: lambda out, v: out.extend(b"\x72" + _F32.pack(v)),
    uuid.UUID: lambda out, v: out.extend(b"\x98" + v.bytes),
    list: _enc_list,
    dict: _enc_map,
    Described: _enc_described,
    Array: _enc_array,
}


# --------------------------------------------------------------------------- decoding
#
# Bounds, the same as Microsoft.Azure.Amqp's decoder (the AMQP stack Service Bus runs on;
# Azure/azure-amqp src/Encoding/AmqpEncoding.cs: MaxNestingDepth, MaxUnboundedSize, ReadSizeAndCount,
# TrackUnboundedSize): compounds nest at most 64 deep, a compound's size and element count must fit in
# the bytes that remain, and zero-width elements (null, true/false, uint0, ulong0, list0), whose count the
# buffer does not bound, total at most 64 Ki per decode call. Everything that goes wrong becomes a
# DecodeError (never IndexError, struct.error, RecursionError, ...), so a connection can answer it with a
# close frame instead of a traceback.

MAX_NESTING_DEPTH = 64
MAX_UNBOUNDED_ELEMENTS = 64 * 1024

DECODE_ERROR = "amqp:decode-error"
INVALID_FIELD = "amqp:invalid-field"


class DecodeState:
    """Per-call budget: the current compound depth and the zero-width elements decoded so far."""

    __slots__ = ("depth", "unbounded")

    def __init__(self) -> None:
        """A fresh budget for one top-level decode."""
        self.depth = 0
        self.unbounded = 0

    def enter(self) -> None:
        """One compound level deeper; refuse past MAX_NESTING_DEPTH."""
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            raise DecodeError(f"AMQP object graph depth {self.depth} exceeds maximum ({MAX_NESTING_DEPTH})")

    def count_elements(self, count: int, zero_width: bool, remaining: int) -> None:
        """Refuse element counts the remaining bytes cannot hold (or too many zero-width elements)."""
        if zero_width:
            self.unbounded += count
            if self.unbounded > MAX_UNBOUNDED_ELEMENTS:
                raise DecodeError(
                    f"{self.unbounded} zero-width elements exceed the maximum ({MAX_UNBOUNDED_ELEMENTS})"
                )
        elif count > remaining:
            raise DecodeError(f"AMQP element count {count} exceeds the {remaining} bytes that remain")


Decoder = Callable[[bytes, int, DecodeState], tuple[Any, int]]

_ZERO_WIDTH = frozenset((0x40, 0x41, 0x42, 0x43, 0x44, 0x45))


def decode(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """Decode one value at pos; return (value, next position). Raises only DecodeError."""
    try:
        value, end = _decode(buf, pos, DecodeState())
    except DecodeError:
        raise
    except (IndexError, struct.error, ValueError, TypeError, KeyError, OverflowError) as exc:
        # truncated fixed-width values, bad UTF-8/ASCII, a short uuid, unhashable map keys (a list as key)
        raise DecodeError(f"malformed AMQP value: {type(exc).__name__}: {exc}") from exc
    except RecursionError as exc:  # only reachable if the depth bound were raised above the stack
        raise DecodeError("AMQP value nested too deeply") from exc
    if end > len(buf):
        raise DecodeError("truncated AMQP value")
    return value, end


def _decode(buf: bytes, pos: int, st: DecodeState) -> tuple[Any, int]:
    code = buf[pos]  # IndexError when truncated: decode() turns it into a DecodeError
    fn = _DECODERS.get(code)
    if fn is None:
        # Microsoft.Azure.Amqp answers an unknown format code with invalid-field (GetEncodingException)
        raise DecodeError(f"unknown AMQP constructor 0x{code:02x} at {pos}", INVALID_FIELD)
    return fn(buf, pos + 1, st)


def skip(buf: bytes, pos: int) -> int:
    """Return the position after the value at pos without building Python objects where cheap."""
    try:
        end = _skip(buf, pos, 0)
    except DecodeError:
        raise
    except (IndexError, struct.error) as exc:
        raise DecodeError("truncated AMQP value") from exc
    if end > len(buf):
        raise DecodeError("truncated AMQP value")
    return end


def _skip(buf: bytes, pos: int, depth: int) -> int:
    if depth > MAX_NESTING_DEPTH:
        raise DecodeError(f"AMQP object graph depth exceeds maximum ({MAX_NESTING_DEPTH})")
    code = buf[pos]
    if code in _FIXED_WIDTH:
        return pos + 1 + _FIXED_WIDTH[code]
    if code in (0xA0, 0xA1, 0xA3, 0xC0, 0xC1, 0xE0):
        return pos + 2 + buf[pos + 1]
    if code in (0xB0, 0xB1, 0xB3, 0xD0, 0xD1, 0xF0):
        return pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
    if code == 0x00:
        return _skip(buf, _skip(buf, pos + 1, depth + 1), depth + 1)
    raise DecodeError(f"unknown AMQP constructor 0x{code:02x} at {pos}", INVALID_FIELD)


_FIXED_WIDTH = {
    0x40: 0, 0x41: 0, 0x42: 0, 0x43: 0, 0x44: 0, 0x45: 0,
    0x50: 1, 0x51: 1, 0x52: 1, 0x53: 1, 0x54: 1, 0x55: 1, 0x56: 1,
    0x60: 2, 0x61: 2,
    0x70: 4, 0x71: 4, 0x72: 4, 0x73: 4, 0x74: 4,
    0x80: 8, 0x81: 8, 0x82: 8, 0x83: 8, 0x84: 8,
    0x94: 16, 0x98: 16,
}  # fmt: skip


def _fixed(st_: struct.Struct, cls: Callable[[Any], Any]) -> Decoder:
    size = st_.size

    def dec(buf: bytes, pos: int, _st: DecodeState) -> tuple[Any, int]:
        return cls(st_.unpack_from(buf, pos)[0]), pos + size

    return dec


def _dec_var(size_st: struct.Struct, conv: Callable[[bytes], Any]) -> Decoder:
    width = size_st.size

    def dec(buf: bytes, pos: int, _st: DecodeState) -> tuple[Any, int]:
        n = size_st.unpack_from(buf, pos)[0]
        start = pos + width
        end = start + n
        if end > len(buf):
            raise DecodeError(f"variable-width value of {n} bytes exceeds the {len(buf) - start} that remain")
        return conv(bytes(buf[start:end])), end

    return dec


def _compound_header(size_st: struct.Struct, buf: bytes, pos: int) -> tuple[int, int, int]:
    """Read a compound's size and count at pos; return (count, declared end, first element position).

    The declared size must fit in the bytes that remain (Microsoft.Azure.Amqp's ReadSizeAndCount)."""
    width = size_st.size
    size = size_st.unpack_from(buf, pos)[0]
    count = size_st.unpack_from(buf, pos + width)[0]
    end = pos + width + size
    if size < width or end > len(buf):
        raise DecodeError(f"AMQP compound size {size} does not fit the {len(buf) - pos - width} bytes left")
    return count, end, pos + 2 * width


def _dec_compound(size_st: struct.Struct, is_map: bool) -> Decoder:
    def dec(buf: bytes, pos: int, st: DecodeState) -> tuple[Any, int]:
        count, _end, p = _compound_header(size_st, buf, pos)
        if is_map and count % 2:
            raise DecodeError(f"AMQP map with an odd element count ({count})")
        if count > len(buf) - p:  # every element takes at least its constructor byte
            st.count_elements(count, False, len(buf) - p)
        st.depth += 1
        if st.depth > MAX_NESTING_DEPTH:
            st.enter()  # raises with the message
        items = []
        decoders = _DECODERS
        for _ in range(count):
            fn = decoders.get(buf[p])
            if fn is None:
                v, p = _decode(buf, p, st)  # raises the unknown-constructor error
            else:
                v, p = fn(buf, p + 1, st)
            items.append(v)
        st.depth -= 1
        # Trust the element count over the size field: some client encoders (azure-servicebus 7.14's
        # pyamqp) write an inaccurate size for nested compounds, and the elements parse correctly.
        if p > len(buf):
            raise DecodeError("compound size mismatch")
        if is_map:
            return {items[i]: items[i + 1] for i in range(0, len(items), 2)}, p
        return items, p

    return dec


def _dec_array(size_st: struct.Struct) -> Decoder:
    def dec(buf: bytes, pos: int, st: DecodeState) -> tuple[Any, int]:
        count, end, p = _compound_header(size_st, buf, pos)
        st.enter()
        code = buf[p]
        descriptor = None
        if code == 0x00:
            descriptor, p = _decode(buf, p + 1, st)
            code = buf[p]
        fn = _DECODERS.get(code)
        if fn is None or code == 0x00:
            raise DecodeError(f"unknown AMQP array element constructor 0x{code:02x}", INVALID_FIELD)
        p += 1
        st.count_elements(count, code in _ZERO_WIDTH, len(buf) - p)
        items: list[Any] = []
        for _ in range(count):
            v, p = fn(buf, p, st)
            items.append(Described(descriptor, v) if descriptor is not None else v)
        st.depth -= 1
        return Array(items), p if count else end

    return dec


def _dec_described(buf: bytes, pos: int, st: DecodeState) -> tuple[Any, int]:
    st.depth += 1
    if st.depth > MAX_NESTING_DEPTH:
        st.enter()  # raises with the message
    descriptor, p = _decode(buf, pos, st)
    value, p = _decode(buf, p, st)
    st.depth -= 1
    return Described(descriptor, value), p


def _dec_uuid(buf: bytes, pos: int, _st: DecodeState) -> tuple[Any, int]:
    return uuid.UUID(bytes=bytes(buf[pos : pos + 16])), pos + 16


def _dec_decimal(code: int, size: int) -> Decoder:
    def dec(buf: bytes, pos: int, _st: DecodeState) -> tuple[Any, int]:
        if pos + size > len(buf):
            raise DecodeError("truncated decimal")
        return Decimal(bytes(buf[pos : pos + size]), code), pos + size

    return dec


_DECODERS: dict[int, Decoder] = {
    0x40: lambda b, p, st: (None, p),
    0x41: lambda b, p, st: (True, p),
    0x42: lambda b, p, st: (False, p),
    0x56: lambda b, p, st: (b[p] == 1, p + 1),
    0x43: lambda b, p, st: (0, p),
    0x44: lambda b, p, st: (0, p),
    0x45: lambda b, p, st: ([], p),
    0x50: lambda b, p, st: (b[p], p + 1),
    0x52: lambda b, p, st: (b[p], p + 1),
    0x53: lambda b, p, st: (b[p], p + 1),
    0x51: _fixed(_I8, int),
    0x54: _fixed(_I8, int),
    0x55: _fixed(_I8, int),
    0x60: _fixed(_U16, int),
    0x61: _fixed(_I16, int),
    0x70: _fixed(_U32, int),
    0x71: _fixed(_I32, int),
    0x72: _fixed(_F32, float),
    0x73: _fixed(_U32, lambda v: Char(chr(v))),
    0x74: _dec_decimal(0x74, 4),
    0x80: _fixed(_U64, int),
    0x81: _fixed(_I64, int),
    0x82: _fixed(_F64, float),
    0x83: _fixed(_I64, Timestamp),
    0x84: _dec_decimal(0x84, 8),
    0x94: _dec_decimal(0x94, 16),
    0x98: _dec_uuid,
    0xA0: _dec_var(_U8, bytes),
    0xB0: _dec_var(_U32, bytes),
    0xA1: _dec_var(_U8, lambda b: b.decode("utf-8")),
    0xB1: _dec_var(_U32, lambda b: b.decode("utf-8")),
    0xA3: _dec_var(_U8, lambda b: Symbol(b.decode("ascii"))),
    0xB3: _dec_var(_U32, lambda b: Symbol(b.decode("ascii"))),
    0xC0: _dec_compound(_U8, False),
    0xD0: _dec_compound(_U32, False),
    0xC1: _dec_compound(_U8, True),
    0xD1: _dec_compound(_U32, True),
    0xE0: _dec_array(_U8),
    0xF0: _dec_array(_U32),
    0x00: _dec_described,
}


def map_entries_raw(buf: bytes, pos: int) -> tuple[list[tuple[Any, bytes]], int]:
    """Decode a map at pos into (key, raw encoded key+value bytes) pairs.

    Used to add or drop entries of a map (message annotations, application properties) while
    leaving every other entry exactly as the client encoded it.
    """
    try:
        code = buf[pos]
        if code == 0xC1:
            count, end, p = _compound_header(_U8, buf, pos + 1)
        elif code == 0xD1:
            count, end, p = _compound_header(_U32, buf, pos + 1)
        elif code == 0x40:
            return [], pos + 1
        else:
            raise DecodeError(f"expected a map, got constructor 0x{code:02x}")
    except (IndexError, struct.error) as exc:
        raise DecodeError("truncated map") from exc
    if count % 2 or count > end - p:
        raise DecodeError(f"AMQP map element count {count} is odd or exceeds its size")
    entries: list[tuple[Any, bytes]] = []
    for _ in range(count // 2):
        start = p
        key, p = decode(buf, p)
        p = skip(buf, p)
        entries.append((key, bytes(buf[start:p])))
    if p != end:
        raise DecodeError("map size mismatch")
    return entries, end


def build_map_raw(entries: list[bytes]) -> bytes:
    """Build a map encoding from pre-encoded key+value chunks."""
    body = b"".join(entries)
    out = bytearray()
    write_map_header(out, len(entries) * 2, len(body))
    out += body
    return bytes(out)
