"""Property tests of the whole pipeline (OrderStepProcessor + in-memory store) under hostile input.

Hypothesis draws: customers and orders with valid step paths; exact duplicates (some reformatted, some
under a new message id); noise (random bytes, random JSON, valid messages mutated into invalid ones,
valid-shaped messages for unrelated "noise" orders); arbitrary broker properties; a random global
permutation (so every order's steps arrive in any order, interleaved with other sessions); and a crash
plan: commits that fail (nothing written, message redelivered) and commits that succeed but whose
acknowledgement is lost (message redelivered although its effects are stored).

Invariants: only TransientStoreError ever leaves the processor; every published message settles as
applied | duplicate | parked | quarantined; every tracked order's applied steps are exactly its published
steps, once each, in sequence order; invalid messages are quarantined (never touch an order); parked
counts stay within park_limit; every idempotency record has its effect and every effect its record.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contract import STEP_NAMES
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.records import QuarantineRecord
from shared.envelope import SessionEnvelope
from shared.order_workflow import OrderStepProcessor
from tests.reliability.harness import CrashingStore, deliver_all, store_problems
from tests.support.builders import DEFAULT_DATA

PATHS: tuple[tuple[str, ...], ...] = (
    ("order.placed", "payment.authorized", "inventory.reserved", "order.shipped", "order.delivered"),
    ("order.placed", "order.cancelled"),
    ("order.placed", "payment.authorized", "order.cancelled"),
    ("order.placed", "payment.authorized", "inventory.reserved", "order.cancelled"),
)
PAYMENT_DATA = {"payment_id": "pay-1", "amount": "25.50"}  # equals DEFAULT_DATA's order total

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)
prop_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.datetimes(timezones=st.just(UTC)),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def doc_for(customer: str, order: str, seq: int, step: str) -> dict[str, Any]:
    data = PAYMENT_DATA if step == "payment.authorized" else DEFAULT_DATA[step]
    return {
        "schema": "order-step/v1",
        "customer_id": customer,
        "order_id": order,
        "sequence": seq,
        "step": step,
        "occurred_at": f"2026-11-01T10:00:{seq:02d}Z",
        "data": data,
    }


def encode(doc: dict[str, Any], pretty: bool = False) -> bytes:
    return json.dumps(doc, indent=2 if pretty else None).encode()


@st.composite
def broker_props(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "content_type": draw(st.none() | st.text(max_size=20)),
        "correlation_id": draw(st.none() | st.text(max_size=20)),
        "application_properties": draw(st.dictionaries(st.text(max_size=10), prop_values, max_size=4)),
    }


@st.composite
def invalid_mutation(draw: st.DrawFn, doc: dict[str, Any]) -> tuple[bytes, str]:
    """A valid message turned invalid; returns (body, the session id to send it on)."""
    d = json.loads(json.dumps(doc))
    session = d["customer_id"]
    kind = draw(
        st.sampled_from(
            ["drop", "sequence", "step", "schema", "extra", "mismatch", "naive", "truncate", "not-utf8"]
        )
    )
    if kind == "drop":
        del d[draw(st.sampled_from(["schema", "customer_id", "order_id", "sequence", "step", "occurred_at"]))]
    elif kind == "sequence":
        d["sequence"] = draw(st.sampled_from([0, -1, "1", 1.5, None, 10**7, True, [1]]))
    elif kind == "step":
        d["step"] = draw(st.text(max_size=20).filter(lambda s: s not in STEP_NAMES))
    elif kind == "schema":
        d["schema"] = draw(st.sampled_from(["order-step/v2", "", None, 1]))
    elif kind == "extra":
        d[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in d))] = draw(json_values)
    elif kind == "mismatch":
        session = draw(ids.filter(lambda s: s != d["customer_id"]))
    elif kind == "naive":
        d["occurred_at"] = "2026-11-01T10:00:00"
    raw = encode(d)
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif kind == "not-utf8":
        raw = b"\xff" + raw
    return raw, session


@st.composite
def scenario(draw: st.DrawFn, *, noise: bool = True) -> dict[str, Any]:
    customers = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    tracked: dict[tuple[str, str], list[str]] = {}
    messages: list[tuple[SessionEnvelope, str]] = []  # (envelope, kind)
    counter = iter(range(1, 10_000))

    def envelope(raw: bytes, session: str, message_id: str | None = None) -> SessionEnvelope:
        n = next(counter)
        return SessionEnvelope(
            body=raw,
            session_id=session,
            message_id=message_id if message_id is not None else draw(st.text(max_size=12)),
            sequence_number=n,
            **draw(broker_props()),
        )

    docs: list[dict[str, Any]] = []
    for customer in customers:
        for k in range(draw(st.integers(1, 3))):
            order = f"ord-{k}"
            path = list(draw(st.sampled_from(PATHS)))
            path = path[: draw(st.integers(1, len(path)))]
            tracked[(customer, order)] = path
            for seq, step in enumerate(path, start=1):
                doc = doc_for(customer, order, seq, step)
                docs.append(doc)
                messages.append((envelope(encode(doc), customer, f"{order}:{seq}"), "valid"))
    for doc in draw(st.lists(st.sampled_from(docs), max_size=6)):  # exact re-sends, maybe reformatted
        pretty = draw(st.booleans())
        messages.append((envelope(encode(doc, pretty), doc["customer_id"]), "valid"))
    if noise:
        sessions = st.sampled_from(customers) | ids
        for _ in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(["bytes", "json", "mutated", "noise-order"]))
            if kind == "bytes":
                raw, session = draw(st.binary(max_size=64)), draw(sessions)
            elif kind == "json":
                raw, session = json.dumps(draw(json_values)).encode(), draw(sessions)
            elif kind == "mutated":
                raw, session = draw(invalid_mutation(draw(st.sampled_from(docs))))
            else:
                customer = draw(st.sampled_from(customers))
                step = draw(st.sampled_from(STEP_NAMES))
                doc = doc_for(customer, f"noise-{draw(st.integers(0, 2))}", draw(st.integers(1, 6)), step)
                raw, session = encode(doc), customer
            messages.append((envelope(raw, session), "noise-order" if kind == "noise-order" else "invalid"))
    permutation = draw(st.permutations(range(len(messages))))
    shuffled = [messages[i] for i in permutation]
    plan = draw(st.lists(st.sampled_from(["ok", "ok", "ok", "fail", "lost-ack"]), max_size=2 * len(messages)))
    return {"tracked": tracked, "messages": shuffled, "plan": plan}


def run(sc: dict[str, Any], park_limit: int) -> tuple[CrashingStore, Any]:
    store = CrashingStore(sc["plan"])
    processor = OrderStepProcessor(store, park_limit=park_limit)
    seen = deliver_all(processor.process, [env for env, _ in sc["messages"]])
    return store, seen


@SETTINGS
@given(sc=scenario())
def test_every_order_ends_exactly_as_published_whatever_arrives(sc: dict[str, Any]) -> None:
    park_limit = 50
    store, seen = run(sc, park_limit)

    assert len(seen.final) == len(sc["messages"])  # every message settled with one of the four outcomes
    assert set(seen.final.values()) <= set(Outcome)
    applied = {(x.customer_id, x.order_id): [a.step for a in x.applied] for x in store.list_ledgers()}
    for key, path in sc["tracked"].items():
        assert applied.get(key) == path, key
    assert not [p for p in store.list_parked() if not p.stream_key.startswith("noise-")]
    quarantined = {q.id for q in store.list_quarantine()}
    for i, (env, kind) in enumerate(sc["messages"]):
        if kind == "valid":
            assert seen.final[i] is not Outcome.QUARANTINED, (env.body, seen.final[i])
        elif kind == "invalid":
            assert seen.final[i] is Outcome.QUARANTINED
            assert QuarantineRecord.id_for(env) in quarantined
    for result in seen.results:
        assert set(result.quarantine_ids) <= quarantined
    assert store_problems(store, park_limit) == []


@SETTINGS
@given(sc=scenario(noise=False), park_limit=st.integers(1, 3))
def test_a_small_park_limit_bounds_parking_and_never_breaks_order(
    sc: dict[str, Any], park_limit: int
) -> None:
    store, seen = run(sc, park_limit)

    assert len(seen.final) == len(sc["messages"])
    assert store_problems(store, park_limit) == []
    ledgers = {(x.customer_id, x.order_id): x for x in store.list_ledgers()}
    overflow = {
        (q.session_id, q.stream_key, q.sequence)
        for q in store.list_quarantine()
        if q.reason == QuarantineReason.RESEQUENCE_OVERFLOW.value
    }
    for (customer, order), path in sc["tracked"].items():
        ledger = ledgers.get((customer, order))
        done = [a.step for a in ledger.applied] if ledger else []
        assert done == path[: len(done)]  # a prefix: in order, once each, nothing skipped
        waiting = set(ledger.parked) if ledger else set()
        for seq in range(len(done) + 1, len(path) + 1):  # not applied: parked or quarantined as overflow
            assert seq in waiting or (customer, order, seq) in overflow, (order, seq)


def test_crash_plan_actually_exercises_both_kinds_of_crash() -> None:
    """A fixed case, so a refactor of the harness cannot quietly stop injecting crashes."""
    docs = [doc_for("c", "o", s, n) for s, n in enumerate(PATHS[0], start=1)]
    msgs = [
        SessionEnvelope(encode(d), "c", f"o:{d['sequence']}", sequence_number=i) for i, d in enumerate(docs)
    ]
    store = CrashingStore(["fail", "lost-ack", "ok", "lost-ack", "fail", "fail"])
    seen = deliver_all(OrderStepProcessor(store).process, msgs[::-1])
    assert store.failures == 3 and store.lost_acks == 2
    assert [a.step for a in store.list_ledgers()[0].applied] == list(PATHS[0])
    assert store_problems(store, 50) == []
    assert seen.deliveries == len(msgs) + 5
