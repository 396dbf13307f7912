"""Both persistent stores record which workflow wrote them and refuse another (SQLite and Table Storage on
Azurite): the record is written on first open, a store from before records is adopted when its ledgers
decode with the running workflow, and the refusal is one line that says what to do. Engine suite: runs with
the workflow ORDERS_WORKFLOW selects against the other registered one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.engine.records import SessionChanges
from shared.settings import AppSettings
from shared.store.base import OrderStore
from shared.store.factory import open_store
from shared.store.workflow_record import WorkflowMismatch
from shared.workflows import ACCOUNTS, ORDERS, WorkflowBinding, WorkflowRecord

Opener = Callable[[WorkflowBinding, WorkflowRecord | None], OrderStore]


@pytest.fixture(params=["sqlite", "table"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Opens the test's one store (through open_store, as the app does) for a workflow and a record."""
    opened: list[OrderStore] = []
    if request.param == "sqlite":
        settings = AppSettings(store_connection=f"sqlite:///{tmp_path / 'store.db'}")
    else:
        azurite = request.getfixturevalue("azurite")
        table = request.getfixturevalue("azurite_table_name")
        settings = AppSettings(store_connection=azurite.connection_string, table_name=table)

    def open_for(binding: WorkflowBinding, record: WorkflowRecord | None) -> OrderStore:
        store = open_store(settings, binding.load(), record)
        opened.append(store)
        return store

    yield open_for
    for store in opened:
        store.close()


def _write_one_ledger(store: OrderStore, binding: WorkflowBinding) -> None:
    workflow = binding.load()
    ledger = workflow.new_ledger("s-1", "k-1", workflow.initial_state("s-1", "k-1"))
    store.commit(SessionChanges("s-1", ledger=ledger))


def other(binding: WorkflowBinding) -> WorkflowBinding:
    return ACCOUNTS if binding is ORDERS else ORDERS


def test_the_first_workflow_is_recorded_and_another_is_refused(
    selected: WorkflowBinding, opener: Opener
) -> None:
    store = opener(selected, selected.record)
    _write_one_ledger(store, selected)
    assert store.recorded_workflow() == WorkflowRecord(selected.name, selected.version)  # type: ignore[attr-defined]
    unbound = other(selected)
    with pytest.raises(WorkflowMismatch) as refused:
        opener(unbound, unbound.record).list_ledgers()
    message = str(refused.value)
    assert "\n" not in message and f"set ORDERS_WORKFLOW={selected.name}" in message
    assert [x.stream_key for x in opener(selected, selected.record).list_ledgers()] == ["k-1"]


def test_a_store_without_a_record_is_adopted_by_the_workflow_that_reads_it(
    selected: WorkflowBinding, opener: Opener
) -> None:
    legacy = opener(selected, None)  # as stores were written before records
    _write_one_ledger(legacy, selected)
    assert legacy.recorded_workflow() is None  # type: ignore[attr-defined]
    unbound = other(selected)
    with pytest.raises(WorkflowMismatch, match="no workflow record and holds ledgers"):
        opener(unbound, unbound.record).list_ledgers()
    assert legacy.recorded_workflow() is None, "a refused workflow records nothing"  # type: ignore[attr-defined]
    adopted = opener(selected, selected.record)
    assert len(adopted.list_ledgers()) == 1
    assert adopted.recorded_workflow() == WorkflowRecord(selected.name, selected.version)  # type: ignore[attr-defined]
