"""Every quarantine reason the order workflow can produce says what is wrong without echoing input values.

A detail is stored with the record and written to the log line (docs/adapting.md, docs/contract.md), so
a value the producer sent (an amount, a name, a key) must not appear in it. Each scenario below plants a
marker in the input and checks the detail of the record and of the result; the last test holds the
scenarios to the full list of reasons, so a new reason needs a scenario here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from shared.domain.workflow import OrderWorkflow
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.order_workflow import OrderStepProcessor
from shared.store.memory import InMemoryOrderStore
from tests.support.builders import body, envelope

MARK = "Zq7xMark"  # in every text value a scenario sends


def _doc(step: str, seq: int, *, order: str = "ord-1", data: dict[str, Any] | None = None) -> dict[str, Any]:
    return json.loads(body(step, seq, order=order, data=data))


def _send(processor: OrderStepProcessor, doc: dict[str, Any] | bytes, *, session: str = "cust-1") -> Any:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return processor.process(envelope(raw, session=session))


def _placed(total: str = "10.00") -> dict[str, Any]:
    return {"items": [{"sku": f"sku-{MARK}", "quantity": 1, "unit_price": total}], "currency": "EUR"}


def malformed_json(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    return _send(p, f'{{"customer_id": "cust-1", "order_id": "{MARK}", "step": '.encode()), [MARK]


def not_utf8(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    raw = json.dumps(_doc("order.placed", 1)).encode().replace(b"sku-1", MARK.encode() + b"\xff\xfe")
    return _send(p, raw), [MARK]


def bad_currency(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    data = {"items": [{"sku": "s", "quantity": 1, "unit_price": "1"}], "currency": MARK}
    return _send(p, _doc("order.placed", 1, data=data)), [MARK]


def unknown_field(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    return _send(p, _doc("order.placed", 1) | {MARK: "x"}), [MARK]


def unknown_step(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    return _send(p, _doc("order.placed", 1) | {"step": f"order.{MARK}"}), [MARK]


def bad_types(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    doc = _doc("payment.authorized", 1, data={"payment_id": "", "amount": f"12.{MARK}"})
    doc["occurred_at"] = f"2026-{MARK}"
    doc["sequence"] = f"7{MARK}"
    return _send(p, doc), [MARK, "2026-"]


def session_mismatch(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    doc = _doc("order.placed", 1) | {"customer_id": f"c-{MARK}"}
    return _send(p, doc), [MARK]


def invalid_transition(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    _send(p, _doc("order.placed", 1))
    _send(p, _doc("order.cancelled", 2, data={"reason": MARK}))
    return _send(p, _doc("order.shipped", 3, data={"carrier": MARK, "tracking_number": MARK})), [MARK]


def rule_violation(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    _send(p, _doc("order.placed", 1, data=_placed("10.00")))
    paid = _send(p, _doc("payment.authorized", 2, data={"payment_id": MARK, "amount": "1.01"}))
    return paid, [MARK, "1.01", "10.00", "10.0", "10"]


def conflicting_duplicate(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    _send(p, _doc("order.placed", 1))
    return _send(p, _doc("order.placed", 1, data=_placed("3.33"))), [MARK, "3.33"]


def resequence_overflow(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    _send(p, _doc("order.placed", 1))
    _send(p, _doc("inventory.reserved", 3, data={"reservation_id": MARK}))  # parked (limit 1)
    return _send(p, _doc("order.shipped", 4, data={"carrier": MARK, "tracking_number": MARK})), [MARK]


def unprocessable(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    def explode(*_a: Any, **_k: Any) -> Any:
        raise ValueError(f"the amount {MARK} broke it")

    original = OrderWorkflow.apply
    OrderWorkflow.apply = explode  # type: ignore[method-assign]
    try:
        return _send(p, _doc("order.placed", 1, data=_placed())), [MARK]
    finally:
        OrderWorkflow.apply = original  # type: ignore[method-assign]


def store_limit(p: OrderStepProcessor) -> tuple[Any, list[str]]:
    """A request the store can never hold (StoreRejected): the store's text names the limit and sizes
    only; the planted order id must not reach the detail."""
    from shared.store.base import StoreRejected

    original = p.store.commit
    refused: list[bool] = []

    def refuse_once(*args: Any, **kwargs: Any) -> Any:  # the step's commit; the quarantine record's is kept
        if not refused:
            refused.append(True)
            raise StoreRejected("the stream key is 600 characters as a Table RowKey; a key holds at most 512")
        return original(*args, **kwargs)

    p.store.commit = refuse_once  # type: ignore[method-assign]
    try:
        return _send(p, _doc("order.placed", 1, order=f"ord-{MARK}", data=_placed())), [MARK]
    finally:
        p.store.commit = original  # type: ignore[method-assign]


SCENARIOS: dict[str, tuple[QuarantineReason, Callable[[OrderStepProcessor], tuple[Any, list[str]]]]] = {
    "malformed-json": (QuarantineReason.MALFORMED_JSON, malformed_json),
    "not-utf8": (QuarantineReason.MALFORMED_JSON, not_utf8),
    "bad-currency": (QuarantineReason.SCHEMA_VIOLATION, bad_currency),
    "unknown-field": (QuarantineReason.SCHEMA_VIOLATION, unknown_field),
    "unknown-step": (QuarantineReason.SCHEMA_VIOLATION, unknown_step),
    "bad-types": (QuarantineReason.SCHEMA_VIOLATION, bad_types),
    "session-mismatch": (QuarantineReason.SESSION_MISMATCH, session_mismatch),
    "invalid-transition": (QuarantineReason.INVALID_TRANSITION, invalid_transition),
    "rule-violation": (QuarantineReason.RULE_VIOLATION, rule_violation),
    "conflicting-duplicate": (QuarantineReason.CONFLICTING_DUPLICATE, conflicting_duplicate),
    "resequence-overflow": (QuarantineReason.RESEQUENCE_OVERFLOW, resequence_overflow),
    "unprocessable": (QuarantineReason.UNPROCESSABLE, unprocessable),
    "store-limit": (QuarantineReason.STORE_LIMIT, store_limit),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_detail_says_what_is_wrong_without_the_input_values(name: str) -> None:
    reason, scenario = SCENARIOS[name]
    store = InMemoryOrderStore()
    processor = OrderStepProcessor(store, park_limit=1)
    result, planted = scenario(processor)
    assert result.outcome is Outcome.QUARANTINED and result.reason is reason, result
    (record,) = [r for r in store.list_quarantine() if r.id in result.quarantine_ids]
    for detail in (result.detail, record.detail):
        assert detail and len(detail) >= 10, detail  # it says something
        for value in planted:
            assert value not in detail, (name, value, detail)


def test_the_rule_violation_detail_names_the_rule() -> None:
    result, _ = rule_violation(OrderStepProcessor(InMemoryOrderStore()))
    assert result.detail == "payment amount does not equal the order total"


def test_an_unknown_field_is_named_by_where_it_is_not_by_its_key() -> None:
    result, _ = unknown_field(OrderStepProcessor(InMemoryOrderStore()))
    assert result.detail == "order.placed: a field the contract does not define"


def test_every_reason_has_a_scenario() -> None:
    assert {reason for reason, _ in SCENARIOS.values()} == set(QuarantineReason)
