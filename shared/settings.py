"""App settings, read the way the Functions host provides them: environment first, then
local.settings.json `Values` (so the operator CLI and the local host see what `func start` would)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from shared.engine.ledger import DEFAULT_PARK_LIMIT  # the engine owns the rule and its default
from shared.workflows import (
    DEFAULT_WORKFLOW,
    WORKFLOW_SETTING,
    WorkflowBinding,
    WorkflowSettingError,
    binding_named,
)

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
# How long one invocation holds while the store is down (waiting on the process's store circuit) before it
# gives the message back to the host, spending one delivery (docs/reliability.md "Store outages pause
# processing"). Budget + one store attempt (<= 110 s) + 30 s must fit host.json functionTimeout and
# maxAutoLockRenewalDuration (10 min); with MaxDeliveryCount 10, 9 x 420 s = 63 min of outage is survivable.
STORE_RETRY_SETTING = "ORDERS_STORE_RETRY_SECONDS"
DEFAULT_STORE_RETRY_SECONDS = 420.0
MAX_STORE_RETRY_SECONDS = 450.0
# When an order's parked steps count as stuck (`orders status`, `orders why`): the age of its oldest parked
# step. Read by the operator CLI only; the workbook and the Bicep alert take the same threshold as a
# parameter (default the same 15 minutes). Not an app setting: the function never reads it.
STUCK_AFTER_SETTING = "ORDERS_STUCK_AFTER_MINUTES"
DEFAULT_STUCK_AFTER_MINUTES = 15
MAX_STUCK_AFTER_MINUTES = 7 * 24 * 60

# Every plain setting the app reads (connections are listed separately: they may be split into
# `__fullyQualifiedNamespace` / `__tableServiceUri` parts). Infra tests check the Function App provides them.
REQUIRED_APP_SETTINGS: tuple[str, ...] = (
    QUEUE_NAME_SETTING,
    TABLE_NAME_SETTING,
    RETENTION_SETTING,
    PARK_LIMIT_SETTING,
    MAX_DELIVERY_SETTING,
    CARDINALITY_SETTING,
    STORE_RETRY_SETTING,
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
    park_limit: int = DEFAULT_PARK_LIMIT
    max_delivery_count: int = 10
    trigger_cardinality: str = "one"
    store_retry_seconds: float = DEFAULT_STORE_RETRY_SECONDS
    stuck_after_minutes: int = DEFAULT_STUCK_AFTER_MINUTES
    store_connection: str | None = None
    # identity-based store connection: OrderStoreConnection__tableServiceUri (+ __credential, __clientId)
    store_identity: dict[str, str] = field(default_factory=dict)
    # ORDERS_WORKFLOW: which workflow the app runs (shared/workflows.py); checked by validate_app_settings
    workflow: str = DEFAULT_WORKFLOW

    def binding(self) -> WorkflowBinding:
        """The selected workflow's binding; SettingsError (one line) when ORDERS_WORKFLOW names none."""
        try:
            return binding_named(self.workflow)
        except WorkflowSettingError as exc:
            raise SettingsError(str(exc)) from None

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> AppSettings:
        prefix = STORE_CONNECTION + "__"
        return cls(
            queue_name=values.get(QUEUE_NAME_SETTING) or DEFAULT_QUEUE_NAME,
            table_name=values.get(TABLE_NAME_SETTING) or "orders",
            retention_days=_int(values, RETENTION_SETTING, 14, minimum=1),
            park_limit=_int(values, PARK_LIMIT_SETTING, DEFAULT_PARK_LIMIT, minimum=1),
            max_delivery_count=_int(values, MAX_DELIVERY_SETTING, 10, minimum=1),
            trigger_cardinality=trigger_cardinality(values),
            store_retry_seconds=_seconds(values, STORE_RETRY_SETTING, DEFAULT_STORE_RETRY_SECONDS),
            stuck_after_minutes=stuck_after_minutes(values.get(STUCK_AFTER_SETTING)),
            store_connection=values.get(STORE_CONNECTION) or None,
            store_identity={k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix) and v},
            workflow=(values.get(WORKFLOW_SETTING) or DEFAULT_WORKFLOW).strip(),
        )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        return cls.from_values(merged_environment(environ))


