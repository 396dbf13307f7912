"""Hostile bodies over the processor (in-memory store): each ends with one outcome, never an exception,
and the session goes on. Also the `unprocessable` safety net for failures the contract's bounds miss."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

import shared.order_workflow as order_workflow
from shared.contract import MAX_DEPTH, MAX_NUMBER_CHARS, ContractError, parse_order_step
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.records import ParkedMessage, QuarantineRecord, SessionChanges, utcnow
from shared.envelope import MAX_BODY_BYTES, SessionEnvelope
from shared.order_workflow import OrderStepProcessor
from shared.store.base import StoreUnavailable
from shared.store.memory import InMemoryOrderStore
from tests.support.builders import body, envelope
from tests.support.hostile import corpus, valid_doc

CUSTOMER, ORDER = "cust-h", "ord-h"
CASES = corpus(CUSTOMER, ORDER)


def _env(raw: bytes, message_id: str = "m-1", session: str = CUSTOMER) -> SessionEnvelope:
    return SessionEnvelope(raw, session, message_id, sequence_number=1, application_properties={"k": "v"})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_body_gets_its_outcome_and_the_session_goes_on(case: Any) -> None:
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store)

    result = processor.process(_env(case.body))

    assert result.outcome.value == case.outcome
    assert (result.reason.value if result.reason else None) == case.reason
    if case.outcome == "quarantined":
        (record,) = store.list_quarantine()
        assert record.id in result.quarantine_ids
        assert record.body_size == len(case.body)
        assert record.body_sha256 == hashlib.sha256(case.body).hexdigest()
        if len(case.body) <= MAX_BODY_BYTES:
            assert record.raw_body == case.body  # kept whole: nothing lost
        else:
            assert record.body_encoding == "omitted" and record.raw_body == b""
        assert record.metadata["application_properties"] == {"k": "v"}
        assert store.list_ledgers() == []  # a quarantined message never touches an order
    # a valid message queued behind it in the same session is applied
    behind = processor.process(_env(body("order.placed", 1, customer=CUSTOMER, order="ord-behind"), "m-2"))
    assert behind.outcome is Outcome.APPLIED


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_quarantine_details_never_echo_the_body(case: Any) -> None:
    result = OrderStepProcessor(InMemoryOrderStore()).process(_env(case.body))
    if result.detail:
        assert len(result.detail) < 400
        for secret in ("9999999999", "caf", "udc00", "leaf", "xxxx"):
            assert secret not in result.detail


def test_bounds_are_exact() -> None:
    """One under each bound reads; one over is malformed-json."""

    def nested(depth: int) -> bytes:
        return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)

    for ok, bad in [
        (nested(MAX_DEPTH), nested(MAX_DEPTH + 1)),
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)),
        (b'{"n":' + b"1" * MAX_NUMBER_CHARS + b"}", b'{"n":' + b"1" * (MAX_NUMBER_CHARS + 1) + b"}"),
        (
            b'{"n":1.' + b"5" * (MAX_NUMBER_CHARS - 2) + b"}",
            b'{"n":1.' + b"5" * (MAX_NUMBER_CHARS - 1) + b"}",
        ),
    ]:
        with pytest.raises(ContractError) as under:
            parse_order_step(ok)
        assert under.value.reason is QuarantineReason.SCHEMA_VIOLATION  # read fine, just not a step
        with pytest.raises(ContractError) as over:
            parse_order_step(bad)
        assert over.value.reason is QuarantineReason.MALFORMED_JSON


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    doc = valid_doc(
        CUSTOMER,
        ORDER,
        data={"items": [{"sku": "[{" * 100, "quantity": 1, "unit_price": 1}], "currency": "EUR"},
    )
    raw = json.dumps(doc).encode()
    assert raw.count(b"[") > MAX_DEPTH
    assert OrderStepProcessor(InMemoryOrderStore()).process(_env(raw)).outcome is Outcome.APPLIED


def test_escaped_surrogate_pairs_are_fine_and_a_bom_is_the_same_content() -> None:
    doc = valid_doc(
        CUSTOMER,
        ORDER,
        data={"items": [{"sku": "\U0001f600", "quantity": 1, "unit_price": 1}], "currency": "EUR"},
    )
    escaped = json.dumps(doc).encode()  # ensure_ascii: the emoji travels as a \ud83d\ude00 pair
    assert b"\\ud83d\\ude00" in escaped
    processor = OrderStepProcessor(InMemoryOrderStore())
    assert processor.process(_env(escaped)).outcome is Outcome.APPLIED
    assert processor.process(_env(b"\xef\xbb\xbf" + escaped, "m-2")).outcome is Outcome.DUPLICATE


def test_amount_bounds() -> None:
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store)
    for i, price in enumerate(["999999999999.999999", "0", "1.500000000"]):
        raw = body(
            "order.placed",
            1,
            customer=CUSTOMER,
            order=f"o{i}",
            data={"items": [{"sku": "s", "quantity": 1, "unit_price": price}], "currency": "EUR"},
        )
        assert processor.process(_env(raw, f"ok{i}")).outcome is Outcome.APPLIED, price
    for i, price in enumerate(["1000000000000", "-1", "0.0000001", "1e400", "NaN", "Infinity"]):
        raw = body(
            "order.placed",
            1,
            customer=CUSTOMER,
            order=f"b{i}",
            data={"items": [{"sku": "s", "quantity": 1, "unit_price": price}], "currency": "EUR"},
        )
        result = processor.process(_env(raw, f"bad{i}"))
        assert result.reason is QuarantineReason.SCHEMA_VIOLATION, price


# --- the safety net: failures the bounds do not foresee are `unprocessable`, never raised ----------


def test_a_hash_failure_is_unprocessable(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_hash(message: Any) -> str:
        raise RecursionError("deep 'secret-payload'")

    monkeypatch.setattr(order_workflow, "content_hash", broken_hash)
    store = InMemoryOrderStore()
    result = OrderStepProcessor(store).process(envelope(body("order.placed", 1)))
    assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.UNPROCESSABLE
    assert result.detail == "RecursionError while reading the message"
    (record,) = store.list_quarantine()
    assert record.reason == "unprocessable" and "secret" not in record.detail


def test_a_domain_crash_is_unprocessable_and_changes_no_order(monkeypatch: pytest.MonkeyPatch) -> None:
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store)
    processor.process(envelope(body("order.placed", 1)))

    def crash(*args: Any) -> Any:
        raise ArithmeticError("boom")

    monkeypatch.setattr(order_workflow.OrderWorkflow, "apply", staticmethod(crash))
    result = processor.process(envelope(body("payment.authorized", 2)))
    assert result.reason is QuarantineReason.UNPROCESSABLE
    assert result.detail == "ArithmeticError while evaluating the message"
    assert result.stream_key == "ord-1" and result.sequence == 2
    (ledger,) = store.list_ledgers()
    assert ledger.last_sequence == 1


def test_a_parked_message_that_no_longer_reads_is_quarantined_itself() -> None:
    """A message parked under an older, looser contract: releasing it quarantines it, not the releaser."""
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store)
    assert processor.process(envelope(body("payment.authorized", 2))).outcome is Outcome.PARKED
    # the parked body is rewritten to what the current reader refuses
    (parked,) = store.list_parked()
    stale = b'{"sequence": 2, "sequence": 2}'
    bad_env = SessionEnvelope(stale, parked.envelope.session_id, parked.envelope.message_id)
    store._parked[(parked.session_id, parked.stream_key, 2)] = ParkedMessage(
        parked.session_id, parked.stream_key, 2, parked.content_hash, bad_env, parked.parked_at
    )

    result = processor.process(envelope(body("order.placed", 1)))

    assert result.outcome is Outcome.APPLIED and result.applied_sequences == (1,)
    (record,) = store.list_quarantine()
    assert record.reason == "malformed-json" and record.sequence == 2 and record.stream_key == "ord-1"
    assert store.list_parked() == []
    (ledger,) = store.list_ledgers()
    assert ledger.next_sequence == 2  # waits for a corrected sequence 2


class _RefusingStore(InMemoryOrderStore):
    """Refuses (non-transiently, like Table's StoreLimitExceeded) every commit matching `refuse`."""

    def __init__(self, refuse: Any) -> None:
        super().__init__()
        self.refuse = refuse

    def commit(self, changes: SessionChanges) -> None:
        if self.refuse(changes):
            raise ValueError("entity too large")
        super().commit(changes)


def test_a_decision_the_store_refuses_is_quarantined() -> None:
    store = _RefusingStore(lambda c: c.ledger is not None)
    result = OrderStepProcessor(store).process(envelope(body("order.placed", 1)))
    assert result.reason is QuarantineReason.UNPROCESSABLE
    assert result.detail == "ValueError while evaluating the message"
    assert len(store.list_quarantine()) == 1 and store.list_ledgers() == []


def test_a_quarantine_record_the_store_refuses_is_written_without_properties() -> None:
    store = _RefusingStore(lambda c: any(q.metadata["application_properties"] for q in c.quarantine))
    result = OrderStepProcessor(store).process(_env(b"not json"))
    assert result.reason is QuarantineReason.MALFORMED_JSON
    (record,) = store.list_quarantine()
    assert record.metadata["application_properties"] == {} and record.raw_body == b"not json"


def test_a_store_that_refuses_everything_is_a_store_failure() -> None:
    store = _RefusingStore(lambda c: True)
    with pytest.raises(StoreUnavailable):
        OrderStepProcessor(store).process(_env(b"not json"))


def test_an_oversize_record_keeps_size_and_hash_not_the_body() -> None:
    raw = b"\xff" * (MAX_BODY_BYTES + 1)
    record = QuarantineRecord.from_envelope(_env(raw), "malformed-json", "d", at=utcnow())
    assert (record.body, record.body_encoding, record.body_size) == ("", "omitted", len(raw))
    assert QuarantineRecord.from_document(record.to_document()) == record


def test_a_parked_message_that_crashes_when_released_is_quarantined_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store)
    assert processor.process(envelope(body("payment.authorized", 2))).outcome is Outcome.PARKED
    real_apply = order_workflow.OrderWorkflow.apply

    def crash_on_payment(order: Any, step: str, command: Any) -> Any:
        if step == "payment.authorized":
            raise ZeroDivisionError("boom")
        return real_apply(order, step, command)

    monkeypatch.setattr(order_workflow.OrderWorkflow, "apply", staticmethod(crash_on_payment))
    result = processor.process(envelope(body("order.placed", 1)))

    assert result.outcome is Outcome.APPLIED and result.applied_sequences == (1,)
    (record,) = store.list_quarantine()
    assert (record.reason, record.sequence, record.step) == ("unprocessable", 2, "payment.authorized")
    assert record.detail == "ZeroDivisionError while releasing the message"
    assert store.list_parked() == []
