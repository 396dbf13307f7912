"""The contract's longest ids (128-character customer and order ids, the largest sequence) in every store
(memory fake, SQLite, Table on Azurite): a whole order with them applies, parks, quarantines and reads back,
under the message ids shared/message_ids.py derives for them (docs/contract.md "Message ids")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.contract import MAX_ID_LENGTH, MAX_SEQUENCE
from shared.engine.outcomes import Outcome, QuarantineReason
from shared.envelope import SessionEnvelope
from shared.message_ids import MAX_MESSAGE_ID_LENGTH, step_message_id
from shared.order_workflow import ORDERS, OrderStepProcessor
from tests.integration.test_store_contract import StoreFactory, each_store
from tests.support.builders import HAPPY_PATH, body, envelope

CUSTOMER = "C" + "c" * (MAX_ID_LENGTH - 1)
ORDER = "O" + "o._-" * ((MAX_ID_LENGTH - 1) // 4) + "o" * ((MAX_ID_LENGTH - 1) % 4)


@pytest.fixture(params=["memory", "sqlite", "table"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from each_store(request, tmp_path, ORDERS)


def _step(name: str, sequence: int, order: str = ORDER) -> SessionEnvelope:
    message_id = step_message_id(CUSTOMER, order, sequence)
    assert len(message_id) <= MAX_MESSAGE_ID_LENGTH
    return envelope(
        body(name, sequence, customer=CUSTOMER, order=order), session=CUSTOMER, message_id=message_id
    )


def test_an_order_with_the_longest_ids_applies_parks_and_quarantines_in_every_store(
    stores: StoreFactory,
) -> None:
    assert (len(CUSTOMER), len(ORDER)) == (MAX_ID_LENGTH, MAX_ID_LENGTH)
    processor = OrderStepProcessor(stores.open(), park_limit=5)
    steps = [_step(name, seq) for seq, name in enumerate(HAPPY_PATH, start=1)]
    outcomes = [processor.process(m).outcome for m in [steps[1], steps[0], *steps[2:]]]
    assert outcomes == [Outcome.PARKED, Outcome.APPLIED, *[Outcome.APPLIED] * 3]
    far = processor.process(_step("order.placed", MAX_SEQUENCE, order="O" * MAX_ID_LENGTH))
    assert far.outcome is Outcome.PARKED
    bad = processor.process(_step("order.shipped", 1, order="Q" * MAX_ID_LENGTH))
    assert (bad.outcome, bad.reason) == (Outcome.QUARANTINED, QuarantineReason.INVALID_TRANSITION)

    reader = stores.open()  # another handle: read back from the store itself
    ledger = reader.get_ledger(CUSTOMER, ORDER)
    assert ledger is not None and [a.step for a in ledger.applied] == HAPPY_PATH
    assert [a.message_id for a in ledger.applied] == [
        step_message_id(CUSTOMER, ORDER, s) for s in range(1, 6)
    ]
    assert [(p.stream_key, p.sequence) for p in reader.list_parked(CUSTOMER)] == [
        ("O" * MAX_ID_LENGTH, MAX_SEQUENCE)
    ]
    [record] = reader.list_quarantine()
    assert (record.session_id, record.stream_key, record.message_id) == (
        CUSTOMER,
        "Q" * MAX_ID_LENGTH,
        step_message_id(CUSTOMER, "Q" * MAX_ID_LENGTH, 1),
    )
