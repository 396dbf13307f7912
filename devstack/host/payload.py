"""Invocation payloads built the way the Functions host builds them, and turned into the objects a Python
function receives by `azure.functions`' own converters (as the Python worker does).

Sources (read, not copied; see docs/local-host.md for the links):
- Service Bus extension 5.x `ServiceBusTriggerBindingStrategy.AddBindingData`: the binding data (trigger
  metadata) of one received message, with its .NET types.
- azure-functions-host `WorkerFunctionInvoker.TransformInput` + `Utility.ApplyBindingData`: a *string*
  trigger value that is a JSON object has its top-level non-array properties copied over the binding data
  (case-insensitive keys; objects stay JSON, everything else becomes its string form; nulls are skipped).
- azure-functions-host `GrpcMessageConversionExtensions.ToRpc` / `ScriptInvocationContextExtensions`:
  every non-null binding-data value becomes trigger metadata; string -> `string`, byte[] -> `bytes`,
  double -> `double`, JObject -> `json`, anything else (ints, DateTimes, dictionaries) -> `json` through
  Json.NET.
- azure-functions-python-worker `bindings/meta.py from_incoming_proto` + `datumdef.Datum.from_typed_data`:
  each TypedData becomes a `Datum(value, type)`; the converter's `decode(datum, trigger_metadata=...)`
  builds the argument.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions import meta
from azure.functions.http import HttpRequestConverter, HttpResponseConverter
from azure.functions.servicebus import ServiceBusMessage, ServiceBusMessageInConverter
from azure.functions.timer import TimerRequestConverter

# DateTimeOffset.MaxValue.DateTime: what .NET reports as ExpiresAt when the message never expires.
NET_MAX_DATETIME = "9999-12-31T23:59:59.9999999"


class ConversionError(RuntimeError):
    """The worker could not turn the invocation input into the function's argument: the invocation fails
    before user code runs (in Azure: the message is abandoned, and dead-lettered at MaxDeliveryCount)."""


@dataclass(frozen=True)
class NetDateTime:
    """A .NET DateTime/DateTimeOffset as Json.NET writes it (`kind`: "unspecified" | "utc" | "offset")."""

    value: datetime
    kind: str = "unspecified"

    def json_text(self) -> str:
        dt = self.value
        if self.kind != "offset" and dt.tzinfo is not None:
            dt = dt.astimezone(UTC)
        text = dt.strftime("%Y-%m-%dT%H:%M:%S")
        fraction = f"{dt.microsecond:06d}0".rstrip("0")  # .NET's 7 digits, "FFFFFFF": trailing zeros dropped
        if fraction:
            text += "." + fraction
        if self.kind == "utc":
            return text + "Z"
        if self.kind == "offset":
            offset = dt.utcoffset() or timedelta(0)
            sign = "-" if offset < timedelta(0) else "+"
            minutes = abs(int(offset.total_seconds())) // 60
            return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        return text


@dataclass(frozen=True)
class JsonObject:
    """A JObject in the binding data (an object-valued body property): sent as `json`."""

    value: dict[str, Any]


def _json_net(value: Any) -> Any:
    """A Python value in the shape Json.NET serializes its .NET counterpart to."""
    if isinstance(value, NetDateTime):
        return value.json_text()
    if isinstance(value, datetime):  # an AMQP timestamp: a UTC DateTime
        return NetDateTime(value, "utc").json_text()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")  # byte[] -> base64 string
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return _net_timespan(value)
    if isinstance(value, Mapping):
        return {str(k): _json_net(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_net(v) for v in value]
    return value


def _net_timespan(value: timedelta) -> str:
    total = int(value.total_seconds())
    days, rest = divmod(abs(total), 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return ("-" if total < 0 else "") + (f"{days}." if days else "") + text


def _amqp_property(value: Any) -> Any:
    """An application property as the .NET SDK types it. The Python SDK decodes AMQP strings and binaries
    both as bytes: valid UTF-8 is taken as a string, anything else as binary (base64 in JSON)."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def application_properties(received: Any) -> dict[str, Any]:
    props = getattr(received, "application_properties", None) or {}
    out: dict[str, Any] = {}
    for key, value in props.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes | bytearray) else str(key)
        out[name] = _amqp_property(value)
    return out


def net_delivery_count(received: Any) -> int:
    """.NET ServiceBusReceivedMessage.DeliveryCount: the AMQP header's count (prior attempts) + 1."""
    return int(getattr(received, "delivery_count", None) or 0) + 1


