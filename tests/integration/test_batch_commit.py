"""Batch commits on every store (memory fake, SQLite, Table on Azurite): one transaction per batch, the
same stored state as one-by-one processing, and exactly-once when a split Table batch crashes halfway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.engine.batch import process_batch
from shared.engine.outcomes import Outcome
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.base import ConcurrencyConflict, OrderStore, StoreUnavailable
from tests.integration.test_store_contract import StoreFactory, each_store, open_factory
from tests.support.builders import HAPPY_PATH, envelope, step

FIXED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "table"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from each_store(request, tmp_path, ORDERS)


def processor(store: OrderStore) -> OrderStepProcessor:
    return OrderStepProcessor(store, park_limit=10, clock=lambda: FIXED)


def traffic(customer: str = "cust-1", orders: int = 4) -> list[SessionEnvelope]:
    """Several orders of one customer, interleaved, some steps early (parked, then released), one re-sent
    message, one body that is not JSON."""
    messages: list[SessionEnvelope] = []
    for i, name in enumerate(HAPPY_PATH, start=1):
        for o in range(orders):
            messages.append(step(name, i, customer=customer, order=f"ord-{o}"))
    messages[0], messages[orders * 2] = messages[orders * 2], messages[0]  # ord-0's step 3 comes first
    messages.insert(5, messages[3])  # a re-send
    messages.insert(7, envelope(b"\xff not json", session=customer, message_id="junk-1"))
    return messages


def snapshot(store: OrderStore, customer: str = "cust-1") -> Any:
    ledgers = [
        (x.stream_key, x.last_sequence, [a.step for a in x.applied], sorted(x.parked), x.state)
        for x in store.list_ledgers(customer)
    ]
    parked = [(p.stream_key, p.sequence) for p in store.list_parked(customer)]
    quarantine = sorted((q.id, q.reason) for q in store.list_quarantine())
    return ledgers, parked, quarantine, store.count_idempotency_records()


def sequential_snapshot(messages: list[SessionEnvelope]) -> Any:
    from shared.store.memory import InMemoryOrderStore

    reference = InMemoryOrderStore()
    results = [processor(reference).process(m) for m in messages]
    return snapshot(reference), [(r.outcome, r.reason) for r in results]


def test_a_batch_stores_what_one_by_one_processing_stores(stores: StoreFactory) -> None:
    messages = traffic()
    expected_state, expected_results = sequential_snapshot(messages)
    results = process_batch(processor(stores.open()), messages)
    assert [(r.outcome, r.reason) for r in results] == expected_results
    assert Outcome.PARKED in {r.outcome for r in results} and Outcome.DUPLICATE in {
        r.outcome for r in results
    }
    assert snapshot(stores.open()) == expected_state  # read through another handle: nothing only cached


def test_a_batch_is_one_transaction_all_or_nothing(stores: StoreFactory) -> None:
    store = stores.open()
    process_batch(processor(store), [step("order.placed", 1, order="ord-b")])
    stale = stores.open().get_ledger("cust-1", "ord-b")
    process_batch(processor(store), [step("payment.authorized", 2, order="ord-b")])
    before = snapshot(stores.open())

    # a batch touching a fresh order (written first) and ord-b, whose ledger another writer moved on
    staged_store = _StaleReads(stores.open(), {"ord-b": stale})
    with pytest.raises(ConcurrencyConflict):
        process_batch(
            processor(staged_store),
            [step("order.placed", 1, order="ord-a"), step("inventory.reserved", 3, order="ord-b")],
        )
    assert snapshot(stores.open()) == before  # ord-a's ledger and idempotency record were rolled back


def test_a_batch_that_fits_is_one_entity_group_transaction(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store: Any = open_factory("table", request, tmp_path, ORDERS).open()
    messages = traffic(orders=6)[:32]
    store.get_ledger("cust-1", "warm-up")  # loads (and caches) the partition: one query
    before = store.requests_made
    process_batch(processor(store), messages)
    assert store.last_batch_transactions == 1
    assert store.requests_made - before == 1  # 32 messages, one round trip
    store.close()


def test_a_crash_between_the_transactions_of_a_split_table_batch_is_exactly_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    factory = open_factory("table", request, tmp_path, ORDERS)
    messages = traffic(orders=5)
    expected_state, _ = sequential_snapshot(messages)

    split: Any = factory.open()
    split.batch_operations_limit = 3  # force several transactions (100 in Azure)
    process_batch(processor(split), messages)
    assert split.last_batch_transactions > 2
    assert snapshot(factory.open()) == expected_state

    for crash_after in range(1, split.last_batch_transactions):  # after the first, ..., before the last
        table = f"{request.getfixturevalue('azurite_table_name')}x{crash_after}"
        azurite = request.getfixturevalue("azurite")
        from shared.store.table import TableOrderStore

        crashing: Any = TableOrderStore.from_connection_string(azurite.connection_string, table, codec=ORDERS)
        crashing.batch_operations_limit = 3
        submit, calls = crashing._submit, list[int]()

        def crash(ops: Any, submit: Any = submit, calls: list[int] = calls, after: int = crash_after) -> Any:
            if len(calls) == after:
                raise StoreUnavailable("the process died between two transactions of one batch")
            calls.append(1)
            return submit(ops)

        crashing._submit = crash
        with pytest.raises(StoreUnavailable):
            process_batch(processor(crashing), messages)
        crashing.close()

        # the host abandons the whole batch; a fresh process gets it again
        fresh = TableOrderStore.from_connection_string(azurite.connection_string, table, codec=ORDERS)
        fresh.batch_operations_limit = 3
        redelivered = [
            SessionEnvelope(m.body, m.session_id, m.message_id, m.delivery_count + 1, m.sequence_number)
            for m in messages
        ]
        results = process_batch(processor(fresh), redelivered)
        assert Outcome.DUPLICATE in {r.outcome for r in results}  # the first transaction's messages
        state = snapshot(fresh)
        assert state == expected_state, crash_after
        for stream_key, _, applied, _, _ in state[0]:  # nothing applied twice
            assert len(applied) == len(set(applied)), stream_key
        fresh.close()


def test_table_idempotency_sets_hold_exactly_the_applied_steps(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every applied step has its idempotency record and every record its applied step (hash included),
    read back from the `idems|` entities, for a batch split over several transactions and for
    single-message commits."""
    from shared.store.table_entities import IDEM_SET, idempotency_records_from_set, prefix_filter

    factory = open_factory("table", request, tmp_path, ORDERS)
    store: Any = factory.open()
    store.batch_operations_limit = 3  # several transactions, each with its own set
    process_batch(processor(store), traffic(orders=5))
    assert store.last_batch_transactions > 2
    one_by_one = processor(store)
    for message in traffic(customer="cust-2", orders=2):
        one_by_one.process(message)

    reader: Any = factory.open()
    applied = {
        (x.session_id, x.stream_key, a.sequence, a.content_hash)
        for x in reader.list_ledgers()
        for a in x.applied
    }
    entities = list(reader._client.query_entities(prefix_filter(IDEM_SET)))
    records = [
        (r.session_id, r.stream_key, r.sequence, r.content_hash)
        for entity in entities
        for r in idempotency_records_from_set(entity)
    ]
    assert sorted(records) == sorted(applied)  # no record twice, none missing, none without its step
    assert reader.count_idempotency_records() == len(applied)
    assert len(entities) < len(applied)  # records share entities


def test_bodies_too_large_for_one_transaction_still_commit_in_order(stores: StoreFactory) -> None:
    """16 quarantined bodies of 250 KB: over one Table transaction's 4 MB, so Table splits the batch."""
    messages = list(traffic(orders=2))
    for i in range(16):
        messages.insert(
            2 * i, envelope(bytes([65 + i % 26]) * 250_000, session="cust-1", message_id=f"big-{i}")
        )
    expected_state, expected_results = sequential_snapshot(messages)
    store: Any = stores.open()
    results = process_batch(processor(store), messages)
    assert [(r.outcome, r.reason) for r in results] == expected_results
    assert snapshot(stores.open()) == expected_state
    if stores.kind == "table":
        assert store.last_batch_transactions > 1


class _StaleReads:
    """A store handle that returns an old copy of some ledgers (another writer moved on since)."""

    def __init__(self, inner: OrderStore, stale: dict[str, Any]) -> None:
        self._inner, self._stale = inner, stale

    def get_ledger(self, session_id: str, stream_key: str) -> Any:
        if stream_key in self._stale:
            return self._stale[stream_key].copy()
        return self._inner.get_ledger(session_id, stream_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
