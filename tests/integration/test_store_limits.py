"""What a store can never hold is about the message, not the store's health (issue 19, point 1): ids that
become keys beyond a store's limits, and requests the service refuses for good, end as ONE quarantine
record naming the limit, on SQLite and on Table Storage (Azurite), never as a retry loop."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.processor import StreamProcessor
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store import table_entities
from shared.store.base import OrderStore, StoreRejected
from shared.store.table_entities import MAX_KEY_CHARS, MAX_PARK_LIMIT, escape_key
from tests.support.accounts import ACCOUNTS, account_body
from tests.support.hostile import valid_doc

# 128 characters (Service Bus's session id limit), each 4 UTF-8 bytes: 1,536 characters escaped.
EMOJI_SESSION = "\U0001f600" * 128
LONG_ACCOUNT = "a" * (
    MAX_KEY_CHARS + 1
)  # a stream key no Table RowKey holds (legal for the account workflow)


@pytest.fixture(autouse=True)
def _unbounded_account_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine is generic: a workflow need not bound its ids the way the order contract does (the shipped
    accounts example caps them at 40 characters). These tests use the accounts workflow with that cap
    lifted, so only the store's own limits stand between an id and a key."""
    import re

    from shared.examples import accounts

    monkeypatch.setattr(accounts, "_ID", re.compile(r"(?s).+"))


@pytest.fixture(params=["sqlite", "table"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Any], OrderStore]]:
    opened: list[OrderStore] = []

    def open_(codec: Any) -> OrderStore:
        if request.param == "sqlite":
            from shared.store.sqlite import SqliteOrderStore

            store: OrderStore = SqliteOrderStore(tmp_path / "orders.db", codec=codec)
        else:
            from shared.store.table import TableOrderStore

            azurite = request.getfixturevalue("azurite")
            table = request.getfixturevalue("azurite_table_name")
            store = TableOrderStore.from_connection_string(azurite.connection_string, table, codec=codec)
        opened.append(store)
        return store

    open_.kind = request.param  # type: ignore[attr-defined]
    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def open_table(request: pytest.FixtureRequest) -> Iterator[Callable[[Any], OrderStore]]:
    """Table Storage on Azurite only: for the limits that are the Table service's."""
    from shared.store.table import TableOrderStore

    azurite = request.getfixturevalue("azurite")
    table = request.getfixturevalue("azurite_table_name")
    opened: list[OrderStore] = []

    def open_(codec: Any) -> OrderStore:
        opened.append(TableOrderStore.from_connection_string(azurite.connection_string, table, codec=codec))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def test_a_session_id_no_table_key_holds_is_quarantined_not_retried(open_store: Any) -> None:
    """The issue's case: 128 emoji as the session id (legal for Service Bus) escape to a 1,536-character
    PartitionKey. The body cannot belong to that session (the contract's ids are plain), so the message is
    quarantined, and the record is stored even though no row of that session's own partition could be."""
    assert len(escape_key(EMOJI_SESSION)) == 1536
    store = open_store(ORDERS)
    body = json.dumps(valid_doc("cust-1", "ord-1")).encode()
    result = OrderStepProcessor(store).process(SessionEnvelope(body, EMOJI_SESSION, "m-1", sequence_number=1))
    assert result.outcome is Outcome.QUARANTINED
    assert result.reason is QuarantineReason.SESSION_MISMATCH
    [record] = store.list_quarantine()
    assert record.session_id == EMOJI_SESSION and record.message_id == "m-1"
    assert store.get_quarantine(record.id) == record
    assert store.list_ledgers(EMOJI_SESSION) == [] and store.list_parked(EMOJI_SESSION) == []


def test_a_session_id_that_is_not_utf8_text_is_quarantined_on_every_store(open_store: Any) -> None:
    """A lone surrogate (not encodable as UTF-8): no ledger row could hold it, the quarantine record can."""
    store = open_store(ORDERS)
    session = "cust-\ud800"
    body = json.dumps(valid_doc("cust-1", "ord-1")).encode()
    result = OrderStepProcessor(store).process(SessionEnvelope(body, session, "m-1", sequence_number=1))
    assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.SESSION_MISMATCH
    [record] = store.list_quarantine()
    assert record.session_id == session


def test_a_valid_step_of_a_session_no_table_key_holds_is_quarantined_naming_the_limit(
    open_store: Any,
) -> None:
    """A workflow whose ids are not bounded by a contract (the engine is generic): the step is valid, but
    the Table store checks the session's key before anything is sent and refuses it; the message is
    quarantined `store-limit` with the limit in the detail. SQLite has no key limit: it applies the step."""
    store = open_store(ACCOUNTS)
    envelope = SessionEnvelope(account_body(1, "open", owner=EMOJI_SESSION), EMOJI_SESSION, "acc:1")
    result = StreamProcessor(store, ACCOUNTS).process(envelope)
    if open_store.kind == "sqlite":
        assert result.outcome is Outcome.APPLIED
        return
    assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.STORE_LIMIT
    assert result.detail == (
        "the session id is 1536 characters as a Table PartitionKey (escaped); a Table key holds at most "
        f"{MAX_KEY_CHARS} (1 KiB)"
    )
    [record] = store.list_quarantine()
    assert record.reason == "store-limit" and record.session_id == EMOJI_SESSION


