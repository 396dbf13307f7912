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


PINNED_BODY = (
    b'{"schema": "order-step/v1", "customer_id": "cust-1", "order_id": "ord-1", "sequence": 1,'
    b' "step": "order.placed", "occurred_at": "2026-11-01T10:00:01Z", "data": {"items": [{"sku": "sku-1",'
    b' "quantity": 2, "unit_price": "10.25"}, {"sku": "sku-2", "quantity": 1, "unit_price": 5}],'
    b' "currency": "EUR"}}'
)
# what every release so far has stored for PINNED_BODY (a sha256 digest, not a secret)
PINNED_HASH = "3e3ac8fea82b0b7b3c9116a27014b4abbc15fd44973bb289c1244500c3d2b8ba"  # pragma: allowlist secret


def test_content_hash_is_the_sha256_of_the_contracts_canonical_json_for_every_step() -> None:
    """Stored idempotency records hold these hashes: how they are computed must never change what they are
    (a redelivery after an upgrade would otherwise look like different content)."""
    import hashlib

    from shared.contract import STEP_ADAPTER

    for i, name in enumerate(DEFAULT_DATA, start=1):
        data = {**DEFAULT_DATA[name], "note": {"kept": [1, "as sent"]}}  # extra data fields are hashed too
        message = parse_order_step(body(name, i, data=data))
        canonical = STEP_ADAPTER.dump_json(message, by_alias=True)
        assert content_hash(message) == hashlib.sha256(canonical).hexdigest(), name
    assert content_hash(parse_order_step(PINNED_BODY)) == PINNED_HASH


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
