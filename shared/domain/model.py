"""The order aggregate and its commands. Plain Python: no I/O, no Azure, no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class OrderState(StrEnum):
    NEW = "NEW"
    PLACED = "PLACED"
    PAID = "PAID"
    RESERVED = "RESERVED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderState.DELIVERED, OrderState.CANCELLED)


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    quantity: int
    unit_price: Decimal


# Commands: one per step, carrying only what the domain needs.
@dataclass(frozen=True, slots=True)
class PlaceOrder:
    items: tuple[LineItem, ...]
    currency: str


@dataclass(frozen=True, slots=True)
class AuthorizePayment:
    payment_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class ReserveInventory:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class ShipOrder:
    carrier: str
    tracking_number: str


@dataclass(frozen=True, slots=True)
class DeliverOrder:
    pass


@dataclass(frozen=True, slots=True)
class CancelOrder:
    reason: str


Command = PlaceOrder | AuthorizePayment | ReserveInventory | ShipOrder | DeliverOrder | CancelOrder


@dataclass(frozen=True, slots=True)
class Order:
    """One customer's order as the workflow sees it. Immutable: handlers return a new one."""

    customer_id: str
    order_id: str
    state: OrderState = OrderState.NEW
    currency: str | None = None
    total: Decimal | None = None
    payment_id: str | None = None
    reservation_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    cancel_reason: str | None = None
    items: tuple[LineItem, ...] = field(default=())


class DomainError(Exception):
    """A step the workflow refuses; `reason` is the quarantine reason code."""

    reason: str = "rule-violation"


class InvalidTransition(DomainError):
    reason = "invalid-transition"


class RuleViolation(DomainError):
    reason = "rule-violation"
