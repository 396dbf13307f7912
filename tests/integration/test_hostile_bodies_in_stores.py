"""The largest bodies the contract lets through, and larger ones, on the real stores (SQLite, Table on
Azurite): every quarantine record and parked message commits, so a big body never becomes a redelivery
loop. The Table entity limit (1 MiB, 64 KiB per property) is the tight one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.engine.outcomes import Outcome, QuarantineReason
from shared.envelope import MAX_BODY_BYTES, SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.base import OrderStore
from tests.support.builders import DEFAULT_DATA
from tests.support.hostile import valid_doc

CUSTOMER = "cust-big"
# Application properties near Service Bus Standard's 64 KB header limit.
BIG_PROPERTIES = {"note": "p" * 60_000, "n": 1}


@pytest.fixture(params=["sqlite", "table"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    opened: list[OrderStore] = []

    def open_() -> OrderStore:
        if request.param == "sqlite":
            from shared.store.sqlite import SqliteOrderStore

            store: OrderStore = SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS)
        else:
            from shared.store.table import TableOrderStore

            azurite = request.getfixturevalue("azurite")
            table = request.getfixturevalue("azurite_table_name")
            store = TableOrderStore.from_connection_string(azurite.connection_string, table, codec=ORDERS)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _env(raw: bytes, message_id: str) -> SessionEnvelope:
    return SessionEnvelope(
        raw, CUSTOMER, message_id, sequence_number=1, application_properties=BIG_PROPERTIES
    )


def _padded_valid(order: str, sequence: int, step: str, size: int) -> bytes:
    """A valid step whose extra data pads the body to exactly `size` bytes."""
    doc = valid_doc(CUSTOMER, order, sequence=sequence, step=step, data={**DEFAULT_DATA[step], "pad": ""})
    base = len(json.dumps(doc).encode())
    doc["data"]["pad"] = "x" * (size - base)
    raw = json.dumps(doc).encode()
    assert len(raw) == size
    return raw


def test_bodies_at_and_over_the_size_bound_are_stored(open_store: Any) -> None:
    store = open_store()
    processor = OrderStepProcessor(store)
    too_large_utf8 = b'{"pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    too_large_binary = bytes(range(256)) * (5 * 1024)  # 1.25 MiB, not UTF-8
    largest_binary = b"\xff" * MAX_BODY_BYTES  # kept whole: base64 in the record, a third larger

    for n, raw in enumerate([too_large_utf8, too_large_binary, largest_binary]):
        result = processor.process(_env(raw, f"m-{n}"))
        assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.MALFORMED_JSON

    # the largest valid body parks, and is applied when its predecessor arrives
    second = _padded_valid("ord-1", 2, "payment.authorized", MAX_BODY_BYTES)
    assert processor.process(_env(second, "m-p2")).outcome is Outcome.PARKED
    first = _padded_valid("ord-1", 1, "order.placed", MAX_BODY_BYTES)
    applied = processor.process(_env(first, "m-p1"))
    assert applied.outcome is Outcome.APPLIED and applied.applied_sequences == (1, 2)

    reader = open_store()  # another handle: what is really stored, not a cache
    records = {q.message_id: q for q in reader.list_quarantine()}
    assert set(records) == {"m-0", "m-1", "m-2"}
    for message_id, raw in (("m-0", too_large_utf8), ("m-1", too_large_binary)):
        record = records[message_id]
        assert record.body_encoding == "omitted" and record.raw_body == b""
        assert record.body_size == len(raw) and record.body_sha256 == hashlib.sha256(raw).hexdigest()
        assert record.metadata["application_properties"]["note"] == BIG_PROPERTIES["note"]
    assert records["m-2"].raw_body == largest_binary
    (ledger,) = reader.list_ledgers(CUSTOMER)
    assert [a.sequence for a in ledger.applied] == [1, 2]
    assert reader.list_parked() == []
