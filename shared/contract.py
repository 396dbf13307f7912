"""The `order-step/v1` message contract: pydantic models, parsing, and the published JSON Schema.

Parsing turns raw bytes into a validated `OrderStepMessage` or a `ContractError` carrying the quarantine
reason. Amounts are decimals (JSON string or number), parsed without going through float.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from shared.domain import model as domain
from shared.domain.workflow import OrderWorkflow
from shared.engine.outcomes import QuarantineReason
from shared.engine.workflow import ContractError

SCHEMA_ID = "order-step/v1"  # also the Literal of `_StepBase.schema_` (a type needs a literal)
# Ids end up in storage keys and in `message_id` = "{order_id}:{sequence}": keep them plain.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Id = Annotated[str, Field(pattern=ID_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=256)]
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Data(BaseModel):
    # Step data may carry extra informational fields; they are kept (and hashed) but not interpreted.
    model_config = ConfigDict(extra="allow", frozen=True)


class LineItem(_Data):
    sku: Text
    quantity: StrictInt = Field(ge=1)
    unit_price: Money


class OrderPlacedData(_Data):
    items: list[LineItem] = Field(min_length=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class PaymentAuthorizedData(_Data):
    payment_id: Text
    amount: Money


class InventoryReservedData(_Data):
    reservation_id: Text


class OrderShippedData(_Data):
    carrier: Text
    tracking_number: Text


class OrderDeliveredData(_Data):
    pass


class OrderCancelledData(_Data):
    reason: Text


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class _StepBase(_Strict):
    schema_: Literal["order-step/v1"] = Field(alias="schema")
    customer_id: Id
    order_id: Id
    sequence: StrictInt = Field(ge=1, le=1_000_000)
    # Normalised to UTC so the same instant written with another offset is the same content.
    occurred_at: Annotated[AwareDatetime, AfterValidator(_to_utc)]


class OrderPlaced(_StepBase):
    step: Literal["order.placed"]
    data: OrderPlacedData

    def to_command(self) -> domain.Command:
        items = tuple(domain.LineItem(i.sku, i.quantity, i.unit_price) for i in self.data.items)
        return domain.PlaceOrder(items=items, currency=self.data.currency)


class PaymentAuthorized(_StepBase):
    step: Literal["payment.authorized"]
    data: PaymentAuthorizedData

    def to_command(self) -> domain.Command:
        return domain.AuthorizePayment(payment_id=self.data.payment_id, amount=self.data.amount)


class InventoryReserved(_StepBase):
    step: Literal["inventory.reserved"]
    data: InventoryReservedData

    def to_command(self) -> domain.Command:
        return domain.ReserveInventory(reservation_id=self.data.reservation_id)


class OrderShipped(_StepBase):
    step: Literal["order.shipped"]
    data: OrderShippedData

    def to_command(self) -> domain.Command:
        return domain.ShipOrder(carrier=self.data.carrier, tracking_number=self.data.tracking_number)


class OrderDelivered(_StepBase):
    step: Literal["order.delivered"]
    data: OrderDeliveredData = Field(default_factory=OrderDeliveredData)

    def to_command(self) -> domain.Command:
        return domain.DeliverOrder()


class OrderCancelled(_StepBase):
    step: Literal["order.cancelled"]
    data: OrderCancelledData

    def to_command(self) -> domain.Command:
        return domain.CancelOrder(reason=self.data.reason)


OrderStep = (
    OrderPlaced | PaymentAuthorized | InventoryReserved | OrderShipped | OrderDelivered | OrderCancelled
)
OrderStepMessage = Annotated[OrderStep, Field(discriminator="step")]
STEP_ADAPTER: TypeAdapter[OrderStep] = TypeAdapter(OrderStepMessage)
STEP_NAMES: tuple[str, ...] = tuple(OrderWorkflow.STEPS)  # the state machine is their one home

__all__ = ["ContractError", "OrderStep", "parse_order_step"]  # ContractError: the engine's, raised here


# Bodies up to this size are memoised (the models are frozen): a parked message is parsed again when it
# is released, and a duplicate is the same bytes; neither should pay for validation twice. The bound keeps
# the cache small (at most _PARSE_CACHE_ENTRIES x _PARSE_CACHE_MAX_BODY bytes) whatever producers send.
_PARSE_CACHE_ENTRIES = 2048
_PARSE_CACHE_MAX_BODY = 16 * 1024


def parse_order_step(body: bytes) -> OrderStep:
    """Validated message (one of the step models) or ContractError. Error details never echo input values."""
    if len(body) <= _PARSE_CACHE_MAX_BODY:
        return _parse_cached(body)
    return _parse(body)


@lru_cache(maxsize=_PARSE_CACHE_ENTRIES)
def _parse_cached(body: bytes) -> OrderStep:
    return _parse(body)


def _parse(body: bytes) -> OrderStep:
    try:
        raw = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(QuarantineReason.MALFORMED_JSON, _describe_json_error(exc)) from None
    if not isinstance(raw, dict):
        raise ContractError(
            QuarantineReason.SCHEMA_VIOLATION, f"body is a JSON {type(raw).__name__}, not an object"
        )
    try:
        return STEP_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise ContractError(QuarantineReason.SCHEMA_VIOLATION, describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "union_tag_invalid":  # pydantic's message would echo the input value
            parts.append(f"step: unknown step; expected one of {', '.join(STEP_NAMES)}")
            continue
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _describe_json_error(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"body is not UTF-8 (byte {exc.start})"
    assert isinstance(exc, json.JSONDecodeError)
    return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"


def content_hash(message: OrderStep) -> str:
    """Hash of the validated message, so formatting, key order and offsets are not 'different content'.

    The models serialise deterministically (declared field order, UTC times); extra `data` fields keep
    their order as sent.
    """
    return hashlib.sha256(STEP_ADAPTER.dump_json(message, by_alias=True)).hexdigest()


def json_schema() -> dict[str, Any]:
    """The published JSON Schema (docs/schema/order-step-v1.schema.json), generated from the models."""
    schema = STEP_ADAPTER.json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.invalid/schemas/order-step-v1.schema.json",
        "title": "order-step/v1",
        "description": "One step of an order, sent on a Service Bus session whose id is customer_id.",
        **schema,
    }


SCHEMA_PATH = "docs/schema/order-step-v1.schema.json"


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # `python -m shared.contract` regenerates the published schema
    from pathlib import Path

    Path(SCHEMA_PATH).parent.mkdir(parents=True, exist_ok=True)
    Path(SCHEMA_PATH).write_text(render_json_schema(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
