"""The order workflow as a pure state machine: every allowed and refused transition."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.domain.model import (
    AuthorizePayment,
    CancelOrder,
    Command,
    DeliverOrder,
    InvalidTransition,
    LineItem,
    Order,
    OrderState,
    PlaceOrder,
    ReserveInventory,
    RuleViolation,
    ShipOrder,
)
from shared.domain.workflow import OrderWorkflow

PLACE = PlaceOrder(
    items=(LineItem("a", 2, Decimal("10.10")), LineItem("b", 1, Decimal("0.30"))), currency="EUR"
)
COMMANDS: dict[str, Command] = {
    "order.placed": PLACE,
    "payment.authorized": AuthorizePayment("pay", Decimal("20.50")),
    "inventory.reserved": ReserveInventory("res"),
    "order.shipped": ShipOrder("DHL", "T1"),
    "order.delivered": DeliverOrder(),
    "order.cancelled": CancelOrder("changed mind"),
}
ALLOWED = {
    ("order.placed", OrderState.NEW): OrderState.PLACED,
    ("payment.authorized", OrderState.PLACED): OrderState.PAID,
    ("inventory.reserved", OrderState.PAID): OrderState.RESERVED,
    ("order.shipped", OrderState.RESERVED): OrderState.SHIPPED,
    ("order.delivered", OrderState.SHIPPED): OrderState.DELIVERED,
    ("order.cancelled", OrderState.PLACED): OrderState.CANCELLED,
    ("order.cancelled", OrderState.PAID): OrderState.CANCELLED,
    ("order.cancelled", OrderState.RESERVED): OrderState.CANCELLED,
}


def order_in(state: OrderState) -> Order:
    total = None if state is OrderState.NEW else Decimal("20.50")
    return Order("c", "o", state=state, total=total, currency=None if total is None else "EUR")


@pytest.mark.parametrize(("step", "state"), [(s, st) for s in COMMANDS for st in OrderState])
def test_every_step_from_every_state(step: str, state: OrderState) -> None:
    order = order_in(state)
    expected = ALLOWED.get((step, state))
    if expected is None:
        with pytest.raises(InvalidTransition):
            OrderWorkflow.apply(order, step, COMMANDS[step])
    else:
        assert OrderWorkflow.apply(order, step, COMMANDS[step]).state is expected


def test_placing_computes_the_exact_decimal_total() -> None:
    placed = OrderWorkflow.apply(order_in(OrderState.NEW), "order.placed", PLACE)
    assert placed.total == Decimal("20.50")
    assert placed.currency == "EUR"
    assert placed.items == PLACE.items


def test_payment_must_equal_the_total_exactly() -> None:
    placed = OrderWorkflow.apply(order_in(OrderState.NEW), "order.placed", PLACE)
    with pytest.raises(RuleViolation):
        OrderWorkflow.apply(placed, "payment.authorized", AuthorizePayment("p", Decimal("20.49")))
    paid = OrderWorkflow.apply(placed, "payment.authorized", AuthorizePayment("p", Decimal("20.5")))
    assert paid.state is OrderState.PAID and paid.payment_id == "p"


def test_terminal_states_refuse_everything() -> None:
    for state in (OrderState.DELIVERED, OrderState.CANCELLED):
        assert state.is_terminal
        for step, cmd in COMMANDS.items():
            with pytest.raises(InvalidTransition, match="terminal"):
                OrderWorkflow.apply(order_in(state), step, cmd)


def test_unknown_step_and_wrong_command_type() -> None:
    with pytest.raises(InvalidTransition):
        OrderWorkflow.apply(order_in(OrderState.NEW), "order.teleported", PLACE)
    with pytest.raises(TypeError):
        OrderWorkflow.apply(order_in(OrderState.NEW), "order.placed", DeliverOrder())


def test_handlers_do_not_mutate_their_input() -> None:
    before = order_in(OrderState.NEW)
    OrderWorkflow.apply(before, "order.placed", PLACE)
    assert before.state is OrderState.NEW and before.total is None


def test_domain_imports_nothing_outside_the_standard_library() -> None:
    import ast
    import pathlib
    import sys

    for path in pathlib.Path("shared/domain").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith("shared.domain"), (path, name)
