"""The Table layout's idempotency sets, without a service: keys, round trip, purge time, size estimate."""

from __future__ import annotations

from datetime import timedelta

from orders_cli.samples import T0, make_idem
from shared.store.table_entities import (
    IDEM_SET,
    IDEM_SET_OVERHEAD,
    idem_set_key,
    idempotency_records_from_set,
    idempotency_set_entity,
    idempotency_set_record_size,
    payload_size,
)


def test_a_set_holds_its_records_in_order_and_is_keyed_by_the_first() -> None:
    records = [make_idem("cust/1", "ord 7", s, T0 + timedelta(seconds=s)) for s in (3, 1, 2)]
    entity = idempotency_set_entity("cust/1", records)
    assert entity["RowKey"] == idem_set_key(records[0]) == f"{IDEM_SET}ord~207|0000000003"
    assert entity["PartitionKey"] == "cust~2F1"  # keys escaped, ids kept as they are inside
    assert entity["count"] == 3
    assert entity["recorded_at"] == T0 + timedelta(seconds=3)  # the latest: purged once all are old
    assert idempotency_records_from_set(entity) == records


def test_the_planners_size_estimate_covers_the_entity_on_the_wire() -> None:
    for count in (1, 10, 100):
        records = [make_idem("c-1", f"order-{i:04d}", i, T0) for i in range(1, count + 1)]
        estimate = IDEM_SET_OVERHEAD + sum(idempotency_set_record_size(r) for r in records)
        assert payload_size(idempotency_set_entity("c-1", records)) <= estimate, count
