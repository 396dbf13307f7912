"""What the local host reads before it starts: host.json `extensions.serviceBus`, the app settings
(local.settings.json `Values` + environment, environment wins) and Service Bus connections."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.host.timespan import TimeSpanError, parse_timespan


class HostConfigError(ValueError):
    """A setting, connection or host.json value the host cannot use; the message says which."""


@dataclass(frozen=True)
class RetryOptions:
    """host.json extensions.serviceBus.clientRetryOptions, in azure-servicebus client terms."""

    mode: str = "exponential"
    try_timeout: float = 60.0
    delay: float = 0.8
    max_delay: float = 60.0
    max_retries: int = 3

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "retry_mode": self.mode,
            "retry_total": self.max_retries,
            "retry_backoff_factor": self.delay,
            "retry_backoff_max": self.max_delay,
        }


@dataclass(frozen=True)
class ServiceBusOptions:
    """host.json `extensions.serviceBus` (Functions Service Bus extension 5.x names and defaults)."""

    prefetch_count: int = 0
    auto_complete_messages: bool = True
    max_auto_lock_renewal_duration: float = 300.0
    max_concurrent_sessions: int = 8
    session_idle_timeout: float | None = None  # None: the SDK's default wait
    max_message_batch_size: int = 1
    retry: RetryOptions = field(default_factory=RetryOptions)
    ignored: tuple[str, ...] = ()

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any]) -> ServiceBusOptions:
        sb = ((host_json.get("extensions") or {}).get("serviceBus")) or {}
        if not isinstance(sb, dict):
            raise HostConfigError("host.json: extensions.serviceBus must be an object")
        lower = {str(k).lower(): v for k, v in sb.items()}
        known = {
            "prefetchcount",
            "autocompletemessages",
            "maxautolockrenewalduration",
            "maxconcurrentsessions",
            "sessionidletimeout",
            "maxmessagebatchsize",
            "clientretryoptions",
        }
        retry_raw = lower.get("clientretryoptions") or {}
        retry_lower = {str(k).lower(): v for k, v in retry_raw.items()} if isinstance(retry_raw, dict) else {}
        d = RetryOptions()
        retry = RetryOptions(
            mode=str(retry_lower.get("mode", d.mode)).lower(),
            try_timeout=_span(retry_lower, "trytimeout", d.try_timeout, "clientRetryOptions.tryTimeout"),
            delay=_span(retry_lower, "delay", d.delay, "clientRetryOptions.delay"),
            max_delay=_span(retry_lower, "maxdelay", d.max_delay, "clientRetryOptions.maxDelay"),
            max_retries=_int(retry_lower, "maxretries", d.max_retries, "clientRetryOptions.maxRetries", 0),
        )
        if retry.mode not in ("exponential", "fixed"):
            raise HostConfigError("host.json: clientRetryOptions.mode must be Exponential or Fixed")
        idle = lower.get("sessionidletimeout")
        return cls(
            prefetch_count=_int(lower, "prefetchcount", 0, "prefetchCount", 0),
            auto_complete_messages=_bool(lower, "autocompletemessages", True, "autoCompleteMessages"),
            max_auto_lock_renewal_duration=_span(
                lower, "maxautolockrenewalduration", 300.0, "maxAutoLockRenewalDuration"
            ),
            max_concurrent_sessions=_int(lower, "maxconcurrentsessions", 8, "maxConcurrentSessions", 1),
            session_idle_timeout=(
                None if idle in (None, "") else _span(lower, "sessionidletimeout", 0, "sessionIdleTimeout")
            ),
            max_message_batch_size=_int(lower, "maxmessagebatchsize", 1000, "maxMessageBatchSize", 1),
            retry=retry,
            ignored=tuple(sorted(str(k) for k in sb if str(k).lower() not in known)),
        )


def load_host_json(app_dir: Path) -> dict[str, Any]:
    path = app_dir / "host.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HostConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HostConfigError(f"{path}: must be a JSON object")
    return data


_PERCENT = re.compile(r"%([^%]+)%")


def resolve_setting_references(text: str, values: Mapping[str, str], *, what: str) -> str:
    """Replace %NAME% with the app setting NAME, the way the host resolves binding expressions."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        value = values.get(name)
        if value is None or value == "":
            raise HostConfigError(f"{what} refers to app setting %{name}%, which is not set")
        return value

    return _PERCENT.sub(sub, text)