def test_a_stream_key_no_table_key_holds_is_quarantined_and_the_session_goes_on(open_store: Any) -> None:
    store = open_store(ACCOUNTS)
    processor = StreamProcessor(store, ACCOUNTS)
    long_one = SessionEnvelope(account_body(1, "open", account=LONG_ACCOUNT), "alice", "long:1")
    fine = SessionEnvelope(account_body(1, "open", account="acc-1"), "alice", "acc-1:1")
    first = processor.process(long_one)
    if open_store.kind == "sqlite":
        assert first.outcome is Outcome.APPLIED
    else:
        assert first.outcome is Outcome.QUARANTINED and first.reason is QuarantineReason.STORE_LIMIT
        assert "stream key (order id) is 519 characters as a Table RowKey" in (first.detail or "")
    assert processor.process(fine).outcome is Outcome.APPLIED  # the same session is not held back


def test_a_request_the_table_service_refuses_is_store_rejected_and_quarantined(
    open_table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without our pre-check (limit raised), Azurite answers the over-long key with 400 InvalidInput:
    `_translate` classifies it as StoreRejected (not StoreUnavailable) and the message is quarantined."""
    monkeypatch.setattr(table_entities, "MAX_KEY_CHARS", 10_000)
    store = open_table(ACCOUNTS)
    envelope = SessionEnvelope(account_body(1, "open", account=LONG_ACCOUNT), "alice", "long:1")
    result = StreamProcessor(store, ACCOUNTS).process(envelope)
    assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.STORE_LIMIT
    assert result.detail == "Table storage refused the transaction for good: 400 InvalidInput"
    assert [q.reason for q in store.list_quarantine()] == ["store-limit"]


def test_the_service_refusals_are_store_rejected(open_table: Any) -> None:
    """Straight against Azurite: an over-long key and an over-large property are refused for good."""
    store = open_table(ORDERS)
    store.list_ledgers()  # creates the table
    for entity in (
        {"PartitionKey": "p", "RowKey": "r" * (MAX_KEY_CHARS + 1)},
        {"PartitionKey": "p", "RowKey": "big", "v": "x" * 40_000},  # a string property holds 32K chars
    ):
        with pytest.raises(StoreRejected, match="refused the transaction for good: 400"):
            store._submit([("upsert", entity)])


def test_the_table_store_holds_the_largest_park_limit_it_allows(open_table: Any) -> None:
    """MAX_PARK_LIMIT parked steps released by one gap-fill fit one transaction (the settings check at
    start refuses anything larger for the Table store); one more parked step would not."""
    store = open_table(ACCOUNTS)
    processor = StreamProcessor(store, ACCOUNTS, park_limit=MAX_PARK_LIMIT + 1)

    def op(seq: int) -> SessionEnvelope:
        return SessionEnvelope(account_body(seq, "open" if seq == 1 else "deposit", 1), "alice", f"a:{seq}")

    for seq in range(2, MAX_PARK_LIMIT + 2):
        assert processor.process(op(seq)).outcome is Outcome.PARKED
    released = processor.process(op(1))
    assert released.outcome is Outcome.APPLIED
    assert released.applied_sequences == tuple(range(1, MAX_PARK_LIMIT + 2))

    processor = StreamProcessor(store, ACCOUNTS, park_limit=MAX_PARK_LIMIT + 1)
    for seq in range(2, MAX_PARK_LIMIT + 3):  # one more than the limit the settings allow
        env = SessionEnvelope(account_body(seq, "deposit", 1, owner="bob"), "bob", f"b:{seq}")
        assert processor.process(env).outcome is Outcome.PARKED
    stuck = processor.process(SessionEnvelope(account_body(1, "open", owner="bob"), "bob", "b:1"))
    assert stuck.outcome is Outcome.QUARANTINED and stuck.reason is QuarantineReason.STORE_LIMIT
    assert "one Table transaction holds 100" in (stuck.detail or "")


def test_a_batch_quarantines_what_the_store_can_never_hold_and_applies_the_rest(open_store: Any) -> None:
    """Batch mode (cardinality many): the over-long stream key's message is quarantined `store-limit` (on
    Table) inside the batch, and the batch's other messages of the same session are applied."""
    from shared.engine.batch import process_batch

    store = open_store(ACCOUNTS)
    batch = [
        SessionEnvelope(account_body(1, "open", account="acc-1"), "alice", "acc-1:1"),
        SessionEnvelope(account_body(1, "open", account=LONG_ACCOUNT), "alice", "long:1"),
        SessionEnvelope(account_body(2, "deposit", 5, account="acc-1"), "alice", "acc-1:2"),
    ]
    results = process_batch(StreamProcessor(store, ACCOUNTS), batch)
    expected_long = Outcome.APPLIED if open_store.kind == "sqlite" else Outcome.QUARANTINED
    assert [r.outcome for r in results] == [Outcome.APPLIED, expected_long, Outcome.APPLIED]
    if open_store.kind == "table":
        assert results[1].reason is QuarantineReason.STORE_LIMIT
        assert [q.reason for q in store.list_quarantine()] == ["store-limit"]
    assert [len(x.applied) for x in store.list_ledgers("alice") if x.stream_key == "acc-1"] == [2]
