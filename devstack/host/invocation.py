"""The objects a function receives, built as the Python worker builds them: a real
`azure.functions.servicebus.ServiceBusMessage`, a `func.Context`, a `func.TimerRequest`."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest


class LocalTraceContext(func_abc.TraceContext):
    def __init__(self, trace_parent: str, trace_state: str = "", attributes: dict[str, str] | None = None):
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = attributes or {}

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes


class LocalRetryContext(func_abc.RetryContext):
    """No retry policy is configured in the app: retry_count 0, max_retry_count 0."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


_thread_local = threading.local()


class LocalContext(func.Context):
    """func.Context as the worker provides it: fresh invocation id, W3C trace context per invocation."""

    def __init__(self, function_name: str, function_directory: str, trace_parent: str | None = None):
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = LocalTraceContext(trace_parent or new_trace_parent())
        self._retry_context = LocalRetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return _thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return self._retry_context


def new_trace_parent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _properties(props: Mapping[Any, Any] | None) -> dict[str, Any]:
    return {str(_text(k)): _text(v) for k, v in (props or {}).items()}


def message_body(received: Any) -> bytes:
    """The body as the host hands it to a Python function: bytes (data sections joined)."""
    body = received.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if body is None:
        return b""
    if isinstance(body, dict | list | int | float | bool):
        return json.dumps(body).encode("utf-8")
    return b"".join(bytes(part) for part in body)


def functions_delivery_count(received: Any) -> int:
    """.NET / Functions DeliveryCount: the AMQP header's (prior failed attempts) + 1."""
    raw = getattr(received, "delivery_count", None)
    return int(raw or 0) + 1


def to_functions_message(received: Any, session_locked_until: datetime | None = None) -> ServiceBusMessage:
    """azure.servicebus ServiceBusReceivedMessage -> azure.functions ServiceBusMessage."""
    props = _properties(received.application_properties)
    delivery_count = functions_delivery_count(received)
    enqueued = received.enqueued_time_utc
    expires = received.expires_at_utc
    ttl: timedelta | None = received.time_to_live
    state = getattr(received, "state", None)
    sequence_number = received.sequence_number
    lock_token = str(received.lock_token) if received.lock_token is not None else None
    locked_until = getattr(received, "locked_until_utc", None) or session_locked_until
    metadata: dict[str, Any] = {
        "MessageId": received.message_id,
        "SessionId": received.session_id,
        "DeliveryCount": delivery_count,
        "SequenceNumber": sequence_number,
        "EnqueuedTimeUtc": enqueued.isoformat() if enqueued else None,
        "ExpiresAtUtc": expires.isoformat() if expires else None,
        "LockToken": lock_token,
        "ContentType": received.content_type,
        "CorrelationId": received.correlation_id,
        "Label": received.subject,
        "ApplicationProperties": props,
        "UserProperties": props,
    }
    return ServiceBusMessage(
        body=message_body(received),
        trigger_metadata=metadata,
        application_properties=props,
        content_type=received.content_type,
        correlation_id=received.correlation_id,
        dead_letter_error_description=received.dead_letter_error_description,
        dead_letter_reason=received.dead_letter_reason,
        dead_letter_source=received.dead_letter_source,
        delivery_count=delivery_count,
        enqueued_sequence_number=received.enqueued_sequence_number,
        enqueued_time_utc=enqueued,
        expires_at_utc=expires,
        label=received.subject,
        locked_until=locked_until,
        lock_token=lock_token,
        message_id=received.message_id,
        partition_key=received.partition_key,
        reply_to=received.reply_to,
        reply_to_session_id=received.reply_to_session_id,
        scheduled_enqueue_time_utc=received.scheduled_enqueue_time_utc,
        sequence_number=sequence_number,
        session_id=received.session_id,
        state=int(state) if isinstance(state, int) else None,
        subject=received.subject,
        time_to_live=ttl,
        to=received.to,
        transaction_partition_key=None,
        user_properties=props,
    )


def timer_request(
    schedule: str, last: datetime | None, next_: datetime | None, *, past_due: bool
) -> TimerRequest:
    def iso(t: datetime | None) -> str | None:
        return t.astimezone(UTC).isoformat() if t else None

    return TimerRequest(
        past_due=past_due,
        schedule_status={"Last": iso(last), "Next": iso(next_), "LastUpdated": iso(datetime.now(UTC))},
        schedule={"AdjustForDST": False, "Expression": schedule},
    )
