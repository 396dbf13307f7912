"""One behavioural contract for every OrderStore: in-memory fake, SQLite, and Table Storage on Azurite.

The processor relies on exactly these behaviours (optimistic versions, create-only parks, all-or-nothing
commits, idempotent quarantine), so a store that passes here can be swapped in without touching it.
Each test gets a `StoreFactory`: `open()` gives a store, and a second `open()` gives another handle on the
same data (another process, in effect), which also checks that nothing lives only in a cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orders_cli.samples import T0, make_idem, make_ledger
from shared.domain.model import OrderState
from shared.engine.ledger import AppliedStep
from shared.engine.processor import StreamProcessor
from shared.engine.records import (
    ParkedMessage,
    QuarantineRecord,
    SessionChanges,
)
from shared.engine.workflow import StateCodec
from shared.envelope import MAX_BODY_BYTES, SessionEnvelope
from shared.order_workflow import ORDERS
from shared.store.base import ConcurrencyConflict, OrderStore
from tests.support.accounts import ACCOUNTS, Account, account_envelope

# --- builders -----------------------------------------------------------------------------------


def make_envelope(customer: str, body: bytes, message_id: str = "msg-1", seq: int = 7) -> SessionEnvelope:
    return SessionEnvelope(
        body=body,
        session_id=customer,
        message_id=message_id,
        delivery_count=2,
        sequence_number=seq,
        enqueued_time=T0,
        content_type="application/json",
        correlation_id="corr-1",
        application_properties={"source": "test", "attempt": 1},
    )


def make_parked(
    customer: str, order_id: str, sequence: int, body: bytes = b'{"step":"pay"}'
) -> ParkedMessage:
    return ParkedMessage(
        session_id=customer,
        stream_key=order_id,
        sequence=sequence,
        content_hash=f"hash-{sequence}",
        envelope=make_envelope(customer, body, message_id=f"m-{order_id}-{sequence}", seq=100 + sequence),
        parked_at=T0,
    )


def make_quarantine(customer: str, body: bytes, message_id: str, at: datetime = T0) -> QuarantineRecord:
    return QuarantineRecord.from_envelope(
        make_envelope(customer, body, message_id=message_id),
        "schema-invalid",
        "field 'step' is required",
        at=at,
        stream_key="o-1",
        sequence=3,
        step="pay",
    )


# --- the stores -----------------------------------------------------------------------------------


@dataclass
class StoreFactory:
    kind: str
    _open: Callable[[], OrderStore]
    opened: list[OrderStore] = field(default_factory=list)

    def open(self) -> OrderStore:
        store = self._open()
        self.opened.append(store)
        return store


def open_factory(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, codec: StateCodec[Any, Any]
) -> StoreFactory:
    """Handles on one store of `kind` whose ledgers hold the states of the workflow `codec` belongs to."""
    if kind == "memory":
        from shared.store.memory import InMemoryOrderStore

        shared = InMemoryOrderStore()
        return StoreFactory(kind, lambda: shared)
    if kind == "sqlite":
        from shared.store.sqlite import SqliteOrderStore

        return StoreFactory(kind, lambda: SqliteOrderStore(tmp_path / "orders.db", codec=codec))
    from shared.store.table import TableOrderStore

    azurite = request.getfixturevalue("azurite")
    table = request.getfixturevalue("azurite_table_name")
    return StoreFactory(
        kind, lambda: TableOrderStore.from_connection_string(azurite.connection_string, table, codec=codec)
    )


def each_store(
    request: pytest.FixtureRequest, tmp_path: Path, codec: StateCodec[Any, Any]
) -> Iterator[StoreFactory]:
    """Body of a fixture parametrized over the store kinds: the factory, then every store it opened closed."""
    factory = open_factory(request.param, request, tmp_path, codec)
    yield factory
    for store in factory.opened:
        store.close()


@pytest.fixture(params=["memory", "sqlite", "table"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from each_store(request, tmp_path, ORDERS)


@pytest.fixture
def store(stores: StoreFactory) -> OrderStore:
    return stores.open()


# --- ledger: create, update, versions -------------------------------------------------------------


def test_store_implements_protocol(store: OrderStore) -> None:
    assert isinstance(store, OrderStore)


def test_unknown_things_are_none(store: OrderStore) -> None:
    assert store.get_ledger("c-1", "nope") is None
    assert store.get_parked("c-1", "nope", 1) is None
    assert store.get_quarantine("nope") is None
    assert store.list_ledgers() == []
    assert store.list_parked() == []
    assert store.list_quarantine(include_replayed=True) == []
    assert store.count_idempotency_records() == 0


def test_create_then_update_with_version(stores: StoreFactory, store: OrderStore) -> None:
    ledger = make_ledger("c-1", "o-1")
    assert ledger.version is None
    store.commit(SessionChanges("c-1", ledger=ledger))
    assert ledger.version is not None, "commit must set the new version on the ledger"
    v1 = ledger.version

    read = store.get_ledger("c-1", "o-1")
    assert read == ledger
    assert read is not None
    read.order = replace(read.order, state=OrderState.PAID, payment_id="pay-1", total=Decimal("12.50"))
    read.last_sequence = 2
    read.applied.append(AppliedStep(2, "pay", "h2", "m2", T0))
    store.commit(SessionChanges("c-1", ledger=read))
    assert read.version is not None and read.version != v1

    for handle in (store, stores.open()):
        again = handle.get_ledger("c-1", "o-1")
        assert again == read
        assert again is not None and again.last_sequence == 2 and len(again.applied) == 2
        assert again.order.state is OrderState.PAID and again.order.payment_id == "pay-1"


def test_stale_version_conflicts_and_writes_nothing(stores: StoreFactory, store: OrderStore) -> None:
    base = make_ledger("c-1", "o-1")
    store.commit(SessionChanges("c-1", ledger=base, park=[make_parked("c-1", "o-1", 5)]))
    first = store.get_ledger("c-1", "o-1")
    second = stores.open().get_ledger("c-1", "o-1")
    assert first is not None and second is not None

    first.last_sequence = 2
    store.commit(SessionChanges("c-1", ledger=first, idempotency=[make_idem("c-1", "o-1", 2)]))
    idem_before = store.count_idempotency_records()

    second.last_sequence = 9
    stale = SessionChanges(
        "c-1",
        ledger=second,
        idempotency=[make_idem("c-1", "o-1", 9)],
        park=[make_parked("c-1", "o-1", 7)],
        unpark=[("o-1", 5)],
    )
    with pytest.raises(ConcurrencyConflict):
        store.commit(stale)

    for handle in (store, stores.open()):
        now = handle.get_ledger("c-1", "o-1")
        assert now is not None and now.last_sequence == 2 and now.version == first.version
        assert handle.get_parked("c-1", "o-1", 7) is None, "park of a conflicting change was written"
        assert handle.get_parked("c-1", "o-1", 5) is not None, "unpark of a conflicting change was applied"
        assert handle.count_idempotency_records() == idem_before


def test_creating_an_existing_ledger_conflicts(stores: StoreFactory, store: OrderStore) -> None:
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1")))
    duplicate = make_ledger("c-1", "o-1", steps=3)
    with pytest.raises(ConcurrencyConflict):
        stores.open().commit(SessionChanges("c-1", ledger=duplicate, park=[make_parked("c-1", "o-1", 9)]))
    now = stores.open().get_ledger("c-1", "o-1")
    assert now is not None and now.last_sequence == 1
    assert stores.open().get_parked("c-1", "o-1", 9) is None


def test_get_ledger_returns_a_copy(store: OrderStore) -> None:
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1")))
    mine = store.get_ledger("c-1", "o-1")
    assert mine is not None
    mine.applied.append(AppliedStep(2, "pay", "h2", "m2", T0))
    mine.parked[4] = "h4"
    mine.last_sequence = 42
    mine.duplicates = 3
    mine.version = "not-a-version"
    fresh = store.get_ledger("c-1", "o-1")
    assert fresh is not None
    assert (fresh.last_sequence, len(fresh.applied), fresh.parked, fresh.duplicates) == (1, 1, {}, 0)
    assert fresh.version != "not-a-version"


def test_committed_ledger_object_stays_the_callers(store: OrderStore) -> None:
    """Mutating the object passed to commit afterwards must not change what is stored."""
    ledger = make_ledger("c-1", "o-1")
    store.commit(SessionChanges("c-1", ledger=ledger))
    ledger.last_sequence = 99
    ledger.applied.clear()
    stored = store.get_ledger("c-1", "o-1")
    assert stored is not None and stored.last_sequence == 1 and len(stored.applied) == 1


def test_list_ledgers_by_customer_and_all(stores: StoreFactory, store: OrderStore) -> None:
    for customer, order_id in [("c-2", "o-9"), ("c-1", "o-2"), ("c-1", "o-1")]:
        store.commit(SessionChanges(customer, ledger=make_ledger(customer, order_id)))
    reader = stores.open()
    assert [(x.customer_id, x.order_id) for x in reader.list_ledgers("c-1")] == [
        ("c-1", "o-1"),
        ("c-1", "o-2"),
    ]
    assert [(x.customer_id, x.order_id) for x in reader.list_ledgers()] == [
        ("c-1", "o-1"),
        ("c-1", "o-2"),
        ("c-2", "o-9"),
    ]
    assert reader.list_ledgers("c-3") == []
    assert all(x.version is not None for x in reader.list_ledgers())


def test_odd_characters_in_ids(stores: StoreFactory, store: OrderStore) -> None:
    """Ids come from producers; a store must not break (or mix rows up) on characters keys dislike."""
    customer, order_id = "cust/#?\\ é|~", "ord|er/1?#"
    store.commit(
        SessionChanges(
            customer, ledger=make_ledger(customer, order_id), park=[make_parked(customer, order_id, 3)]
        )
    )
    reader = stores.open()
    got = reader.get_ledger(customer, order_id)
    assert got is not None and got.order_id == order_id and got.customer_id == customer
    assert reader.get_parked(customer, order_id, 3) == make_parked(customer, order_id, 3)
    assert [x.order_id for x in reader.list_ledgers(customer)] == [order_id]
    assert reader.get_ledger(customer, "ord") is None


# --- park / unpark ----------------------------------------------------------------------------------


BINARY = bytes(range(256)) * 4 + b"\xff\xfe\x00\xc3\x28"  # not UTF-8
LARGE = (os.urandom(300 * 1024).hex()[: 600 * 1024]).encode("ascii")  # ~600 KB, several property chunks


@pytest.mark.parametrize("body", [BINARY, LARGE, b""], ids=["binary", "large", "empty"])
def test_park_unpark_round_trip(stores: StoreFactory, store: OrderStore, body: bytes) -> None:
    ledger = make_ledger("c-1", "o-1")
    parked = make_parked("c-1", "o-1", 3, body)
    store.commit(SessionChanges("c-1", ledger=ledger, park=[parked]))

    for handle in (store, stores.open()):
        got = handle.get_parked("c-1", "o-1", 3)
        assert got == parked
        assert got is not None and got.envelope.body == body
        assert handle.list_parked("c-1") == [parked]
        assert handle.list_parked() == [parked]
        assert handle.list_parked("c-2") == []

    again = store.get_ledger("c-1", "o-1")
    assert again is not None
    store.commit(SessionChanges("c-1", ledger=again, unpark=[("o-1", 3)]))
    for handle in (store, stores.open()):
        assert handle.get_parked("c-1", "o-1", 3) is None
        assert handle.list_parked() == []


def test_parking_twice_conflicts(stores: StoreFactory, store: OrderStore) -> None:
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1"), park=[make_parked("c-1", "o-1", 3)]))
    ledger = store.get_ledger("c-1", "o-1")
    assert ledger is not None
    ledger.duplicates = 1
    with pytest.raises(ConcurrencyConflict):
        store.commit(SessionChanges("c-1", ledger=ledger, park=[make_parked("c-1", "o-1", 3, b"other")]))
    reader = stores.open()
    assert reader.get_parked("c-1", "o-1", 3) == make_parked("c-1", "o-1", 3)
    after = reader.get_ledger("c-1", "o-1")
    assert after is not None and after.duplicates == 0


def test_unparking_a_missing_message_conflicts(stores: StoreFactory, store: OrderStore) -> None:
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-1")))
    ledger = store.get_ledger("c-1", "o-1")
    assert ledger is not None
    ledger.last_sequence = 5
    with pytest.raises(ConcurrencyConflict):
        store.commit(SessionChanges("c-1", ledger=ledger, unpark=[("o-1", 4)]))
    after = stores.open().get_ledger("c-1", "o-1")
    assert after is not None and after.last_sequence == 1


def test_many_parked_messages_in_one_session(stores: StoreFactory, store: OrderStore) -> None:
    ledger = make_ledger("c-1", "o-1")
    store.commit(
        SessionChanges("c-1", ledger=ledger, park=[make_parked("c-1", "o-1", s) for s in range(3, 13)])
    )
    store.commit(SessionChanges("c-1", ledger=make_ledger("c-1", "o-2"), park=[make_parked("c-1", "o-2", 3)]))
    listed = stores.open().list_parked("c-1")
    assert [(p.stream_key, p.sequence) for p in listed] == [("o-1", s) for s in range(3, 13)] + [("o-2", 3)]
    again = store.get_ledger("c-1", "o-1")
    assert again is not None
    store.commit(SessionChanges("c-1", ledger=again, unpark=[("o-1", s) for s in range(3, 13)]))
    assert [(p.stream_key, p.sequence) for p in stores.open().list_parked()] == [("o-2", 3)]


# --- quarantine ---------------------------------------------------------------------------------------


def test_quarantine_is_idempotent_and_replayable(stores: StoreFactory, store: OrderStore) -> None:
    q1 = make_quarantine("c-1", BINARY, "poison-1", at=T0)
    q2 = make_quarantine("c-2", b'{"not":"valid"}', "poison-2", at=T0 + timedelta(seconds=1))
    assert q1.id != q2.id
    store.commit(SessionChanges("c-1", quarantine=[q1]))
    store.commit(SessionChanges("c-1", quarantine=[q1]))  # redelivered poison message: same id
    store.commit(SessionChanges("c-2", quarantine=[q2]))

    reader = stores.open()
    assert reader.list_quarantine() == [q1, q2]
    got = reader.get_quarantine(q1.id)
    assert got == q1
    assert got is not None and got.raw_body == BINARY and got.metadata == q1.metadata

    at = T0 + timedelta(hours=1)
    reader.mark_replayed(q1.id, at)
    for handle in (reader, stores.open()):
        assert handle.list_quarantine() == [q2]
        replayed = handle.get_quarantine(q1.id)
        assert replayed is not None and replayed.status == "replayed" and replayed.replayed_at == at
        assert [q.id for q in handle.list_quarantine(include_replayed=True)] == [q1.id, q2.id]


def test_mark_replayed_unknown_id_raises_key_error(store: OrderStore) -> None:
    with pytest.raises(KeyError):
        store.mark_replayed("does-not-exist", T0)


def test_large_quarantined_body(stores: StoreFactory, store: OrderStore) -> None:
    largest = LARGE[:MAX_BODY_BYTES]  # the largest body a quarantine record keeps: several property chunks
    q = make_quarantine("c-1", largest, "big-poison")
    store.commit(SessionChanges("c-1", quarantine=[q]))
    got = stores.open().get_quarantine(q.id)
    assert got == q and got is not None and got.raw_body == largest


# --- idempotency records ----------------------------------------------------------------------------


def test_purge_idempotency_records_by_age(stores: StoreFactory, store: OrderStore) -> None:
    old, new = T0, T0 + timedelta(days=10)
    ledger = make_ledger("c-1", "o-1")
    store.commit(
        SessionChanges(
            "c-1",
            ledger=ledger,
            idempotency=[make_idem("c-1", "o-1", 1, old), make_idem("c-1", "o-1", 2, old)],
        )
    )
    store.commit(SessionChanges("c-2", idempotency=[make_idem("c-2", "o-7", 1, old)]))
    store.commit(SessionChanges("c-2", idempotency=[make_idem("c-2", "o-7", 2, new)]))
    store.commit(SessionChanges("c-2", idempotency=[make_idem("c-2", "o-7", 2, new)]))  # upsert: still one
    assert store.count_idempotency_records() == 4

    maintenance = stores.open()
    assert maintenance.purge_idempotency_records(T0 + timedelta(days=1)) == 3
    assert maintenance.count_idempotency_records() == 1
    assert store.count_idempotency_records() == 1
    assert maintenance.purge_idempotency_records(T0 + timedelta(days=1)) == 0
    assert maintenance.purge_idempotency_records(new + timedelta(seconds=1)) == 1
    assert maintenance.count_idempotency_records() == 0
    # purging never touches ledgers
    assert maintenance.get_ledger("c-1", "o-1") is not None


def test_idempotency_and_quarantine_without_ledger(stores: StoreFactory, store: OrderStore) -> None:
    q = make_quarantine("c-1", b"junk", "poison-9")
    store.commit(SessionChanges("c-1", idempotency=[make_idem("c-1", "o-1", 1)], quarantine=[q]))
    reader = stores.open()
    assert reader.count_idempotency_records() == 1
    assert reader.get_quarantine(q.id) == q
    assert reader.list_ledgers() == []


# --- a second workflow through the same stores (the engine/workflow seam) ---------------------------


@pytest.fixture(params=["memory", "sqlite", "table"])
def account_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    yield from each_store(request, tmp_path, ACCOUNTS)


def test_account_ledgers_round_trip_with_versions(account_stores: StoreFactory) -> None:
    store = account_stores.open()
    ledger = ACCOUNTS.new_ledger("alice", "acc/1 é", Account("alice", "acc/1 é", opened=True, balance=-5))
    store.commit(SessionChanges("alice", ledger=ledger))
    stale = account_stores.open().get_ledger("alice", "acc/1 é")
    read = store.get_ledger("alice", "acc/1 é")
    assert read == ledger and read is not None and read.state.balance == -5
    read.state = replace(read.state, balance=10)
    store.commit(SessionChanges("alice", ledger=read))
    assert stale is not None
    with pytest.raises(ConcurrencyConflict):
        store.commit(SessionChanges("alice", ledger=stale))
    for handle in (store, account_stores.open()):
        again = handle.get_ledger("alice", "acc/1 é")
        assert again is not None and again.state == Account("alice", "acc/1 é", opened=True, balance=10)
        assert [(x.session_id, x.stream_key) for x in handle.list_ledgers("alice")] == [("alice", "acc/1 é")]


def test_the_engine_runs_the_account_workflow_on_every_store(account_stores: StoreFactory) -> None:
    processor = StreamProcessor(account_stores.open(), ACCOUNTS, park_limit=5)
    envs = [
        account_envelope(1, "open", 20),
        account_envelope(3, "withdraw", 70),  # early: parked until 2 arrives
        account_envelope(2, "deposit", 50),  # applies 2, then releases 3 in the same commit
        account_envelope(2, "deposit", 50),  # redelivered: duplicate
        account_envelope(4, "withdraw", 1),  # below the overdraft limit: refused
        account_envelope(4, "close"),
        account_envelope(1, "open", 0, account="acc-2"),
        account_envelope(3, "deposit", 5, account="acc-2"),  # waits, then can never apply
        account_envelope(2, "close", account="acc-2"),
    ]
    outcomes = [processor.process(e).outcome.value for e in envs]
    assert outcomes == [
        "applied",
        "parked",
        "applied",
        "duplicate",
        "quarantined",
        "applied",
        "applied",
        "parked",
        "applied",
    ]
    reader = account_stores.open()
    ledgers = {x.stream_key: x for x in reader.list_ledgers("alice")}
    assert ledgers["acc-1"].state == Account(
        "alice", "acc-1", opened=True, closed=True, balance=-20, overdraft=20
    )
    assert ledgers["acc-1"].duplicates == 1 and ledgers["acc-1"].last_sequence == 4
    assert ledgers["acc-2"].state.closed and ledgers["acc-2"].last_sequence == 2
    assert reader.list_parked() == []
    assert sorted((q.stream_key, q.sequence, q.reason) for q in reader.list_quarantine()) == [
        ("acc-1", 4, "rule-violation"),
        ("acc-2", 3, "invalid-transition"),
    ]
    assert reader.count_idempotency_records() == 6
