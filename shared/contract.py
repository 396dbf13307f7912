"""The `order-step/v1` message contract: pydantic models, parsing, and the published JSON Schema.

Parsing turns raw bytes into a validated `OrderStepMessage` or a `ContractError` carrying the quarantine
reason. Amounts are decimals (JSON string or number), parsed without going through float.

The body is untrusted: before pydantic sees it, the reader enforces the bounds RFC 8259 section 9 lets a
parser set (body size, nesting depth, number length) and refuses what is not interoperable JSON (bytes that
are not UTF-8, duplicate keys, NaN/Infinity, lone surrogates). So nothing a producer sends can make the
parser, the validator or the content hash raise anything but `ContractError`.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from shared.envelope import MAX_BODY_BYTES

SCHEMA_ID = "order-step/v1"  # also the Literal of `_StepBase.schema_` (a type needs a literal)
CONTENT_TYPE = "application/json"  # of every order-step message
# Ids end up in the session id, in storage keys and in message ids (shared/message_ids.py): keep them plain.
# 128 characters: Service Bus's session id limit (customer_id is the session id). With only [A-Za-z0-9._-]
# nothing is escaped in a Table key (at most 128 + 17 characters of the 1 KiB a key may hold), SQLite keys
# have no limit, and the step message id `{customer_id}:{order_id}:{sequence}` (<= 265 characters) is
# hashed to 71 when it is over Service Bus's 128. No `:` (it separates the message id's parts).
MAX_ID_LENGTH = 128
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_LENGTH - 1}}}$"
Id = Annotated[str, Field(pattern=ID_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=256)]
# Amounts: finite, 0 <= amount < AMOUNT_LIMIT, at most 6 decimal places (trailing zeros do not count). With
# quantities <= MAX_QUANTITY and the body-size bound, order totals stay exact in Decimal's 28 digits.
AMOUNT_LIMIT = Decimal(10**12)
MAX_QUANTITY = 1_000_000
MAX_SEQUENCE = 1_000_000
Money = Annotated[Decimal, Field(ge=0, lt=AMOUNT_LIMIT, decimal_places=6, allow_inf_nan=False)]

# Reader bounds (RFC 8259 section 9): deeper or longer input is malformed-json, before pydantic sees it.
MAX_DEPTH = (
    32  # a valid step needs 4 (body, data, items, item); pydantic's serializer gives up in the hundreds
)
MAX_NUMBER_CHARS = 40  # characters in one JSON number token, sign and exponent included


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Data(BaseModel):
    # Step data may carry extra informational fields; they are kept (and hashed) but not interpreted.
    model_config = ConfigDict(extra="allow", frozen=True)


class LineItem(_Data):
    sku: Text
    quantity: StrictInt = Field(ge=1, le=MAX_QUANTITY)
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
    sequence: StrictInt = Field(ge=1, le=MAX_SEQUENCE)
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
    raw = read_json(body)
    if not isinstance(raw, dict):
        kind = "null" if raw is None else type(raw).__name__
        raise ContractError(QuarantineReason.SCHEMA_VIOLATION, f"body is a JSON {kind}, not an object")
    try:
        return STEP_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise ContractError(QuarantineReason.SCHEMA_VIOLATION, describe_validation_error(exc)) from None


UTF8_BOM = b"\xef\xbb\xbf"
_BRACKET_OR_QUOTE = re.compile(r'[\[\]{}"]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # after the opening quote
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _Refused(Exception):
    """Raised from inside json.loads' hooks; becomes malformed-json."""


def read_json(body: bytes) -> Any:
    """The body as JSON values within the reader bounds, or ContractError(malformed-json).

    Objects are dicts, integers ints, other numbers Decimals. One leading UTF-8 byte order mark is
    accepted (RFC 8259 section 8.1 allows ignoring it); any other encoding (UTF-16, UTF-32) is refused.
    """
    if len(body) > MAX_BODY_BYTES:
        raise _malformed(f"body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    if body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM) :]
    try:
        text = body.decode("utf-8")  # strict: surrogates encoded as bytes and overlong forms are refused
    except UnicodeDecodeError as exc:
        raise _malformed(f"body is not UTF-8 (byte {exc.start})") from None
    depth = _nesting_depth(text)
    if depth > MAX_DEPTH:
        raise _malformed(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(
            text,
            parse_int=_int_token,
            parse_float=_decimal_token,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise _malformed(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except _Refused as exc:
        raise _malformed(str(exc)) from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise _malformed("a string holds a lone UTF-16 surrogate (\\uD800-\\uDFFF escape without its pair)")
    return value


def _malformed(detail: str) -> ContractError:
    return ContractError(QuarantineReason.MALFORMED_JSON, detail)


def _nesting_depth(text: str) -> int:
    """Deepest [ / { nesting outside strings, in one linear pass; ordinary bodies skip it (few brackets)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    depth = deepest = pos = 0
    while match := _BRACKET_OR_QUOTE.search(text, pos):
        char, pos = match.group(), match.end()
        if char == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:  # an unterminated string: json.loads reports it
                break
            pos = rest.end()
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        else:
            depth -= 1
    return deepest


def _int_token(token: str) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number longer than {MAX_NUMBER_CHARS} characters")
    return int(token)


def _decimal_token(token: str) -> Decimal:
    if len(token) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number longer than {MAX_NUMBER_CHARS} characters")
    return Decimal(token)


def _refuse_constant(token: str) -> Any:
    raise _Refused("NaN and Infinity are not JSON numbers")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Refused("an object has a duplicate key")
    return obj


def _has_lone_surrogate(value: Any) -> bool:
    """json.loads joins escaped pairs into one character, so any surrogate left is a lone one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "union_tag_invalid":  # pydantic's message would echo the input value
            parts.append(f"step: unknown step; expected one of {', '.join(STEP_NAMES)}")
            continue
        if err["type"] == "extra_forbidden":  # the last part of loc is the sender's key: input, not ours
            parent = ".".join(str(p) for p in err["loc"][:-1]) or "body"
            parts.append(f"{parent}: a field the contract does not define")
            continue
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def content_hash(message: OrderStep) -> str:
    """Hash of the validated message, so formatting, key order and offsets are not 'different content'.

    The models serialise deterministically (declared field order, UTC times); extra `data` fields keep
    their order as sent.
    """
    # the step's own model's serializer: the same bytes as STEP_ADAPTER.dump_json (a unit test holds it to
    # that, stored hashes depend on it) without the union's dispatch, half the time
    return hashlib.sha256(type(message).__pydantic_serializer__.to_json(message, by_alias=True)).hexdigest()


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
