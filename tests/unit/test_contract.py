"""The order-step/v1 contract: the published JSON Schema is current and agrees with the parser."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from shared.contract import (
    SCHEMA_PATH,
    STEP_NAMES,
    ContractError,
    PaymentAuthorized,
    content_hash,
    parse_order_step,
    render_json_schema,
)
from shared.domain.workflow import OrderWorkflow
from shared.engine.outcomes import QuarantineReason
from tests.support.builders import DEFAULT_DATA, body


def test_checked_in_schema_is_current() -> None:
    assert Path(SCHEMA_PATH).read_text(encoding="utf-8") == render_json_schema(), (
        "docs/schema is stale: run `python -m shared.contract`"
    )


def test_schema_lists_every_workflow_step() -> None:
    text = render_json_schema()
    assert set(STEP_NAMES) == set(OrderWorkflow.STEPS)
    for name in STEP_NAMES:
        assert f'"{name}"' in text


def test_every_step_of_the_builders_parses_and_maps_to_a_command() -> None:
    for i, name in enumerate(DEFAULT_DATA, start=1):
        message = parse_order_step(body(name, i))
        assert message.step == name and message.sequence == i
        assert type(message.to_command()) is OrderWorkflow.STEPS[name].command


def test_amounts_are_exact_decimals_whether_strings_or_numbers() -> None:
    as_number = parse_order_step(body("payment.authorized", 2, data={"payment_id": "p", "amount": 0.1}))
    as_string = parse_order_step(body("payment.authorized", 2, data={"payment_id": "p", "amount": "0.1"}))
    assert isinstance(as_number, PaymentAuthorized) and isinstance(as_string, PaymentAuthorized)
    assert as_number.data.amount == as_string.data.amount == Decimal("0.1")


def test_content_hash_ignores_formatting_and_timezone_notation_but_not_meaning() -> None:
    a = parse_order_step(body("order.shipped", 4))
    b = parse_order_step(json.dumps(json.loads(body("order.shipped", 4)), indent=4).encode())
    c = parse_order_step(body("order.shipped", 4, occurred_at="2026-11-01T11:00:04+01:00"))
    d = parse_order_step(body("order.shipped", 4, data={"carrier": "UPS", "tracking_number": "TRK-1"}))
    assert content_hash(a) == content_hash(b) == content_hash(c)
    assert content_hash(a) != content_hash(d)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"\x80", QuarantineReason.MALFORMED_JSON), (b'"text"', QuarantineReason.SCHEMA_VIOLATION)],
)
def test_contract_errors_carry_the_reason(raw: bytes, reason: QuarantineReason) -> None:
    with pytest.raises(ContractError) as info:
        parse_order_step(raw)
    assert info.value.reason is reason and info.value.detail