N = TypeVar("N", int, float)


def _number(values: Mapping[str, str], name: str, cast: type[N], what: str) -> N | None:
    """The setting as a number; None when it is not set."""
    raw = values.get(name)
    if raw in (None, ""):
        return None
    try:
        return cast(str(raw))
    except ValueError:
        raise SettingsError(f"{name} must be {what}, not {raw!r}") from None


def _int(values: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    number = _number(values, name, int, "a whole number")
    if number is None:
        return default
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {number}")
    return number


def _seconds(values: Mapping[str, str], name: str, default: float) -> float:
    number = _number(values, name, float, "a number of seconds")
    if number is None:
        return default
    if not 0 <= number <= MAX_STORE_RETRY_SECONDS:  # also refuses nan and inf
        raw = values.get(name)
        raise SettingsError(f"{name} must be between 0 and {MAX_STORE_RETRY_SECONDS:g} seconds, not {raw}")
    return number


def stuck_after_minutes(raw: str | None, name: str = STUCK_AFTER_SETTING) -> int:
    """ORDERS_STUCK_AFTER_MINUTES (or the flag `name`) as whole minutes, 1 to a week: the Bicep alert
    (ordersStuckAfterMinutes, an int) takes the same value from the same azd environment variable."""
    if raw is None or str(raw).strip() == "":
        return DEFAULT_STUCK_AFTER_MINUTES
    number = _number({name: str(raw).strip()}, name, int, "a whole number of minutes")
    assert number is not None
    if not 1 <= number <= MAX_STUCK_AFTER_MINUTES:
        raise SettingsError(f"{name} must be 1 to {MAX_STUCK_AFTER_MINUTES} minutes, not {number}")
    return number


# --- validation at start-up: a bad setting stops the app before it takes a message -------------------

_QUEUE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,258}[A-Za-z0-9])?")  # Service Bus entity rules
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")  # Azure Table rules
_SQLITE_OPTIONS = {"synchronous": {"off", "normal", "full", "extra"}}
_STORE_HELP = (
    f"{STORE_CONNECTION} must be sqlite:///PATH, UseDevelopmentStorage=true or a storage connection "
    f"string (or set {STORE_CONNECTION}__tableServiceUri for identity-based access)"
)


def store_kind(settings: AppSettings) -> str:
    """ "sqlite", "table" (connection string) or "table-identity", or SettingsError saying what is wrong.
    Only the form is checked: whether the store answers is a transient matter, retried per message."""
    conn = (settings.store_connection or "").strip()
    service_uri = settings.store_identity.get("tableServiceUri")
    if not conn and service_uri:
        if not re.fullmatch(r"https?://[^/\s]+/?", service_uri.strip()):
            raise SettingsError(
                f"{STORE_CONNECTION}__tableServiceUri must be https://<account>.table.core.windows.net, "
                f"not {service_uri!r}"
            )
        credential = settings.store_identity.get("credential", "").strip().lower()
        if credential not in ("", "managedidentity"):
            raise SettingsError(f"{STORE_CONNECTION}__credential must be 'managedidentity' or unset")
        _check_table_name(settings.table_name)
        return "table-identity"
    if not conn or conn.startswith("sqlite:"):
        _check_sqlite_url(conn or DEFAULT_SQLITE_URL)
        return "sqlite"
    if "=" not in conn:
        raise SettingsError(f"{_STORE_HELP}; got a value that is none of these")
    parts = _connection_string_parts(conn, STORE_CONNECTION)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        _check_table_name(settings.table_name)
        return "table"
    has_account = "accountname" in parts and ("accountkey" in parts or "sharedaccesssignature" in parts)
    has_endpoint = "tableendpoint" in parts and ("accountkey" in parts or "sharedaccesssignature" in parts)
    if not (has_account or has_endpoint):
        raise SettingsError(
            f"{STORE_CONNECTION} is a connection string without AccountName/TableEndpoint and "
            "AccountKey/SharedAccessSignature"
        )
    _check_table_name(settings.table_name)
    return "table"