def servicebus_binding_data(received: Any) -> dict[str, Any]:
    """The Service Bus extension's binding data for one message (single dispatch), .NET-typed.

    Not here, as in Azure: LockedUntil, State, EnqueuedSequenceNumber, TimeToLive, DeadLetterReason,
    DeadLetterErrorDescription, ScheduledEnqueueTimeUtc. Also left out: the MessageReceiver /
    MessageSession / MessageActions / SessionActions / ReceiveActions / Client objects (no Python use)."""
    enqueued: datetime | None = getattr(received, "enqueued_time_utc", None)
    expires: datetime | None = getattr(received, "expires_at_utc", None)
    props = application_properties(received)
    lock_token = getattr(received, "lock_token", None)
    data: dict[str, Any] = {
        "DeliveryCount": net_delivery_count(received),
        "DeadLetterSource": getattr(received, "dead_letter_source", None),
        "LockToken": str(lock_token) if lock_token is not None else None,
        "ExpiresAtUtc": NetDateTime(expires.astimezone(UTC)) if expires else NetMaxDateTime(),
        "ExpiresAt": NetDateTime(expires.astimezone(UTC), "offset") if expires else None,
        "EnqueuedTimeUtc": NetDateTime(enqueued.astimezone(UTC)) if enqueued else None,
        "EnqueuedTime": NetDateTime(enqueued.astimezone(UTC), "offset") if enqueued else None,
        "MessageId": getattr(received, "message_id", None),
        "ContentType": getattr(received, "content_type", None),
        "ReplyTo": getattr(received, "reply_to", None),
        "SequenceNumber": getattr(received, "sequence_number", None),
        "To": getattr(received, "to", None),
        "Subject": getattr(received, "subject", None),
        "Label": getattr(received, "subject", None),
        "CorrelationId": getattr(received, "correlation_id", None),
        "ApplicationProperties": props,
        "UserProperties": props,
        "SessionId": getattr(received, "session_id", None),
        "ReplyToSessionId": getattr(received, "reply_to_session_id", None),
        "PartitionKey": getattr(received, "partition_key", None),
        "TransactionPartitionKey": None,
    }
    return data


@dataclass(frozen=True)
class NetMaxDateTime:
    """ExpiresAt of a message without expiry: DateTimeOffset.MaxValue."""

    def json_text(self) -> str:
        return NET_MAX_DATETIME


def message_body(received: Any) -> bytes:
    """The message body bytes (AMQP data sections joined; a value/sequence body as its JSON)."""
    body = received.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if body is None:
        return b""
    if isinstance(body, dict | int | float | bool):
        return json.dumps(body).encode("utf-8")
    parts = list(body)  # data sections (the SDK yields them), or an AMQP sequence
    if all(isinstance(part, bytes | bytearray | memoryview) for part in parts):
        return b"".join(bytes(part) for part in parts)
    return json.dumps(parts, default=str).encode("utf-8")


def trigger_value(body: bytes, data_type: str | None) -> bytes | str:
    """The trigger value per the binding's dataType: `binary` -> the bytes; otherwise a string, decoded
    as UTF-8 with U+FFFD for invalid sequences (BinaryData.ToString(), Encoding.UTF8)."""
    if (data_type or "").lower() == "binary":
        return body
    return body.decode("utf-8", "replace")


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def _jvalue_string(value: Any) -> str | None:
    """(string)JToken for a non-object JSON value, as Json.NET does it with its default settings."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        if _ISO_DATE.match(value):  # JObject.Parse reads ISO dates as DateTime; the cast formats them
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC)
            return parsed.strftime("%m/%d/%Y %H:%M:%S")
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _looks_like_json(text: str) -> bool:
    stripped = text.strip()
    return (stripped.startswith("{") and stripped.endswith("}")) or (
        stripped.startswith("[") and stripped.endswith("]")
    )


def apply_binding_data(value: bytes | str, binding_data: dict[str, Any]) -> None:
    """Utility.ApplyBindingData: only a string that parses as a JSON object contributes; its top-level
    non-array, non-null properties replace binding data case-insensitively (or are added)."""
    if not isinstance(value, str) or not value or not _looks_like_json(value):
        return
    try:
        parsed = json.loads(value)
    except ValueError:
        return
    if not isinstance(parsed, dict):
        return
    index = {k.lower(): k for k in binding_data}
    for name, item in parsed.items():
        if isinstance(item, list):
            continue
        converted: Any = JsonObject(item) if isinstance(item, dict) else _jvalue_string(item)
        if converted is None:
            continue
        key = index.setdefault(name.lower(), name)
        binding_data[key] = converted


def to_datum(value: Any) -> meta.Datum | None:
    """ToRpc + Datum.from_typed_data: the Datum the worker hands the converter (None for no value)."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return meta.Datum(bytes(value), "bytes")
    if isinstance(value, str):
        return meta.Datum(value, "string")
    if isinstance(value, float):
        return meta.Datum(value, "double")
    if isinstance(value, JsonObject):
        return meta.Datum(json.dumps(value.value, separators=(",", ":"), ensure_ascii=False), "json")
    if isinstance(value, NetDateTime | NetMaxDateTime):
        return meta.Datum(json.dumps(value.json_text()), "json")
    return meta.Datum(json.dumps(_json_net(value), separators=(",", ":"), ensure_ascii=False), "json")


