"""The per-message log line says how many steps its order holds parked after it (`parked_steps`): the stuck
alert and the workbook (scripts/build_workbook.py) read when a gap opened and when it closed from it."""

from __future__ import annotations

import logging

import pytest

from tests.functions.test_function_app import (
    _current_worker,
    outcome_records,
    sb_message,
    service,
    trigger,
    worker,
)
from tests.support.builders import body

# The fixtures, imported to be used here: the service, and the worker (azure-functions-runtime) that
# `trigger` sends each InvocationRequest to.
__all__ = ["_current_worker", "service", "worker"]


def test_parked_steps_rise_while_a_gap_is_open_and_drop_to_zero_when_it_fills(
    service: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sent = [(1, "order.placed"), (3, "inventory.reserved"), (4, "order.shipped"), (2, "payment.authorized")]
    for n, (seq, name) in enumerate(sent, start=1):
        trigger(sb_message(body(name, seq), message_id=f"ord-1:{seq}", seq=n))
    trigger(sb_message(body("order.delivered", 9), session="cust-1", message_id="ord-1:9", seq=9))
    trigger(sb_message(b"{not json", message_id="bad-1", seq=10))
    lines = [(r.outcome, r.__dict__.get("parked_steps")) for r in outcome_records(caplog)]  # type: ignore[attr-defined]
    assert lines == [
        ("applied", 0),
        ("parked", 1),
        ("parked", 2),
        ("applied", 0),  # sequence 2 filled the gap: 3 and 4 were applied with it
        ("parked", 1),
        ("quarantined", None),  # no order was read: nothing to say about parked steps
    ]
