"""Wire-level checks that don't need the SDK: codec round trips and byte-for-byte passthrough."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from devstack.emulator.codec import Array, Described, Symbol, Timestamp, UInt, ULong, decode, encode_bytes
from devstack.emulator.message import parse_message

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.uuids(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@given(_values)
def test_codec_round_trip(value):
    decoded, end = decode(encode_bytes(value))
    assert decoded == value
    assert end == len(encode_bytes(value))


def test_typed_values_round_trip():
    for v in (UInt(7), ULong(2**40), Timestamp(1_700_000_000_000), Symbol("x-opt"), Array([1, 2], int)):
        decoded, _ = decode(encode_bytes(v))
        assert decoded == v
    d, _ = decode(encode_bytes(Described(0x24, [])))
    assert d == Described(0x24, [])


def test_sections_pass_through_byte_for_byte():
    props = b"\x00\x53\x73" + encode_bytes(["mid", None, None, "subj", None, "corr", Symbol("text/plain")])
    # deliberately unusual encodings: a uint in its widest form, a str32 for a short string
    app = (
        b"\x00\x53\x74"
        + b"\xc1\x12\x04"
        + b"\xa1\x01a"
        + b"\x70\x00\x00\x00\x05"
        + b"\xa1\x01b"
        + b"\xb1\x00\x00\x00\x01z"
    )
    annotations = b"\x00\x53\x72" + encode_bytes({Symbol("x-opt-partition-key"): "pk", Symbol("custom"): 1})
    body = b"\x00\x53\x75" + encode_bytes(b"payload")
    m = parse_message(annotations + props + app + body)
    m.seq, m.enqueued_ms = 9, 1000
    out = m.encode(lock_token=uuid.uuid4(), locked_until_ms=2000)
    assert props + app + body in out
    assert encode_bytes(Symbol("custom")) + encode_bytes(1) in out
    assert m.message_id == "mid"
