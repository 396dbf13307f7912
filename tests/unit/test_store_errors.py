"""Store errors by cause (issue 19, point 1): only availability, throttling, configuration and concurrency
are transient; what the store can never accept is StoreRejected, quarantined `store-limit` with the limit
named. Table codes are azure-data-tables' TableErrorCode values (azure/data/tables/_error.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import RequestTooLargeError, TableClient, TableErrorCode

from shared.engine.outcomes import Outcome, QuarantineReason
from shared.engine.records import ParkedMessage, SessionChanges, utcnow
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.base import ConcurrencyConflict, StoreRejected, StoreUnavailable
from shared.store.memory import InMemoryOrderStore
from shared.store.sqlite import SqliteOrderStore
from shared.store.table import REQUEST_REFUSED_CODES, TableOrderStore, refuses_request
from shared.store.table_entities import (
    MAX_KEY_CHARS,
    StoreLimitExceeded,
    escape_key,
    ledger_key,
    partition_key,
    quarantine_partition_key,
)
from tests.support.builders import happy_path


def _table_store() -> TableOrderStore[Any]:
    client = TableClient.from_connection_string("UseDevelopmentStorage=true", table_name="orders")
    return TableOrderStore(client, SimpleNamespace(count=0), codec=ORDERS, create_table=False)  # type: ignore[arg-type]


def _http(status: int, code: str | None, *, header_only: bool = False) -> HttpResponseError:
    exc = HttpResponseError(message=f"{status} {code}")
    exc.status_code = status
    if header_only:  # the generated client's plain HttpResponseError: the code only in the response header
        exc.response = SimpleNamespace(headers={"x-ms-error-code": code} if code else {})
    else:
        exc.error_code = code  # type: ignore[attr-defined]
    return exc


def test_every_refused_code_is_a_real_table_error_code_or_the_documented_key_one() -> None:
    known = {code.value for code in TableErrorCode}
    assert REQUEST_REFUSED_CODES - known == {"KeyValueTooLarge"}


@pytest.mark.parametrize("code", sorted(REQUEST_REFUSED_CODES))
@pytest.mark.parametrize("header_only", [False, True])
def test_a_400_about_the_request_content_is_store_rejected(code: str, header_only: bool) -> None:
    error = _table_store()._translate(_http(400, code, header_only=header_only), "transaction")
    assert isinstance(error, StoreRejected)
    assert str(error) == f"Table storage refused the transaction for good: 400 {code}"


def test_413_is_store_rejected() -> None:
    exc = RequestTooLargeError(message="The transaction request was too large")
    exc.status_code = 413
    assert refuses_request(exc)
    assert isinstance(_table_store()._translate(exc, "transaction"), StoreRejected)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_http(409, "EntityAlreadyExists"), ConcurrencyConflict),
        (_http(412, "UpdateConditionNotSatisfied"), ConcurrencyConflict),
        (ResourceExistsError("exists"), ConcurrencyConflict),
        (ResourceModifiedError("modified"), ConcurrencyConflict),
        (_http(503, "ServerBusy"), StoreUnavailable),
        (_http(500, "InternalError"), StoreUnavailable),
        (_http(500, "OperationTimedOut"), StoreUnavailable),
        (_http(429, None), StoreUnavailable),
        (_http(403, "AuthenticationFailed"), StoreUnavailable),  # a wrong key: the deployment, not a message
        (_http(403, "AuthorizationFailure"), StoreUnavailable),
        (_http(400, "InvalidAuthenticationInfo"), StoreUnavailable),
        (_http(400, "InvalidHeaderValue"), StoreUnavailable),
        (_http(404, "TableNotFound"), StoreUnavailable),
        (ServiceRequestError("connection refused"), StoreUnavailable),
        (ServiceResponseError("read timed out"), StoreUnavailable),
    ],
)
def test_availability_throttling_configuration_and_conflicts_stay_transient(
    exc: Exception, expected: type
) -> None:
    error = _table_store()._translate(exc, "transaction")  # type: ignore[arg-type]
    assert type(error) is expected


def test_table_keys_are_checked_before_anything_is_sent() -> None:
    assert partition_key("c" * MAX_KEY_CHARS) == "c" * MAX_KEY_CHARS
    with pytest.raises(StoreLimitExceeded, match="session id is 1536 characters as a Table PartitionKey"):
        partition_key("\U0001f600" * 128)
    with pytest.raises(StoreLimitExceeded, match="stream key"):
        ledger_key("o" * MAX_KEY_CHARS)
    assert issubclass(StoreLimitExceeded, StoreRejected)


def test_a_quarantine_row_always_has_a_storable_partition() -> None:
    assert quarantine_partition_key("cust-1") == "cust-1"
    long_one = quarantine_partition_key("\U0001f600" * 128)
    assert long_one.startswith("~~") and len(long_one) == 66
    assert quarantine_partition_key("\U0001f601" * 128) != long_one
    assert "~~" not in escape_key("~~" + "\U0001f600" * 3)  # never the same as an escaped id


class _RefusingStore(InMemoryOrderStore):
    """Refuses any commit that touches a ledger (as a store does for a key it cannot hold)."""

    def commit(self, changes: SessionChanges) -> None:
        if changes.ledger is not None:
            raise StoreRejected("the stream key is 600 characters as a Table RowKey; at most 512")
        super().commit(changes)


def test_the_processor_quarantines_a_store_rejection_as_store_limit_with_its_text() -> None:
    store = _RefusingStore()
    result = OrderStepProcessor(store).process(happy_path("cust-1", "ord-1")[0])
    assert result.outcome is Outcome.QUARANTINED and result.reason is QuarantineReason.STORE_LIMIT
    assert result.detail == "the stream key is 600 characters as a Table RowKey; at most 512"
    [record] = store.list_quarantine()
    assert record.reason == "store-limit" and record.detail == result.detail


def _parked(session_id: str, envelope: SessionEnvelope) -> ParkedMessage:
    return ParkedMessage(session_id, "ord-1", 3, "h", envelope, utcnow())


def test_sqlite_refuses_for_good_what_is_over_its_length_limit(tmp_path: Path) -> None:
    """SQLITE_LIMIT_LENGTH lowered below a parked row's document: DataError ("string or blob too big") is
    StoreRejected, not StoreUnavailable (which would be retried until the message is dead-lettered)."""
    store = SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS)
    store._conn().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 20_000)
    envelope = SessionEnvelope(b"x" * 20_000, "cust-1", "m-1", sequence_number=9)
    with pytest.raises(StoreRejected, match="SQLite refused the commit for good: string or blob too big"):
        store.commit(SessionChanges("cust-1", park=[_parked("cust-1", envelope)]))
    assert store.list_parked() == []
    store.close()


def test_sqlite_refuses_for_good_text_it_cannot_encode(tmp_path: Path) -> None:
    store = SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS)
    lone = "cust-\ud800"
    envelope = SessionEnvelope(b"{}", lone, "m-1", sequence_number=1)
    with pytest.raises(StoreRejected, match="not valid UTF-8"):
        store.commit(SessionChanges(lone, park=[_parked(lone, envelope)]))
    store.close()
