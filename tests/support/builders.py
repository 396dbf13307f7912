"""Thin test helpers over the one traffic generator (orders_cli/traffic.py): a body, an envelope, a step,
so tests read as the scenario they describe. The step data itself lives in the generator."""

from __future__ import annotations

import itertools
import json
from typing import Any

from orders_cli import traffic
from orders_cli.traffic import DEFAULT_DATA, step_doc
from shared.envelope import SessionEnvelope

__all__ = ["DEFAULT_DATA", "HAPPY_PATH", "body", "envelope", "happy_path", "step"]

HAPPY_PATH = list(traffic.HAPPY_PATH)  # a list: tests compare it with lists of applied steps
_broker_sequence = itertools.count(1)


def body(
    step_name: str,
    seq: int,
    *,
    customer: str = "cust-1",
    order: str = "ord-1",
    data: dict[str, Any] | None = None,
    **overrides: Any,
) -> bytes:
    return json.dumps(step_doc(customer, order, seq, step_name, data) | overrides).encode()


def envelope(
    raw: bytes,
    *,
    session: str = "cust-1",
    message_id: str | None = None,
    delivery_count: int = 1,
    sequence_number: int | None = None,
) -> SessionEnvelope:
    if message_id is None:
        try:
            doc = json.loads(raw)
            message_id = f"{doc['order_id']}:{doc['sequence']}"
        except (ValueError, KeyError, TypeError):
            message_id = f"msg-{next(_broker_sequence)}"
    return SessionEnvelope(
        body=raw,
        session_id=session,
        message_id=message_id,
        delivery_count=delivery_count,
        sequence_number=sequence_number if sequence_number is not None else next(_broker_sequence),
    )


def step(
    step_name: str, sequence: int, *, customer: str = "cust-1", order: str = "ord-1", **kw: Any
) -> SessionEnvelope:
    return envelope(body(step_name, sequence, customer=customer, order=order, **kw), session=customer)


def happy_path(customer: str = "cust-1", order: str = "ord-1") -> list[SessionEnvelope]:
    return [step(name, i, customer=customer, order=order) for i, name in enumerate(HAPPY_PATH, start=1)]
