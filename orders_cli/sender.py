"""The batched Service Bus sender behind `orders publish`, `orders quarantine replay` and `orders dlq`.

`send_messages(...)` sends generated messages (orders_cli/traffic.py) with the Service Bus SDK in the
order given, in batches of consecutive messages (so each session's order is kept), retrying transient
failures. `resolve_target` and `open_client` pick the namespace the same way for every command: flags
first, then the ServiceBusConnection settings. The SDK, azure-identity and rich are imported when used.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from orders_cli.traffic import OutgoingMessage, PublishUsageError
from shared.settings import DEFAULT_QUEUE_NAME, QUEUE_NAME_SETTING


class PublishError(RuntimeError):
    """Publishing failed (exit code 1)."""

    exit_code = 1


@dataclass(slots=True)
class PublishSummary:
    sent: int = 0
    batches: int = 0
    elapsed_s: float = 0.0
    retries: int = 0
    queue: str = ""
    endpoint: str = ""  # host name only: never the connection string
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def messages_per_second(self) -> float:
        return round(self.sent / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"messages_per_second": self.messages_per_second}


# What `send_messages` is; the CLI takes another one in tests.
SendFn = Callable[..., PublishSummary]

_RETRY_ATTEMPTS = 4


def send_messages(
    messages: Sequence[OutgoingMessage],
    *,
    connection_string: str | None,
    namespace: str | None,
    queue: str,
    batch_size: int = 100,
    progress: bool = True,
) -> PublishSummary:
    """Send in the given order, in batches of consecutive messages (so each session's order is kept),
    retrying transient failures. A resent batch is harmless: the queue drops repeated message ids."""
    if batch_size < 1:
        raise PublishUsageError("batch size must be at least 1")
    client, endpoint = open_client(connection_string, namespace)
    summary = PublishSummary(queue=queue, endpoint=endpoint, by_kind=dict(Counter(m.kind for m in messages)))
    started = time.perf_counter()
    messages = with_trace_context(messages, queue)
    from azure.core.exceptions import AzureError

    try:
        with (
            client,
            client.get_queue_sender(queue_name=queue) as sender,
            _progress(len(messages), progress) as tick,
        ):
            i = 0
            while i < len(messages):
                count = _send_batch(sender, messages[i : i + batch_size], summary)
                summary.sent += count
                summary.batches += 1
                i += count
                tick(count)
    except AzureError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PublishError(
            f"sending to {queue} at {endpoint} failed after {summary.sent} message(s): "
            f"{type(exc).__name__}: {first}"
        ) from exc
    summary.elapsed_s = round(time.perf_counter() - started, 3)
    return summary


def open_client(connection_string: str | None, namespace: str | None) -> tuple[Any, str]:
    """(ServiceBusClient, endpoint host for display) from a connection string, or from a namespace
    FQDN with DefaultAzureCredential. Shared by `orders publish`, `quarantine replay` and `dlq`."""
    if not connection_string and not namespace:
        raise PublishError(
            "no Service Bus connection: set ServiceBusConnection (or "
            "ServiceBusConnection__fullyQualifiedNamespace) or pass --connection / --namespace"
        )
    from azure.servicebus import ServiceBusClient

    if connection_string:
        client = ServiceBusClient.from_connection_string(connection_string)  # checks the form first
        check_emulator_listens(connection_string)
        return client, endpoint_of(connection_string)
    from azure.identity import DefaultAzureCredential

    assert namespace is not None
    return ServiceBusClient(namespace, DefaultAzureCredential()), namespace


EMULATOR_PORT = 5672  # AMQP without TLS: the development emulator's (Config.json, devstack/emulator)


def check_emulator_listens(connection_string: str, timeout_s: float = 3.0) -> None:
    """With UseDevelopmentEmulator=true, a quick TCP connect first: when nothing listens, say so in one
    line at once (the SDK would retry for several seconds and then print its own text)."""
    import socket

    parts = {}
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        parts[key.strip().lower()] = value.strip()
    if parts.get("usedevelopmentemulator", "").lower() != "true":
        return
    host, _, port = endpoint_of(connection_string).partition(":")
    address = (host or "localhost", int(port) if port.isdigit() else EMULATOR_PORT)
    try:
        socket.create_connection(address, timeout=timeout_s).close()
    except OSError:
        raise PublishError(
            f"the Service Bus emulator is not running at {address[0]}:{address[1]}: start it with "
            "`make emulator` (or `orders emulator`)"
        ) from None


def with_trace_context(messages: Sequence[OutgoingMessage], queue: str) -> list[OutgoingMessage]:
    """Each message with its own producer span, whose W3C context goes into its application properties
    (`traceparent`, `Diagnostic-Id`): the function continues that trace (shared/tracing.py)."""
    from shared import tracing

    traced = []
    for m in messages:
        props = dict(m.application_properties)
        with tracing.publish_span(
            session_id=m.session_id, message_id=m.message_id, queue=queue, properties=props
        ):
            pass
        traced.append(replace(m, application_properties=props))
    return traced


def _send_batch(sender: Any, chunk: Sequence[OutgoingMessage], summary: PublishSummary) -> int:
    """Send as many of `chunk` (from its start) as fit in one batch; returns how many were sent."""
    from azure.servicebus.exceptions import MessageSizeExceededError, ServiceBusError

    for attempt in range(1, _RETRY_ATTEMPTS + 1):
        batch = sender.create_message_batch()
        count = 0
        for m in chunk:
            try:
                batch.add_message(to_servicebus_message(m))
            except MessageSizeExceededError:
                if count == 0:
                    raise PublishError(f"message {m.message_id} is larger than the queue allows") from None
                break
            count += 1
        try:
            sender.send_messages(batch)
            return count
        except ServiceBusError as exc:
            if attempt == _RETRY_ATTEMPTS or not _is_transient(exc):
                raise PublishError(
                    f"send failed after {attempt} attempt(s): {type(exc).__name__}: {exc}"
                ) from exc
            summary.retries += 1
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
    raise AssertionError("unreachable")


def _is_transient(exc: Exception) -> bool:
    from azure.servicebus.exceptions import (
        OperationTimeoutError,
        ServiceBusCommunicationError,
        ServiceBusConnectionError,
        ServiceBusServerBusyError,
    )

    transient = (
        OperationTimeoutError,
        ServiceBusCommunicationError,
        ServiceBusConnectionError,
        ServiceBusServerBusyError,
    )
    # Not the SDK's own `retryable` flag: it marks authorization failures retryable too.
    return isinstance(exc, transient)


def to_servicebus_message(m: OutgoingMessage) -> Any:
    from azure.servicebus import ServiceBusMessage

    return ServiceBusMessage(
        m.body,
        session_id=m.session_id,
        message_id=m.message_id,
        content_type=m.content_type,
        application_properties=dict(m.application_properties),  # type: ignore[arg-type]
    )


def endpoint_of(connection_string: str) -> str:
    """The host of `Endpoint=sb://host/` (for display; the key never leaves the connection string)."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            return value.strip().removeprefix("sb://").rstrip("/")
    return "?"


class _progress:
    """A rich progress bar on stderr when it is a terminal; otherwise a no-op."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda _n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self._bar.__enter__()
        task = self._bar.add_task("send", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def resolve_target(
    values: dict[str, str], *, connection: str | None, namespace: str | None, queue: str | None
) -> tuple[str | None, str | None, str]:
    """(connection string, namespace, queue): flags first, then ServiceBusConnection, then
    ServiceBusConnection__fullyQualifiedNamespace; queue from ORDERS_QUEUE_NAME."""
    if not connection and not namespace:
        connection = values.get("ServiceBusConnection") or None
        if not connection:
            namespace = values.get("ServiceBusConnection__fullyQualifiedNamespace") or None
    return connection, namespace, queue or values.get(QUEUE_NAME_SETTING) or DEFAULT_QUEUE_NAME
