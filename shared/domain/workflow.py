"""The order workflow: which step may follow which, and the small handler that applies each step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from shared.domain.model import (
    AuthorizePayment,
    CancelOrder,
    Command,
    DeliverOrder,
    InvalidTransition,
    Order,
    OrderState,
    PlaceOrder,
    ReserveInventory,
    RuleViolation,
    ShipOrder,
)


def place_order(order: Order, cmd: PlaceOrder) -> Order:
    total = sum((item.unit_price * item.quantity for item in cmd.items), start=cmd.items[0].unit_price * 0)
    return replace(order, state=OrderState.PLACED, items=cmd.items, currency=cmd.currency, total=total)


def authorize_payment(order: Order, cmd: AuthorizePayment) -> Order:
    if order.total is None or cmd.amount != order.total:
        # the amounts are input values: a detail is logged and stored, so it names the rule, not them
        raise RuleViolation("payment amount does not equal the order total")
    return replace(order, state=OrderState.PAID, payment_id=cmd.payment_id)


def reserve_inventory(order: Order, cmd: ReserveInventory) -> Order:
    return replace(order, state=OrderState.RESERVED, reservation_id=cmd.reservation_id)


def ship_order(order: Order, cmd: ShipOrder) -> Order:
    return replace(order, state=OrderState.SHIPPED, carrier=cmd.carrier, tracking_number=cmd.tracking_number)


def deliver_order(order: Order, cmd: DeliverOrder) -> Order:
    return replace(order, state=OrderState.DELIVERED)


def cancel_order(order: Order, cmd: CancelOrder) -> Order:
    return replace(order, state=OrderState.CANCELLED, cancel_reason=cmd.reason)


@dataclass(frozen=True, slots=True)
class StepRule:
    command: type
    allowed_from: frozenset[OrderState]
    handler: Callable[[Order, Any], Order]


class OrderWorkflow:
    """Step name -> (command type, states it may follow, handler). The single source of the state machine."""

    STEPS: dict[str, StepRule] = {
        "order.placed": StepRule(PlaceOrder, frozenset({OrderState.NEW}), place_order),
        "payment.authorized": StepRule(AuthorizePayment, frozenset({OrderState.PLACED}), authorize_payment),
        "inventory.reserved": StepRule(ReserveInventory, frozenset({OrderState.PAID}), reserve_inventory),
        "order.shipped": StepRule(ShipOrder, frozenset({OrderState.RESERVED}), ship_order),
        "order.delivered": StepRule(DeliverOrder, frozenset({OrderState.SHIPPED}), deliver_order),
        "order.cancelled": StepRule(
            CancelOrder, frozenset({OrderState.PLACED, OrderState.PAID, OrderState.RESERVED}), cancel_order
        ),
    }

    @classmethod
    def apply(cls, order: Order, step: str, command: Command) -> Order:
        rule = cls.STEPS.get(step)
        if rule is None:
            raise InvalidTransition("unknown step; expected one of " + ", ".join(cls.STEPS))
        if not isinstance(command, rule.command):
            raise TypeError(f"step {step!r} takes {rule.command.__name__}, got {type(command).__name__}")
        if order.state.is_terminal:
            raise InvalidTransition(f"order is {order.state.value} (terminal); {step} cannot follow")
        if order.state not in rule.allowed_from:
            raise InvalidTransition(f"{step} cannot follow state {order.state.value}")
        return rule.handler(order, command)