def trigger_metadata(binding_data: Mapping[str, Any]) -> dict[str, meta.Datum]:
    out: dict[str, meta.Datum] = {}
    for key, value in binding_data.items():
        datum = to_datum(value)
        if datum is not None:
            out[key] = datum
    return out


@dataclass(frozen=True)
class ServiceBusInvocation:
    """What the host sends the worker for one message: the trigger input and the trigger metadata."""

    data: meta.Datum
    metadata: dict[str, meta.Datum]


def servicebus_invocation(received: Any, data_type: str | None) -> ServiceBusInvocation:
    value = trigger_value(message_body(received), data_type)
    binding_data = servicebus_binding_data(received)
    apply_binding_data(value, binding_data)  # TransformInput
    data = to_datum(value)
    assert data is not None
    return ServiceBusInvocation(data, trigger_metadata(binding_data))


def decode_servicebus(invocation: ServiceBusInvocation) -> ServiceBusMessage:
    """ServiceBusMessageInConverter.decode, with its failures as ConversionError."""
    try:
        result = ServiceBusMessageInConverter.decode(invocation.data, trigger_metadata=invocation.metadata)
    except Exception as exc:
        raise ConversionError(_conversion_failure(exc)) from exc
    assert isinstance(result, ServiceBusMessage)
    return result


def _conversion_failure(exc: Exception) -> str:
    """Which field failed, never its value (the value may come from the message body)."""
    m = re.search(r"field '([^']+)' in trigger metadata", str(exc))
    if m:
        return f"trigger metadata field {m.group(1)!r} could not be converted ({type(exc).__name__})"
    return f"the trigger input could not be converted ({type(exc).__name__})"


def servicebus_message(received: Any, data_type: str | None) -> ServiceBusMessage:
    """The func.ServiceBusMessage a function with this trigger dataType receives for `received`."""
    return decode_servicebus(servicebus_invocation(received, data_type))


# ----------------------------------------------------------------------------------------------- HTTP
def http_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    route_params: Mapping[str, str],
    body: bytes,
) -> Any:
    """func.HttpRequest through HttpRequestConverter.decode from the `http` Datum the worker builds
    (header names lower-cased; the body as bytes, the Python worker asking for raw body bytes)."""
    value = {
        "method": meta.Datum(method.upper(), "string"),
        "url": meta.Datum(url, "string"),
        "headers": {k.lower(): meta.Datum(v, "string") for k, v in headers.items()},
        "body": meta.Datum(body, "bytes"),
        "params": {k: meta.Datum(v, "string") for k, v in route_params.items()},
        "query": {k: meta.Datum(v, "string") for k, v in query.items()},
    }
    try:
        return HttpRequestConverter.decode(meta.Datum(value, "http"), trigger_metadata={})
    except Exception as exc:
        raise ConversionError(_conversion_failure(exc)) from exc


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_reply(returned: Any) -> HttpReply:
    """The function's return value through HttpResponseConverter.encode (func.HttpResponse or str)."""
    if returned is None:
        return HttpReply(204, [], b"")
    datum = HttpResponseConverter.encode(returned, expected_type=None)
    if datum.type == "string":
        return HttpReply(200, [("content-type", "text/plain; charset=utf-8")], str(datum.value).encode())
    value = datum.value
    headers = [(k, str(v.value)) for k, v in value["headers"].items()]
    for cookie in value.get("cookies") or []:
        headers.append(("set-cookie", cookie.output(header="").strip()))
    body = value["body"].value
    return HttpReply(int(value["status_code"].value), headers, body if isinstance(body, bytes) else b"")


# ---------------------------------------------------------------------------------------------- timer
def timer_request(schedule: str, last: datetime | None, next_: datetime | None, *, past_due: bool) -> Any:
    """func.TimerRequest through TimerRequestConverter.decode from the host's TimerInfo JSON."""

    def iso(t: datetime | None) -> str | None:
        return NetDateTime(t.astimezone(UTC), "offset").json_text() if t else None

    info = {
        "Schedule": {"AdjustForDST": False},
        "ScheduleStatus": {"Last": iso(last), "Next": iso(next_), "LastUpdated": iso(datetime.now(UTC))},
        "IsPastDue": past_due,
    }
    return TimerRequestConverter.decode(meta.Datum(json.dumps(info), "json"), trigger_metadata={})
