"""App settings, read the way the Functions host provides them: environment first, then
local.settings.json `Values` (so the operator CLI and the local host see what `func start` would)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

QUEUE_NAME_SETTING = "ORDERS_QUEUE_NAME"
SERVICE_BUS_CONNECTION = "ServiceBusConnection"
STORE_CONNECTION = "OrderStoreConnection"
TABLE_NAME_SETTING = "ORDERS_TABLE_NAME"
RETENTION_SETTING = "IDEMPOTENCY_RETENTION_DAYS"
PARK_LIMIT_SETTING = "ORDERS_PARK_LIMIT"
MAX_DELIVERY_SETTING = "ORDERS_MAX_DELIVERY_COUNT"
# `one` (default): the trigger hands the function one message; `many`: a batch of one session's messages
# (host.json maxMessageBatchSize), committed in one store transaction. Read when function_app is indexed.
CARDINALITY_SETTING = "ORDERS_TRIGGER_CARDINALITY"
CARDINALITIES = ("one", "many")

# Every plain setting the app reads (connections are listed separately: they may be split into
# `__fullyQualifiedNamespace` / `__tableServiceUri` parts). Infra tests check the Function App provides them.
REQUIRED_APP_SETTINGS: tuple[str, ...] = (
    QUEUE_NAME_SETTING,
    TABLE_NAME_SETTING,
    RETENTION_SETTING,
    PARK_LIMIT_SETTING,
    MAX_DELIVERY_SETTING,
    CARDINALITY_SETTING,
)
CONNECTIONS: tuple[str, ...] = (SERVICE_BUS_CONNECTION, STORE_CONNECTION, "AzureWebJobsStorage")

DEFAULT_QUEUE_NAME = "orders-with-sessions"
DEFAULT_SQLITE_URL = "sqlite:///.local/orders.db"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


def load_local_settings(path: str | Path = "local.settings.json") -> dict[str, str]:
    """`Values` of a local.settings.json, or {} when there is none."""
    p = Path(path)
    if not p.is_file():
        return {}
    try:
        values = json.loads(p.read_text(encoding="utf-8")).get("Values") or {}
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise SettingsError(f"{p}: not a valid local.settings.json ({exc})") from None
    return {str(k): str(v) for k, v in values.items()}


def merged_environment(
    environ: Mapping[str, str] | None = None, local_settings: str | Path | None = "local.settings.json"
) -> dict[str, str]:
    values = load_local_settings(local_settings) if local_settings else {}
    values.update(os.environ if environ is None else environ)
    return values


@dataclass(frozen=True, slots=True)
class AppSettings:
    queue_name: str = DEFAULT_QUEUE_NAME
    table_name: str = "orders"
    retention_days: int = 14
    park_limit: int = 50
    max_delivery_count: int = 10
    trigger_cardinality: str = "one"
    store_connection: str | None = None
    # identity-based store connection: OrderStoreConnection__tableServiceUri (+ __credential, __clientId)
    store_identity: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> AppSettings:
        prefix = STORE_CONNECTION + "__"
        return cls(
            queue_name=values.get(QUEUE_NAME_SETTING) or DEFAULT_QUEUE_NAME,
            table_name=values.get(TABLE_NAME_SETTING) or "orders",
            retention_days=_int(values, RETENTION_SETTING, 14, minimum=1),
            park_limit=_int(values, PARK_LIMIT_SETTING, 50, minimum=1),
            max_delivery_count=_int(values, MAX_DELIVERY_SETTING, 10, minimum=1),
            trigger_cardinality=trigger_cardinality(values),
            store_connection=values.get(STORE_CONNECTION) or None,
            store_identity={k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix) and v},
        )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        return cls.from_values(merged_environment(environ))


def _int(values: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = values.get(name)
    if raw in (None, ""):
        return default
    try:
        number = int(str(raw))
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {number}")
    return number


def trigger_cardinality(values: Mapping[str, str]) -> str:
    """ORDERS_TRIGGER_CARDINALITY as `one` or `many` (case and spaces ignored); SettingsError otherwise."""
    raw = values.get(CARDINALITY_SETTING)
    value = (raw or "one").strip().lower()
    if value not in CARDINALITIES:
        raise SettingsError(f"{CARDINALITY_SETTING} must be one of {', '.join(CARDINALITIES)}, not {raw!r}")
    return value
