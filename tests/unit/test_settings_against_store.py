"""Every setting is checked against the store it will run on, at start (issue 19, point 2): one line naming
the setting, the store and the limit; the same value is fine on a store that can hold it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import SettingsError, validate_app_settings
from shared.store.table_entities import MAX_PARK_LIMIT

TABLE = {"OrderStoreConnection": "UseDevelopmentStorage=true"}
TABLE_IDENTITY = {"OrderStoreConnection__tableServiceUri": "https://acct.table.core.windows.net"}


def sqlite(tmp_path: Path) -> dict[str, str]:
    return {"OrderStoreConnection": f"sqlite:///{tmp_path / 'orders.db'}"}


@pytest.mark.parametrize("store", [TABLE, TABLE_IDENTITY], ids=["table", "table-identity"])
def test_a_park_limit_one_table_transaction_cannot_release_fails_start(store: dict[str, str]) -> None:
    assert validate_app_settings({**store, "ORDERS_PARK_LIMIT": str(MAX_PARK_LIMIT)}).park_limit == 98
    with pytest.raises(SettingsError) as caught:
        validate_app_settings({**store, "ORDERS_PARK_LIMIT": "150"})
    assert str(caught.value) == (
        "ORDERS_PARK_LIMIT must be at most 98 with the Table store (one Table transaction holds 100 "
        "operations: a gap-fill releases every parked step with the order's ledger and its idempotency set), "
        "not 150"
    )
    with pytest.raises(SettingsError, match="ORDERS_PARK_LIMIT must be at most 98"):
        validate_app_settings({**store, "ORDERS_PARK_LIMIT": "99"})


def test_sqlite_has_no_park_limit_of_its_own(tmp_path: Path) -> None:
    assert validate_app_settings({**sqlite(tmp_path), "ORDERS_PARK_LIMIT": "150"}).park_limit == 150


@pytest.mark.parametrize(
    ("store", "earliest"), [(TABLE, "1601-01-02"), ({}, "0001-01-02")], ids=["table", "sqlite"]
)
def test_a_retention_whose_cutoff_the_store_cannot_hold_fails_start(
    store: dict[str, str], earliest: str
) -> None:
    assert validate_app_settings({**store, "IDEMPOTENCY_RETENTION_DAYS": "36500"}).retention_days == 36500
    with pytest.raises(
        SettingsError, match=rf"IDEMPOTENCY_RETENTION_DAYS must be at most \d+ with the .* from {earliest}"
    ):
        validate_app_settings({**store, "IDEMPOTENCY_RETENTION_DAYS": str(10**30)})


def test_a_table_retention_past_1601_fails_where_sqlite_holds_it() -> None:
    days = "200000"  # before 1601, after year 1
    with pytest.raises(SettingsError, match="with the Table store"):
        validate_app_settings({**TABLE, "IDEMPOTENCY_RETENTION_DAYS": days})
    assert validate_app_settings({"IDEMPOTENCY_RETENTION_DAYS": days}).retention_days == 200000


def test_the_reserved_table_name_fails_start() -> None:
    with pytest.raises(
        SettingsError, match="ORDERS_TABLE_NAME must not be 'Tables': the Table service reserves it"
    ):
        validate_app_settings({**TABLE, "ORDERS_TABLE_NAME": "Tables"})


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///file:orders.db?mode=memory"])
def test_an_in_memory_sqlite_store_fails_start(url: str) -> None:
    with pytest.raises(SettingsError, match="must be a file path"):
        validate_app_settings({"OrderStoreConnection": url.partition("?")[0]})


def test_a_directory_as_the_sqlite_file_fails_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="is a directory, not an SQLite database file"):
        validate_app_settings({"OrderStoreConnection": f"sqlite:///{tmp_path}"})
