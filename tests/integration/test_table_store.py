"""Table-only behaviour on Azurite: round trips per message, the session cache, batch splitting, outages.

The contract suite proves the Table store behaves like the others; these tests prove the things only it
has: one storage round trip per message in the steady state, a cache that never outlives a conflict,
transactions split within service limits, and errors mapped to the processor's retry semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential

from devstack.azurite import DEV_ACCOUNT, DEV_KEY, AzuriteTable, unique_table_name
from shared.engine.records import SessionChanges
from shared.envelope import MAX_BODY_BYTES
from shared.order_workflow import ORDERS
from shared.store.base import ConcurrencyConflict, StoreUnavailable
from shared.store.table import StoreLimitExceeded, TableOrderStore
from shared.store.table_entities import IDEM_SET, idempotency_records_from_set
from tests.integration.test_store_contract import (
    LARGE,
    make_idem,
    make_ledger,
    make_parked,
    make_quarantine,
)

pytestmark = pytest.mark.azurite

OpenStore = Callable[..., TableOrderStore]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def open_store(azurite: AzuriteTable, azurite_table_name: str) -> Iterator[OpenStore]:
    opened: list[TableOrderStore] = []

    def _open(table: str | None = None, **kwargs: Any) -> TableOrderStore:
        store = TableOrderStore.from_connection_string(
            azurite.connection_string, table or azurite_table_name, codec=ORDERS, **kwargs
        )
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


def test_steady_state_costs_one_round_trip_per_message(open_store: OpenStore) -> None:
    store = open_store()
    assert store.get_ledger("c-1", "o-1") is None  # first touch: loads the (empty) partition
    store.commit(
        SessionChanges("c-1", ledger=make_ledger("c-1", "o-1"), idempotency=[make_idem("c-1", "o-1", 1)])
    )

    messages = 50
    before = store.requests_made
    last_version: str | None = None
    for seq in range(2, messages + 2):
        ledger = store.get_ledger("c-1", "o-1")
        assert ledger is not None and ledger.last_sequence == seq - 1
        ledger.last_sequence = seq
        changes = SessionChanges("c-1", ledger=ledger, idempotency=[make_idem("c-1", "o-1", seq)])
        if seq % 2 == 0:  # every other message parks one, the next one releases it again
            changes.park.append(make_parked("c-1", "o-1", 1000 + seq))
        else:
            assert store.get_parked("c-1", "o-1", 1000 + seq - 1) is not None
            changes.unpark.append(("o-1", 1000 + seq - 1))
        store.commit(changes)
        last_version = ledger.version
    per_message = (store.requests_made - before) / messages
    assert per_message == 1.0

    final = open_store().get_ledger("c-1", "o-1")
    assert final is not None and final.last_sequence == messages + 1 and final.version == last_version


def test_first_touch_loads_the_partition_in_one_query(open_store: OpenStore) -> None:
    writer = open_store()
    writer.commit(
        SessionChanges("c-1", ledger=make_ledger("c-1", "o-1"), park=[make_parked("c-1", "o-1", 4)])
    )
    writer.commit(
        SessionChanges("c-1", ledger=make_ledger("c-1", "o-2"), idempotency=[make_idem("c-1", "o-2", 1)])
    )
    writer.commit(SessionChanges("c-2", ledger=make_ledger("c-2", "o-3")))

    reader = open_store()
    before = reader.requests_made
    assert reader.get_ledger("c-1", "o-1") is not None
    assert reader.requests_made == before + 1
    assert reader.get_ledger("c-1", "o-2") is not None
    assert reader.get_parked("c-1", "o-1", 4) == make_parked("c-1", "o-1", 4)
    assert reader.get_parked("c-1", "o-1", 5) is None
    assert reader.get_ledger("c-1", "o-3") is None  # belongs to another session
    assert reader.requests_made == before + 1


def test_cache_keeps_small_parked_bodies_and_reads_large_ones_on_demand(open_store: OpenStore) -> None:
    writer = open_store()
    writer.get_ledger("c-big", "o-1")
    writer.commit(
        SessionChanges(
            "c-big",
            ledger=make_ledger("c-big", "o-1"),
            park=[make_parked("c-big", "o-1", 3), make_parked("c-big", "o-1", 4, body=LARGE)],
        )
    )
    for store in (writer, open_store()):  # kept by our own commit, and loaded fresh from storage
        store.get_ledger("c-big", "o-1")  # the partition is loaded (fresh store: one query)
        before = store.requests_made
        small = store.get_parked("c-big", "o-1", 3)
        assert small is not None and store.requests_made == before  # served from memory
        large = store.get_parked("c-big", "o-1", 4)
        assert large is not None and large.envelope.body == LARGE
        assert store.requests_made == before + 1  # one point read: the cache does not hold 600 KB
        assert store.get_parked("c-big", "o-1", 5) is None and store.requests_made == before + 1


def test_conflict_evicts_the_cache_and_the_next_read_is_fresh(open_store: OpenStore) -> None:
    mine, theirs = open_store(), open_store()
    mine.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1")))
    assert mine.get_ledger("c-1", "o-1") is not None  # cached now

    other = theirs.get_ledger("c-1", "o-1")
    assert other is not None
    other.last_sequence = 7
    theirs.commit(SessionChanges("c-1", ledger=other, park=[make_parked("c-1", "o-1", 9)]))

    stale = mine.get_ledger("c-1", "o-1")  # still served from the cache: the ETag will catch it
    assert stale is not None and stale.last_sequence == 1
    stale.last_sequence = 2
    with pytest.raises(ConcurrencyConflict):
        mine.commit(SessionChanges("c-1", ledger=stale, idempotency=[make_idem("c-1", "o-1", 2)]))

    before = mine.requests_made
    fresh = mine.get_ledger("c-1", "o-1")
    assert mine.requests_made == before + 1, "a conflict must drop the cached partition"
    assert fresh is not None and fresh.last_sequence == 7 and fresh.version == other.version
    assert mine.get_parked("c-1", "o-1", 9) is not None
    assert mine.count_idempotency_records() == 0  # the conflicting change wrote nothing
    fresh.last_sequence = 8
    mine.commit(SessionChanges("c-1", ledger=fresh))


def test_a_messages_idempotency_records_are_one_entity_in_its_transaction(open_store: OpenStore) -> None:
    store = open_store()
    ledger = make_ledger("c-1", "o-1")
    records = [make_idem("c-1", "o-1", s) for s in range(1, 151)]  # a release of many parked steps
    parks = [make_parked("c-1", "o-1", s) for s in (200, 201)]
    before = store.requests_made
    store.commit(SessionChanges("c-1", ledger=ledger, idempotency=records, park=parks))
    assert store.requests_made - before == 1  # ledger + 2 parks + one idempotency set: 4 operations

    reader = open_store()
    assert reader.count_idempotency_records() == 150
    [entity] = reader._client.query_entities(f"RowKey ge '{IDEM_SET}' and RowKey lt 'idems}}'")
    assert [(r.stream_key, r.sequence) for r in idempotency_records_from_set(entity)] == [
        ("o-1", s) for s in range(1, 151)
    ]
    stored = reader.get_ledger("c-1", "o-1")
    assert stored is not None and stored.version == ledger.version
    assert [p.sequence for p in reader.list_parked("c-1")] == [200, 201]


def test_commit_over_100_operations_is_split_with_the_ledger_last(open_store: OpenStore) -> None:
    store = open_store()
    ledger = make_ledger("c-1", "o-1")
    quarantined = [make_quarantine("c-1", b"{}", f"q-{i}") for i in range(150)]
    parks = [make_parked("c-1", "o-1", s) for s in (200, 201)]
    records = [make_idem("c-1", "o-1", 1)]
    before = store.requests_made
    store.commit(
        SessionChanges("c-1", ledger=ledger, idempotency=records, park=parks, quarantine=quarantined)
    )
    assert store.requests_made - before == 2  # 54 upserts first, then ledger + 2 parks + set + 96 upserts

    reader = open_store()
    assert reader.count_idempotency_records() == 1
    assert len(reader.list_quarantine()) == 150
    stored = reader.get_ledger("c-1", "o-1")
    assert stored is not None and stored.version == ledger.version


def test_commit_over_the_payload_limit_is_split(open_store: OpenStore) -> None:
    """Sixteen 256 KiB quarantine records (the largest body one keeps; ~350 KB each as base64) cannot
    share one 4 MiB batch."""
    store = open_store()
    largest = LARGE[:MAX_BODY_BYTES]
    quarantined = [make_quarantine("c-1", largest, f"big-{i}") for i in range(16)]
    before = store.requests_made
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1"), quarantine=quarantined))
    assert store.requests_made - before >= 2
    listed = open_store().list_quarantine()
    assert sorted(q.id for q in listed) == sorted(q.id for q in quarantined)
    assert all(q.raw_body == largest for q in listed)


def test_a_split_commit_that_conflicts_leaves_the_atomic_part_unwritten(open_store: OpenStore) -> None:
    store = open_store()
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1")))
    duplicate = make_ledger("c-1", "o-1", steps=2)  # version None: must not exist, but does
    records = [make_idem("c-1", "o-1", s) for s in range(1, 121)]
    quarantined = [make_quarantine("c-1", b"{}", f"q-{i}") for i in range(120)]
    with pytest.raises(ConcurrencyConflict):
        store.commit(
            SessionChanges(
                "c-1",
                ledger=duplicate,
                idempotency=records,
                park=[make_parked("c-1", "o-1", 5)],
                quarantine=quarantined,
            )
        )
    reader = open_store()
    stored = reader.get_ledger("c-1", "o-1")
    assert stored is not None and stored.last_sequence == 1
    assert reader.get_parked("c-1", "o-1", 5) is None
    assert reader.count_idempotency_records() == 0  # they travel with the ledger they prove
    # the upserts of earlier batches may exist (they are idempotent); those in the final batch do not
    assert len(reader.list_quarantine()) < 120


def test_atomic_part_beyond_one_transaction_is_refused_before_any_write(open_store: OpenStore) -> None:
    store = open_store()
    parks = [make_parked("c-1", "o-1", s) for s in range(1, 101)]  # 100 parks + the ledger = 101 ops
    before = store.requests_made
    with pytest.raises(StoreLimitExceeded):
        store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1"), park=parks))
    assert store.requests_made == before
    assert open_store().list_parked() == []


def test_entity_over_1_mib_is_refused(open_store: OpenStore) -> None:
    store = open_store()
    huge = make_parked("c-1", "o-1", 2, b"x" * (1024 * 1024))
    with pytest.raises(StoreLimitExceeded):
        store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1"), park=[huge]))
    assert store.get_ledger("c-1", "o-1") is None


def test_cache_entries_expire_after_idle_ttl(open_store: OpenStore) -> None:
    clock = FakeClock()
    store = open_store(cache_ttl_seconds=30, clock=clock)
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1")))
    start = store.requests_made
    store.get_ledger("c-1", "o-1")
    assert store.requests_made == start + 1
    clock.now += 20
    store.get_ledger("c-1", "o-1")
    clock.now += 20  # 20 s since the last touch: still fresh
    store.get_ledger("c-1", "o-1")
    assert store.requests_made == start + 1
    clock.now += 31
    store.get_ledger("c-1", "o-1")
    assert store.requests_made == start + 2


def test_cache_is_bounded_lru_over_sessions(open_store: OpenStore) -> None:
    store = open_store(cache_max_sessions=2)
    start = store.requests_made
    for session in ("c-1", "c-2", "c-1", "c-3"):  # c-2 is least recently used when c-3 arrives
        store.get_ledger(session, "o-1")
    assert store.requests_made == start + 3
    store.get_ledger("c-1", "o-1")
    assert store.requests_made == start + 3
    store.get_ledger("c-2", "o-1")
    assert store.requests_made == start + 4


def test_store_unavailable_while_azurite_is_down(azurite: AzuriteTable, open_store: OpenStore) -> None:
    fast = {"client_options": {"retry_total": 0, "connection_timeout": 2}}
    store = open_store(**fast)
    ledger = make_ledger("c-1", "o-1")
    store.commit(SessionChanges("c-1", ledger=ledger))
    cached = store.get_ledger("c-1", "o-1")
    assert cached is not None
    late_table = unique_table_name()

    azurite.stop()
    try:
        cached.last_sequence = 2
        with pytest.raises(StoreUnavailable):
            store.commit(SessionChanges("c-1", ledger=cached, idempotency=[make_idem("c-1", "o-1", 2)]))
        with pytest.raises(StoreUnavailable):
            store.get_ledger("c-1", "o-1")  # the failed commit dropped the cache, and storage is down
        with pytest.raises(StoreUnavailable):
            store.list_ledgers()
        starting = open_store(late_table, **fast)  # starting while storage is down must not crash
    finally:
        azurite.start()

    again = store.get_ledger("c-1", "o-1")
    assert again is not None and again.last_sequence == 1 and again.version == ledger.version
    again.last_sequence = 2
    store.commit(SessionChanges("c-1", ledger=again))
    starting.commit(SessionChanges("c-9", ledger=make_ledger("c-9", "o-9")))  # creates its table now
    assert [x.order_id for x in starting.list_ledgers()] == ["o-9"]


def test_identity_style_construction_against_azurite(azurite: AzuriteTable, azurite_table_name: str) -> None:
    """from_service_uri takes any azure-core credential; Azurite speaks shared key over plain HTTP."""
    credential = AzureNamedKeyCredential(DEV_ACCOUNT, DEV_KEY)
    with TableOrderStore.from_service_uri(
        azurite.endpoint, azurite_table_name, credential, codec=ORDERS
    ) as store:
        store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1")))
        assert store.get_ledger("c-1", "o-1") is not None


def test_development_storage_shortcut_points_at_azurite_default_port() -> None:
    store = TableOrderStore.from_connection_string(
        "UseDevelopmentStorage=true", "orders", codec=ORDERS, create_table=False
    )
    try:
        assert "127.0.0.1:10002" in store._client.url
        assert store.table_name == "orders"
    finally:
        store.close()


def test_idempotency_rows_of_earlier_versions_are_counted_and_purged_with_the_sets(
    open_store: OpenStore,
) -> None:
    """Tables written before idempotency sets hold one `idem|` row per record: both layouts count, and
    the purge deletes both, returning records (a set is purged only once all its records are old)."""
    from datetime import timedelta

    from orders_cli.samples import T0
    from shared.store.table_entities import idempotency_entity

    store = open_store()
    old, new = T0, T0 + timedelta(days=10)
    for sequence in (1, 2):  # as an earlier version wrote them
        store._client.upsert_entity(idempotency_entity("c-1", make_idem("c-1", "o-legacy", sequence, old)))
    store.commit(SessionChanges("c-1", idempotency=[make_idem("c-1", "o-1", s, old) for s in (1, 2, 3)]))
    store.commit(
        SessionChanges("c-1", idempotency=[make_idem("c-1", "o-2", 1, old), make_idem("c-1", "o-2", 2, new)])
    )
    assert store.count_idempotency_records() == 2 + 3 + 2

    assert store.purge_idempotency_records(T0 + timedelta(days=1)) == 2 + 3  # the mixed set stays
    assert store.count_idempotency_records() == 2
    assert store.purge_idempotency_records(new + timedelta(seconds=1)) == 2
    assert store.count_idempotency_records() == 0