@dataclass(frozen=True)
class ServiceBusConnection:
    """A resolved `connection` of a Service Bus binding: a connection string, or a namespace + identity."""

    name: str
    connection_string: str | None = None
    fully_qualified_namespace: str | None = None
    credential_kind: str | None = None  # "managedidentity" or None (DefaultAzureCredential)
    client_id: str | None = None

    @property
    def uses_development_emulator(self) -> bool:
        return bool(self.connection_string) and "usedevelopmentemulator=true" in (
            self.connection_string or ""
        ).lower().replace(" ", "")

    def describe(self) -> str:
        """Where it points, without secrets."""
        if self.connection_string:
            m = re.search(r"endpoint=([^;]+)", self.connection_string, re.IGNORECASE)
            endpoint = m.group(1) if m else "?"
            suffix = " (development emulator, plain AMQP)" if self.uses_development_emulator else ""
            return f"{endpoint}{suffix}"
        auth = (
            "ManagedIdentityCredential"
            if self.credential_kind == "managedidentity"
            else "DefaultAzureCredential"
        )
        return f"sb://{self.fully_qualified_namespace} ({auth})"

    def create_client(self, **kwargs: Any) -> Any:
        from azure.servicebus import ServiceBusClient

        if self.connection_string:
            return ServiceBusClient.from_connection_string(self.connection_string, **kwargs)
        return ServiceBusClient(str(self.fully_qualified_namespace), self.credential(), **kwargs)

    def credential(self) -> Any:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        if self.credential_kind == "managedidentity":
            return (
                ManagedIdentityCredential(client_id=self.client_id)
                if self.client_id
                else (ManagedIdentityCredential())
            )
        return DefaultAzureCredential(managed_identity_client_id=self.client_id)


def resolve_servicebus_connection(name: str, values: Mapping[str, str]) -> ServiceBusConnection:
    """Functions rules: setting NAME (or AzureWebJobsNAME) holds a connection string; otherwise
    NAME__fullyQualifiedNamespace (+ NAME__credential=managedidentity, NAME__clientId) means identity."""
    name = name or "AzureWebJobsServiceBus"
    for candidate in (name, f"AzureWebJobs{name}"):
        conn = (values.get(candidate) or "").strip()
        if conn:
            if "endpoint=" not in conn.lower():
                raise HostConfigError(
                    f"connection setting {candidate} is not a Service Bus connection string (no Endpoint=)"
                )
            return ServiceBusConnection(name=name, connection_string=conn)
        prefix = candidate + "__"
        parts = {k[len(prefix) :].lower(): v for k, v in values.items() if k.startswith(prefix) and v}
        fqns = parts.get("fullyqualifiednamespace")
        if fqns:
            fqns = re.sub(r"^(sb|amqps?|https?)://", "", fqns.strip()).rstrip("/")
            kind = (parts.get("credential") or "").strip().lower() or None
            if kind not in (None, "managedidentity"):
                raise HostConfigError(f"{prefix}credential must be 'managedidentity' or unset, not {kind!r}")
            return ServiceBusConnection(
                name=name,
                fully_qualified_namespace=fqns,
                credential_kind=kind,
                client_id=parts.get("clientid"),
            )
    raise HostConfigError(
        f"Service Bus connection {name!r} is not configured: set {name} to a connection string "
        f"(UseDevelopmentEmulator=true for the local emulator) or {name}__fullyQualifiedNamespace"
    )


def _span(values: Mapping[str, Any], key: str, default: float, label: str) -> float:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    try:
        seconds = parse_timespan(str(raw))
    except TimeSpanError as exc:
        raise HostConfigError(f"host.json: {label}: {exc}") from None
    if seconds < 0:
        raise HostConfigError(f"host.json: {label} must not be negative")
    return seconds


def _int(values: Mapping[str, Any], key: str, default: int, label: str, minimum: int) -> int:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).strip().isdigit():
        raise HostConfigError(f"host.json: {label} must be a whole number, not {raw!r}")
    number = int(str(raw).strip())
    if number < minimum:
        raise HostConfigError(f"host.json: {label} must be at least {minimum}")
    return number


def _bool(values: Mapping[str, Any], key: str, default: bool, label: str) -> bool:
    raw = values.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise HostConfigError(f"host.json: {label} must be true or false, not {raw!r}")
