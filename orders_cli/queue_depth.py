"""Queue depth and dead-letter count for `orders status`, through the standard ServiceBusAdministrationClient.

Where it asks (the first that applies):

* `ServiceBusAdministrationConnection`: a management connection string (the official emulator documents
  the AMQP one with its management port, `Endpoint=sb://localhost:5300;...`), with
  `ServiceBusAdministrationCA` the certificate to trust (our emulator's local CA; not needed in Azure);
* an emulator `ServiceBusConnection` (`UseDevelopmentEmulator=true`): the same host on the management port
  5300 (the official emulator's default, and `orders emulator`'s), trusting `.local/servicebus-emulator/
  admin-ca.pem`, where `orders emulator` keeps its CA;
* any other `--connection` / `ServiceBusConnection`: the same namespace over HTTPS;
* `--namespace` / `ServiceBusConnection__fullyQualifiedNamespace`: DefaultAzureCredential (in Azure the
  identity needs a role that can read entities, e.g. "Azure Service Bus Data Owner").

A broker that cannot be reached is a one-line note under the status, never a failed `orders status`:
the store is what status is about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ADMIN_CONNECTION_SETTING = "ServiceBusAdministrationConnection"
ADMIN_CA_SETTING = "ServiceBusAdministrationCA"
EMULATOR_ADMIN_PORT = 5300
EMULATOR_CA = Path(".local") / "servicebus-emulator" / "admin-ca.pem"


def _parts(connection_string: str) -> dict[str, str]:
    out = {}
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def emulator_admin_connection(connection_string: str, port: int) -> str:
    """The emulator connection string pointed at its management port."""
    parts = [p for p in connection_string.split(";") if p.strip()]
    out = []
    for part in parts:
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            host = value.strip().removeprefix("sb://").rstrip("/").rsplit(":", 1)[0]
            part = f"Endpoint=sb://{host}:{port}"
        out.append(part)
    return ";".join(out) + ";"


def admin_client(values: dict[str, str], connection: str | None, namespace: str | None) -> Any | None:
    """A ServiceBusAdministrationClient for the configured namespace, or None when none is configured."""
    from azure.servicebus.management import ServiceBusAdministrationClient

    options: dict[str, Any] = {"retry_total": 1, "connection_timeout": 10}
    explicit = values.get(ADMIN_CONNECTION_SETTING)
    ca = values.get(ADMIN_CA_SETTING)
    if explicit:
        target = explicit
    elif connection and _parts(connection).get("usedevelopmentemulator", "").lower() == "true":
        target = emulator_admin_connection(connection, EMULATOR_ADMIN_PORT)
        if not ca and EMULATOR_CA.exists():
            ca = str(EMULATOR_CA)
    elif connection:
        target = connection
    elif namespace:
        from azure.identity import DefaultAzureCredential

        return ServiceBusAdministrationClient(namespace, DefaultAzureCredential(), **options)
    else:
        return None
    if ca:
        options["connection_verify"] = ca
    return ServiceBusAdministrationClient.from_connection_string(target, **options)


def queue_depth(
    values: dict[str, str], connection: str | None, namespace: str | None, queue: str
) -> dict[str, Any] | None:
    """{queue, active, dead_lettered, scheduled, total, size_bytes} or {queue, error}; None: no broker set."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError

    try:
        client = admin_client(values, connection, namespace)
    except (ValueError, AzureError) as exc:
        return {"queue": queue, "error": f"cannot use the Service Bus settings: {_one_line(exc)}"}
    if client is None:
        return None
    try:
        with client:
            rp = client.get_queue_runtime_properties(queue)
    except ClientAuthenticationError as exc:
        return {"queue": queue, "error": f"not allowed to read the queue: {_one_line(exc)}"}
    except (AzureError, OSError, ValueError) as exc:
        return {"queue": queue, "error": _one_line(exc)}
    return {
        "queue": queue,
        "active": rp.active_message_count,
        "dead_lettered": rp.dead_letter_message_count,
        "scheduled": rp.scheduled_message_count,
        "total": rp.total_message_count,
        "size_bytes": rp.size_in_bytes,
    }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def render(depth: dict[str, Any] | None) -> None:
    """The queue table under `orders status` (nothing when no broker is configured)."""
    if depth is None:
        return
    from orders_cli.console import compact_table, make_console

    console = make_console()
    if "error" in depth:
        console.print(
            f"queue {depth['queue']}: depth unavailable ({depth['error']})", markup=False, soft_wrap=True
        )
        return
    table = compact_table(f"queue {depth['queue']} (Service Bus)")
    for name in ("active", "dead-lettered", "scheduled", "total"):
        table.add_column(name, justify="right")
    table.add_row(*(str(depth[k]) for k in ("active", "dead_lettered", "scheduled", "total")))
    console.print(table)
    if depth["dead_lettered"]:
        console.print("see them with: orders dlq list", markup=False)
