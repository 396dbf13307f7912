"""Pick the order store from `OrderStoreConnection`, the way Functions resolves connections."""

from __future__ import annotations

from shared.settings import DEFAULT_SQLITE_URL, AppSettings, SettingsError
from shared.store.base import OrderStore


def open_store(settings: AppSettings) -> OrderStore:
    """SQLite for `sqlite:///...` or nothing; Azure Table Storage for a storage connection string,
    `UseDevelopmentStorage=true` (Azurite) or identity-based `OrderStoreConnection__tableServiceUri`."""
    conn = (settings.store_connection or "").strip()
    service_uri = settings.store_identity.get("tableServiceUri")
    if not conn and service_uri:
        from shared.store.table import TableOrderStore  # lazy: keeps cold start light for SQLite users

        return TableOrderStore.from_service_uri(service_uri, settings.table_name, _credential(settings))
    if not conn or conn.startswith("sqlite:"):
        from shared.store.sqlite import SqliteOrderStore

        return SqliteOrderStore.from_url(conn or DEFAULT_SQLITE_URL)
    if (
        conn.lower().startswith("usedevelopmentstorage=true")
        or "AccountName=" in conn
        or "TableEndpoint=" in conn
    ):
        from shared.store.table import TableOrderStore

        return TableOrderStore.from_connection_string(conn, settings.table_name)
    raise SettingsError(
        "OrderStoreConnection must be sqlite:///PATH, UseDevelopmentStorage=true or a storage connection "
        "string (or set OrderStoreConnection__tableServiceUri for identity-based access)"
    )


def _credential(settings: AppSettings) -> object:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.store_identity.get("clientId")
    if settings.store_identity.get("credential", "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=client_id)


def _is_storage_connection_string(conn: str) -> bool:
    return conn.lower().startswith("usedevelopmentstorage=true") or any(
        key in conn for key in ("AccountName=", "TableEndpoint=")
    )
