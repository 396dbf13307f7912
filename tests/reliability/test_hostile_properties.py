"""Property: whatever bytes arrive, only TransientStoreError leaves the processor, and every message settles
with exactly one outcome, while valid messages interleaved in the same sessions are still applied.

Bodies are drawn at the bytes level: arbitrary bytes; JSON-ish text assembled from hostile fragments (deep
brackets, long numbers, NaN/Infinity, surrogate escapes, duplicate keys, BOMs) in several encodings; and
valid messages with one field replaced by such a fragment. Store commits fail on a random plan, so hostile
messages are also redelivered.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.engine.outcomes import Outcome
from shared.engine.records import QuarantineRecord
from shared.envelope import SessionEnvelope
from shared.order_workflow import OrderStepProcessor
from tests.reliability.harness import CrashingStore, deliver_all, store_problems
from tests.support.hostile import valid_doc

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SESSIONS = ("c1", "c2")

FRAGMENTS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        '"a"',
        '"sequence"',
        '"step"',
        '"data"',
        "NaN",
        "-Infinity",
        "Infinity",
        "1e400",
        "-0",
        "1.0E-999999",
        "null",
        "true",
        '"\\ud800"',
        '"\\udc00\\ud800"',
        '"\\ud83d\\ude00"',
        '"\\u0000"',
        "\ufeff",
        "\x00",
        " ",
        "\u2028",
        '"order.placed"',
    ]
)


@st.composite
def json_ish(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(FRAGMENTS | st.integers().map(str) | st.text(max_size=8).map(json.dumps), max_size=40)
    )
    text = "".join(parts)
    depth = draw(st.sampled_from([0, 0, 31, 33, 1000, 5000]))
    opener = draw(st.sampled_from(["[", '{"a":']))
    closer = "]" if opener == "[" else "}"
    text = opener * depth + text + closer * draw(st.sampled_from([0, depth]))
    if draw(st.booleans()):
        text += draw(st.sampled_from(["9" * 5000, "1." + "1" * 500]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1"]))
    return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


@st.composite
def spliced(draw: st.DrawFn, session: str) -> bytes:
    """A valid message with one value (at any depth of its data) replaced by hostile raw text."""
    doc = valid_doc(session, f"h-{draw(st.integers(0, 3))}", sequence=draw(st.integers(1, 3)))
    key = draw(st.sampled_from(["sequence", "order_id", "data", "occurred_at", "customer_id", "extra"]))
    raw = draw(
        st.sampled_from(
            [
                "NaN",
                "1e400",
                "9" * 6000,
                '"\\ud800"',
                '{"n": ' * 900 + "1" + "}" * 900,
                '{"items": [{"sku": "s", "quantity": 1, "unit_price": 1e400}], "currency": "EUR"}',
                '{"items": [{"sku": "s", "quantity": 10000000000, "unit_price": 1}], "currency": "EUR"}',
                '{"items": [], "items": [], "currency": "EUR"}',
                "[" * 50 + "]" * 50,
            ]
        )
    )
    text = json.dumps({**doc, key: "__X__"}).replace('"__X__"', raw)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def traffic(draw: st.DrawFn) -> list[tuple[SessionEnvelope, str]]:
    messages: list[tuple[SessionEnvelope, str]] = []
    for n in range(draw(st.integers(1, 12))):
        session = draw(st.sampled_from(SESSIONS))
        kind = draw(st.sampled_from(["bytes", "json-ish", "spliced", "valid"]))
        if kind == "bytes":
            raw = draw(st.binary(max_size=300))
        elif kind == "json-ish":
            raw = draw(json_ish())
        elif kind == "spliced":
            raw = draw(spliced(session))
        else:  # one valid order per message, never clashing with the hostile ones' order ids
            raw = json.dumps(valid_doc(session, f"ok-{n}")).encode()
        env = SessionEnvelope(raw, session, f"m-{n}", sequence_number=n, application_properties={"n": n})
        messages.append((env, kind))
    return messages


@SETTINGS
@given(messages=traffic(), plan=st.lists(st.sampled_from(["ok", "ok", "fail", "lost-ack"]), max_size=30))
def test_only_store_failures_leave_the_processor_and_every_message_settles_once(
    messages: list[tuple[SessionEnvelope, str]], plan: list[str]
) -> None:
    store = CrashingStore(plan)
    seen = deliver_all(
        OrderStepProcessor(store).process, [env for env, _ in messages]
    )  # raises anything else

    assert sorted(seen.final) == list(range(len(messages)))
    assert set(seen.final.values()) <= set(Outcome)
    quarantined = {q.id for q in store.list_quarantine()}
    applied = {(x.customer_id, x.order_id) for x in store.list_ledgers() if x.applied}
    for i, (env, kind) in enumerate(messages):
        if kind == "valid":
            assert seen.final[i] in (Outcome.APPLIED, Outcome.DUPLICATE)  # duplicate: its ack was lost
            assert (env.session_id, f"ok-{i}") in applied
        elif kind in ("bytes", "json-ish"):
            assert seen.final[i] is Outcome.QUARANTINED
        if seen.final[i] is Outcome.QUARANTINED:
            assert QuarantineRecord.id_for(env) in quarantined
    assert store_problems(store, 50) == []


def test_a_hostile_fragment_reaches_each_stage() -> None:
    """A fixed case per kind, so the strategies cannot silently stop producing what they claim."""
    store = CrashingStore()
    processor = OrderStepProcessor(store)
    bodies: list[Any] = [
        b"[" * 5000 + b"]" * 5000,
        ('{"a":' * 1000).encode("utf-16"),
        json.dumps({**valid_doc("c1", "h"), "data": "__X__"})
        .replace('"__X__"', '{"n": ' * 900 + "1" + "}" * 900)
        .encode(),
    ]
    for n, raw in enumerate(bodies):
        result = processor.process(SessionEnvelope(raw, "c1", f"m-{n}"))
        assert result.outcome is Outcome.QUARANTINED and result.reason is not None
        assert result.reason.value == "malformed-json"
