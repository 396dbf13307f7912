"""The order workflow, as the engine sees it: the `order-step/v1` contract plus the pure order domain.

This file is the seam: the engine (`shared/engine/`) and the stores know nothing of orders; they get
`ORDERS`, which parses bodies with `shared/contract.py`, applies steps with `shared/domain/`, and turns an
`Order` into a stored document and back. To process another kind of stream, write the same three parts
(see docs/adapting.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.contract import SCHEMA_ID, OrderStep, content_hash, parse_order_step
from shared.domain.model import DomainError, LineItem, Order, OrderState
from shared.domain.workflow import OrderWorkflow
from shared.engine.ledger import DEFAULT_PARK_LIMIT, Ledger
from shared.engine.outcomes import QuarantineReason
from shared.engine.processor import StreamProcessor
from shared.engine.records import utcnow
from shared.engine.workflow import Step, StepRefused
from shared.store.base import OrderStore


class OrderLedger(Ledger[Order]):
    """A ledger whose state is an Order: the session is the customer, the stream is the order."""

    __slots__ = ()

    @property
    def order(self) -> Order:
        return self.state

    @order.setter
    def order(self, order: Order) -> None:
        self.state = order

    @property
    def customer_id(self) -> str:
        return self.state.customer_id

    @property
    def order_id(self) -> str:
        return self.stream_key


class OrderSteps:
    """`Workflow[Order, OrderStep]`: session = customer id, stream = order id, state = the Order."""

    def parse(self, body: bytes) -> Step[OrderStep]:
        message = parse_order_step(body)
        return Step(
            session_key=message.customer_id,
            stream_key=message.order_id,
            sequence=message.sequence,
            name=message.step,
            content_hash=content_hash(message),
            payload=message,
        )

    def initial_state(self, session_id: str, stream_key: str) -> Order:
        return Order(customer_id=session_id, order_id=stream_key)

    def apply(self, state: Order, step: Step[OrderStep]) -> Order:
        try:
            return OrderWorkflow.apply(state, step.name, step.payload.to_command())
        except DomainError as exc:
            raise StepRefused(QuarantineReason(exc.reason), str(exc)) from None

    def is_terminal(self, state: Order) -> bool:
        return state.state.is_terminal

    def status(self, state: Order) -> str:
        return state.state.value

    def new_ledger(self, session_id: str, stream_key: str, state: Order) -> OrderLedger:
        return OrderLedger(session_id, stream_key, state)

    def state_to_document(self, state: Order) -> dict[str, Any]:
        o = state  # built by hand: dataclasses.asdict deep-copies and is hot on the per-message path
        return {
            "customer_id": o.customer_id,
            "order_id": o.order_id,
            "state": o.state.value,
            "currency": o.currency,
            "total": None if o.total is None else str(o.total),
            "payment_id": o.payment_id,
            "reservation_id": o.reservation_id,
            "carrier": o.carrier,
            "tracking_number": o.tracking_number,
            "cancel_reason": o.cancel_reason,
            "items": [
                {"sku": i.sku, "quantity": i.quantity, "unit_price": str(i.unit_price)} for i in o.items
            ],
        }

    def state_from_document(self, doc: Mapping[str, Any]) -> Order:
        o = dict(doc)
        o["state"] = OrderState(o["state"])
        o["total"] = None if o.get("total") is None else Decimal(o["total"])
        o["items"] = tuple(
            LineItem(sku=i["sku"], quantity=int(i["quantity"]), unit_price=Decimal(i["unit_price"]))
            for i in o.get("items") or ()
        )
        return Order(**o)

    # --- AppWorkflow: what the app shows and sends (shared/workflows.py binds the names) ---
    def view(self, state: Order) -> dict[str, Any]:
        return {"total": None if state.total is None else str(state.total), "currency": state.currency}

    def message_id(self, step: Step[OrderStep]) -> str:
        """The publisher's message id of a step (orders_cli/traffic.py, docs/contract.md)."""
        return f"{step.stream_key}:{step.sequence}"

    def examples(self, session_id: str, stream_key: str) -> list[bytes]:
        """One order's bodies from placed to delivered, in sequence (smoke tests, docs/adapting.md)."""
        steps: tuple[tuple[str, dict[str, Any]], ...] = (
            (
                "order.placed",
                {"items": [{"sku": "sku-1", "quantity": 2, "unit_price": "10.25"}], "currency": "EUR"},
            ),
            ("payment.authorized", {"payment_id": "pay-1", "amount": "20.50"}),
            ("inventory.reserved", {"reservation_id": "res-1"}),
            ("order.shipped", {"carrier": "DHL", "tracking_number": "TRK-1"}),
            ("order.delivered", {}),
        )
        return [
            json.dumps(
                {
                    "schema": SCHEMA_ID,
                    "customer_id": session_id,
                    "order_id": stream_key,
                    "sequence": sequence,
                    "occurred_at": f"2026-01-01T00:00:{sequence:02d}Z",
                    "step": name,
                    "data": data,
                }
            ).encode()
            for sequence, (name, data) in enumerate(steps, start=1)
        ]


ORDERS = OrderSteps()


class OrderStepProcessor(StreamProcessor[Order, OrderStep]):
    """The engine's processor bound to the order workflow: what the app runs per message."""

    def __init__(
        self,
        store: OrderStore,
        *,
        park_limit: int = DEFAULT_PARK_LIMIT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(store, ORDERS, park_limit=park_limit, clock=clock)
