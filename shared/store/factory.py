"""Pick the store from `OrderStoreConnection`, the way Functions resolves connections."""

from __future__ import annotations

from typing import Any, TypeVar

from shared.engine.ledger import Ledger
from shared.engine.workflow import StateCodec
from shared.settings import DEFAULT_SQLITE_URL, AppSettings, store_kind
from shared.store.base import OrderStore
from shared.workflows import WorkflowRecord

L = TypeVar("L", bound=Ledger[Any])


def open_store(
    settings: AppSettings, codec: StateCodec[Any, L], workflow: WorkflowRecord | None = None
) -> OrderStore[L]:
    """SQLite for `sqlite:///...` or nothing; Azure Table Storage for a storage connection string,
    `UseDevelopmentStorage=true` (Azurite) or identity-based `OrderStoreConnection__tableServiceUri`.
    A malformed value raises SettingsError (see shared.settings.store_kind). `codec` is the workflow's:
    the stores keep its states as opaque documents. `workflow`: the store records it on first open and
    refuses another (WorkflowMismatch); the app and the CLI always pass the selected binding's record."""
    kind = store_kind(settings)
    conn = (settings.store_connection or "").strip()
    if kind == "table-identity":
        from shared.store.table import TableOrderStore  # lazy: keeps cold start light for SQLite users

        uri = settings.store_identity["tableServiceUri"]
        return TableOrderStore.from_service_uri(
            uri, settings.table_name, _credential(settings), codec=codec, workflow=workflow
        )
    if kind == "sqlite":
        from shared.store.sqlite import SqliteOrderStore

        return SqliteOrderStore.from_url(conn or DEFAULT_SQLITE_URL, codec=codec, workflow=workflow)
    from shared.store.table import TableOrderStore

    return TableOrderStore.from_connection_string(conn, settings.table_name, codec=codec, workflow=workflow)


def open_workflow_store(settings: AppSettings) -> OrderStore[Any]:
    """The store of the workflow ORDERS_WORKFLOW selects: its codec, and its record checked (adopted by a
    store without one, refused by another workflow's store)."""
    binding = settings.binding()
    return open_store(settings, binding.load(), binding.record)


def _credential(settings: AppSettings) -> object:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.store_identity.get("clientId")
    if settings.store_identity.get("credential", "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=client_id)