def _check_sqlite_url(url: str) -> None:
    if not url.startswith("sqlite:///"):
        raise SettingsError(f"{STORE_CONNECTION} must look like sqlite:///PATH (three slashes), not {url!r}")
    path, _, query = url.removeprefix("sqlite:///").partition("?")
    if not path:
        raise SettingsError(f"{STORE_CONNECTION}: sqlite:/// needs a path, e.g. sqlite:///.local/orders.db")
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        allowed = _SQLITE_OPTIONS.get(key)
        if allowed is None or value.lower() not in allowed:
            raise SettingsError(
                f"{STORE_CONNECTION}: unknown sqlite option {part!r} (only synchronous=off|normal|full|extra)"
            )


def _check_table_name(name: str) -> None:
    if not _TABLE_NAME.fullmatch(name):
        raise SettingsError(
            f"{TABLE_NAME_SETTING} must be 3-63 letters and digits starting with a letter, not {name!r}"
        )
    if name.lower() == "tables":  # reserved by the Table service (its naming rules)
        raise SettingsError(f"{TABLE_NAME_SETTING} must not be {name!r}: the Table service reserves it")


def _connection_string_parts(conn: str, name: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in conn.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{name} is not a connection string of Key=Value; pairs")
        parts[key.strip().lower()] = value.strip()
    return parts


def check_servicebus_connection(values: Mapping[str, str], name: str = SERVICE_BUS_CONNECTION) -> None:
    """The Functions rules for a Service Bus `connection`: NAME (or AzureWebJobsNAME) holds a connection
    string with Endpoint=sb://... and a key, SAS or UseDevelopmentEmulator=true; or identity-based
    NAME__fullyQualifiedNamespace. SettingsError otherwise."""
    for candidate in (name, f"AzureWebJobs{name}"):
        conn = (values.get(candidate) or "").strip()
        if conn:
            parts = _connection_string_parts(conn, candidate)
            endpoint = parts.get("endpoint", "")
            if not re.fullmatch(r"sb://[^/\s;]+/?", endpoint):
                raise SettingsError(f"{candidate} needs Endpoint=sb://<namespace host>, got {endpoint!r}")
            keyed = "sharedaccesskeyname" in parts and "sharedaccesskey" in parts
            if not (keyed or "sharedaccesssignature" in parts):
                raise SettingsError(f"{candidate} needs SharedAccessKeyName and SharedAccessKey (or a SAS)")
            return
        fqns = (values.get(f"{candidate}__fullyQualifiedNamespace") or "").strip()
        if fqns:
            host = re.sub(r"^(sb|amqps?|https?)://", "", fqns).rstrip("/")
            if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", host):
                raise SettingsError(f"{candidate}__fullyQualifiedNamespace is not a host name: {fqns!r}")
            return
    raise SettingsError(
        f"Service Bus connection {name!r} is not configured: set {name} to a connection string "
        f"(UseDevelopmentEmulator=true for the local emulator) or {name}__fullyQualifiedNamespace"
    )


def validate_app_settings(values: Mapping[str, str], *, servicebus: bool = False) -> AppSettings:
    """Every setting the app reads, checked for form before anything is received; SettingsError (one
    line, naming the setting) otherwise. function_app.py calls this at import, so in Azure a bad value
    fails indexing and no function listens; the local host calls it with servicebus=True first. Values
    are also checked against the store they will run on (`check_store_limits`)."""
    settings = AppSettings.from_values(values)
    queue = values.get(QUEUE_NAME_SETTING)
    if queue not in (None, "") and not _QUEUE_NAME.fullmatch(str(queue)):
        raise SettingsError(
            f"{QUEUE_NAME_SETTING} must be 1-260 letters, digits, '.', '-', '_' or '/', starting and ending "
            f"with a letter or digit, not {queue!r}"
        )
    check_store_limits(settings, store_kind(settings))
    settings.binding()
    if servicebus:
        check_servicebus_connection(values)
    return settings


# The earliest date each store holds: Table Storage's Edm.DateTime starts at 1601-01-01 UTC; SQLite keeps
# ISO text, so Python's datetime (year 1) is its bound. The purge's cutoff (now - retention) must be one.
_EARLIEST_DATE = {"sqlite": datetime(1, 1, 2, tzinfo=UTC), "table": datetime(1601, 1, 2, tzinfo=UTC)}


def check_store_limits(settings: AppSettings, kind: str) -> None:
    """Each setting against the store `kind` (see `store_kind`) it will run on: SettingsError, one line
    naming the setting, the store and its limit. Every setting with a store limit is here:

    * ORDERS_PARK_LIMIT: a gap-fill releases every parked step of an order in the one transaction that
      applies the missing step (its ledger, one delete per parked row, its idempotency set). A Table
      transaction holds 100 operations, so at most 98 (table_entities.MAX_PARK_LIMIT); SQLite has no
      per-transaction limit.
    * IDEMPOTENCY_RETENTION_DAYS: the purge deletes records older than now - retention, a date the store
      must hold (Table: from 1601-01-01; SQLite: Python's dates, from year 1).
    * ORDERS_TABLE_NAME (Table): Azure's naming rules, and `tables` is reserved (checked in store_kind).
    * OrderStoreConnection (SQLite): a file, not `:memory:` (the store must outlive the process and be
      shared by the host's threads and the operator CLI), and not a directory.

    The others have no store limit: the queue name, ORDERS_MAX_DELIVERY_COUNT and the trigger mode are the
    broker's; ORDERS_STORE_RETRY_SECONDS is checked against host.json (shared/host_json.py).
    """
    store = "sqlite" if kind == "sqlite" else "table"
    if store == "table":
        from shared.store.table_entities import MAX_BATCH_OPERATIONS, MAX_PARK_LIMIT

        if settings.park_limit > MAX_PARK_LIMIT:
            raise SettingsError(
                f"{PARK_LIMIT_SETTING} must be at most {MAX_PARK_LIMIT} with the Table store (one Table "
                f"transaction holds {MAX_BATCH_OPERATIONS} operations: a gap-fill releases every parked step "
                f"with the order's ledger and its idempotency set), not {settings.park_limit}"
            )
    earliest = _EARLIEST_DATE[store]
    most = (datetime.now(UTC) - earliest).days
    if settings.retention_days > most:
        name = "Table" if store == "table" else "SQLite"
        raise SettingsError(
            f"{RETENTION_SETTING} must be at most {most} with the {name} "
            f"store (the purge's cutoff must be a date it holds, from {earliest.date()}), not "
            f"{settings.retention_days}"
        )
    if store == "sqlite":
        path = _sqlite_path(settings.store_connection or DEFAULT_SQLITE_URL)
        if path == ":memory:" or path.startswith("file:"):
            raise SettingsError(
                f"{STORE_CONNECTION}: the SQLite store must be a file path, not {path!r}: an in-memory "
                "database dies with the process and would forget every order"
            )
        if Path(path).is_dir():
            raise SettingsError(f"{STORE_CONNECTION}: {path!r} is a directory, not an SQLite database file")


def _sqlite_path(url: str) -> str:
    return url.strip().removeprefix("sqlite:///").partition("?")[0]


def trigger_cardinality(values: Mapping[str, str]) -> str:
    """ORDERS_TRIGGER_CARDINALITY as `one` or `many` (case and spaces ignored); SettingsError otherwise."""
    raw = values.get(CARDINALITY_SETTING)
    value = (raw or "one").strip().lower()
    if value not in CARDINALITIES:
        raise SettingsError(f"{CARDINALITY_SETTING} must be one of {', '.join(CARDINALITIES)}, not {raw!r}")
    return value
