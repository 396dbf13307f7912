"""Invocation payloads built the way the Functions host builds them: FunctionRpc `TypedData` for the trigger
input and the trigger metadata, which Azure's worker library (devstack/host/worker.py) turns into the
function's arguments with its own converters.

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
- The worker side is not here: azure-functions-runtime `bindings/meta.py from_incoming_proto` turns each
  TypedData into a `Datum` and the azure.functions converter builds the argument.
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

from devstack.host.rpc import protos

# DateTimeOffset.MaxValue.DateTime: what .NET reports as ExpiresAt when the message never expires.
NET_MAX_DATETIME = "9999-12-31T23:59:59.9999999"


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
    DeadLetterErrorDescription, ScheduledEnqueueTimeUtc. The receiver/actions/client objects are added by
    the host from its receiver (ReceiverObjects)."""
    enqueued: datetime | None = getattr(received, "enqueued_time_utc", None)
    expires: datetime | None = getattr(received, "expires_at_utc", None)
    props = application_properties(received)
    lock_token = getattr(received, "lock_token", None)
    data: dict[str, Any] = {
        "DeliveryCount": net_delivery_count(received),
        "DeadLetterSource": getattr(received, "dead_letter_source", None),
        "LockToken": str(lock_token) if lock_token is not None else None,
        "ExpiresAtUtc": NetDateTime(expires.astimezone(UTC)) if expires else NetMaxDateTime(),
        "ExpiresAt": NetDateTime(expires.astimezone(UTC), "offset")
        if expires
        else NetMaxDateTime(offset=True),
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
    """The expiry of a message without a time-to-live: the .NET SDK's ExpiresAt is
    DateTimeOffset.MaxValue (ServiceBusReceivedMessage.ExpiresAt when TimeToLive is TimeSpan.MaxValue);
    ExpiresAtUtc is its DateTime."""

    offset: bool = False

    def json_text(self) -> str:
        return NET_MAX_DATETIME + ("+00:00" if self.offset else "")


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


def to_typed_data(value: Any) -> Any:
    """GrpcMessageConversionExtensions.ToRpc: the TypedData the host sends for one binding-data value
    (None for no value: nulls are skipped)."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return protos.TypedData(bytes=bytes(value))
    if isinstance(value, str):
        return protos.TypedData(string=value)
    if isinstance(value, float):
        return protos.TypedData(double=value)
    if isinstance(value, JsonObject):
        return protos.TypedData(json=json.dumps(value.value, separators=(",", ":"), ensure_ascii=False))
    if isinstance(value, NetDateTime | NetMaxDateTime):
        return protos.TypedData(json=json.dumps(value.json_text()))
    return protos.TypedData(json=json.dumps(_json_net(value), separators=(",", ":"), ensure_ascii=False))


def trigger_metadata(binding_data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in binding_data.items():
        typed = to_typed_data(value)
        if typed is not None:
            out[key] = typed
    return out


@dataclass(frozen=True)
class TriggerInput:
    """What the host sends the worker for one invocation: the trigger's TypedData (InvocationRequest
    input_data) and the trigger metadata (InvocationRequest trigger_metadata)."""

    data: Any
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ReceiverObjects:
    """The .NET objects the Service Bus extension 5.x adds to every invocation's binding data, as the host
    serializes them for an out-of-process worker (`GrpcMessageConversionExtensions.ToRpcDefault`:
    `JsonConvert.SerializeObject`, public properties only; nulls skipped).

    Sources (read, not copied): azure-sdk-for-net `Microsoft.Azure.WebJobs.Extensions.ServiceBus`
    `ServiceBusTriggerBindingStrategy.GetBindingData` puts ONE message-actions object under
    `MessageReceiver`, `MessageSession`, `MessageActions` and `SessionActions` (the first two kept for
    back-compat: no receiver is sent in 5.x), `ServiceBusReceiveActions` under `ReceiveActions` and the
    listener's `ServiceBusClient` under `Client`; `Listeners/ServiceBusListener.cs` builds
    `ServiceBusSessionMessageActions` for a session trigger (single and batch) and `ServiceBusMessageActions`
    otherwise. Their public surface (Azure.Messaging.ServiceBus / the extension's API listings):
    message actions and receive actions have methods only (`{}`), session message actions one property,
    `SessionLockedUntil` (a DateTimeOffset), and the client `FullyQualifiedNamespace`, `IsClosed`,
    `TransportType` (enum, as its number: AmqpTcp 0) and `Identifier` (`{namespace}-{guid}` unless set).
    Batches carry the same six keys once per invocation (no `...Array`)."""

    session_locked_until: datetime | None  # None: not a session trigger
    namespace: str
    client_identifier: str

    def binding_data(self) -> dict[str, Any]:
        actions: dict[str, Any] = {}
        if self.session_locked_until is not None:
            actions["SessionLockedUntil"] = NetDateTime(self.session_locked_until.astimezone(UTC), "offset")
        client = {
            "FullyQualifiedNamespace": self.namespace,
            "IsClosed": False,
            "TransportType": 0,
            "Identifier": self.client_identifier,
        }
        return {
            "MessageReceiver": actions,
            "MessageSession": actions,
            "MessageActions": actions,
            "SessionActions": actions,
            "ReceiveActions": {},
            "Client": client,
        }


def servicebus_invocation(
    received: Any, data_type: str | None, objects: ReceiverObjects | None = None
) -> TriggerInput:
    value = trigger_value(message_body(received), data_type)
    binding_data = servicebus_binding_data(received)
    if objects is not None:
        binding_data.update(objects.binding_data())
    apply_binding_data(value, binding_data)  # TransformInput
    data = to_typed_data(value)
    assert data is not None
    return TriggerInput(data, trigger_metadata(binding_data))


# ------------------------------------------------------------------------------------ Service Bus batch
# cardinality=many. Sources (read, not copied; links in docs/local-host.md):
# - Service Bus extension 5.x `ServiceBusTriggerBindingStrategy.AddBindingData(bindingData, messages[])`:
#   one `<Name>Array` per binding-data member (LabelArray and UserPropertiesArray kept for back-compat,
#   TransactionPartitionKeyArray filled with the partition keys, as the extension does).
# - azure-functions-host `GrpcMessageConversionExtensions.ToRpc` with the worker's TypedDataCollection
#   capability (the Python worker declares it): byte[][] -> collection_bytes and string[] ->
#   collection_string, both SKIPPING null (and, for strings, empty) elements; long[] -> collection_sint64;
#   every other array (int[] delivery counts, DateTime[], dictionaries) -> json.
# - azure-functions-python-library `ServiceBusMessageInConverter.decode_multiple_messages`: chosen when
#   `UserPropertiesArray` is in the trigger metadata; the i-th message takes the i-th element of each
#   array (None when an array is missing or shorter).


@dataclass(frozen=True)
class NetArray:
    """A .NET array in the batch binding data: `kind` is "string" (string[]), "long" (long[]) or "json"."""

    values: list[Any]
    kind: str


# (single-dispatch binding-data name, batch array name, .NET element kind)
_BATCH_MEMBERS: tuple[tuple[str, str, str], ...] = (
    ("DeliveryCount", "DeliveryCountArray", "json"),  # int[]: no typed collection for int
    ("DeadLetterSource", "DeadLetterSourceArray", "string"),
    ("LockToken", "LockTokenArray", "string"),
    ("ExpiresAtUtc", "ExpiresAtUtcArray", "json"),
    ("ExpiresAt", "ExpiresAtArray", "json"),
    ("EnqueuedTimeUtc", "EnqueuedTimeUtcArray", "json"),
    ("EnqueuedTime", "EnqueuedTimeArray", "json"),
    ("MessageId", "MessageIdArray", "string"),
    ("ContentType", "ContentTypeArray", "string"),
    ("ReplyTo", "ReplyToArray", "string"),
    ("SequenceNumber", "SequenceNumberArray", "long"),
    ("To", "ToArray", "string"),
    ("Subject", "SubjectArray", "string"),
    ("Subject", "LabelArray", "string"),
    ("CorrelationId", "CorrelationIdArray", "string"),
    ("ApplicationProperties", "ApplicationPropertiesArray", "json"),
    ("ApplicationProperties", "UserPropertiesArray", "json"),
    ("SessionId", "SessionIdArray", "string"),
    ("ReplyToSessionId", "ReplyToSessionIdArray", "string"),
    ("PartitionKey", "PartitionKeyArray", "string"),
    ("PartitionKey", "TransactionPartitionKeyArray", "string"),
)


def servicebus_batch_binding_data(messages: list[Any]) -> dict[str, NetArray]:
    """The extension's binding data for a batch: one array per member, in message order."""
    singles = [servicebus_binding_data(m) for m in messages]
    return {array: NetArray([s.get(name) for s in singles], kind) for name, array, kind in _BATCH_MEMBERS}


def _collection(values: list[Any], kind: str) -> Any:
    """ToRpc of a .NET array."""
    if kind == "bytes":
        return protos.TypedData(
            collection_bytes=protos.CollectionBytes(bytes=[bytes(v) for v in values if v is not None])
        )
    if kind == "string":
        return protos.TypedData(
            collection_string=protos.CollectionString(string=[str(v) for v in values if v])
        )
    if kind == "long":
        return protos.TypedData(
            collection_sint64=protos.CollectionSInt64(sint64=[int(v or 0) for v in values])
        )
    items = [v.json_text() if isinstance(v, NetDateTime | NetMaxDateTime) else _json_net(v) for v in values]
    return protos.TypedData(json=json.dumps(items, separators=(",", ":"), ensure_ascii=False))


def servicebus_batch_invocation(
    messages: list[Any], data_type: str | None, objects: ReceiverObjects | None = None
) -> TriggerInput:
    """The trigger input (the bodies as byte[][] for dataType binary, string[] otherwise) and metadata
    the host sends for a batch. No ApplyBindingData: that runs for a single string trigger value only."""
    bodies = [message_body(m) for m in messages]
    if (data_type or "").lower() == "binary":
        data = _collection(bodies, "bytes")
    else:
        data = _collection([trigger_value(b, data_type) for b in bodies], "string")
    metadata = {
        name: _collection(a.values, a.kind) for name, a in servicebus_batch_binding_data(messages).items()
    }
    if objects is not None:
        metadata.update(trigger_metadata(objects.binding_data()))
    return TriggerInput(data, metadata)


# ----------------------------------------------------------------------------------------------- HTTP
def http_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    route_params: Mapping[str, str],
    body: bytes,
) -> TriggerInput:
    """The RpcHttp the host sends for a request (azure-functions-host `HttpRequest.ToRpcHttp`): header
    names lower-cased, the body as bytes (the worker declares RawHttpBodyBytes and RpcHttpBodyOnly),
    route parameters in `params`; no trigger metadata (RpcHttpTriggerMetadataRemoved)."""
    rpc = protos.RpcHttp(
        method=method.upper(),
        url=url,
        headers={k.lower(): v for k, v in headers.items()},
        body=protos.TypedData(bytes=body),
        params=dict(route_params),
        query=dict(query),
    )
    return TriggerInput(protos.TypedData(http=rpc), {})


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _typed_bytes(typed: Any) -> bytes:
    kind = typed.WhichOneof("data") if typed is not None else None
    if kind in ("bytes", "stream"):
        return bytes(getattr(typed, kind))
    if kind in ("string", "json"):
        return str(getattr(typed, kind)).encode("utf-8")
    return b""


def http_reply(returned: Any) -> HttpReply:
    """The response from InvocationResponse.return_value, as the host reads it: `http` (an RpcHttp the
    worker encoded from func.HttpResponse), or a plain string (200, text/plain); nothing -> 204."""
    kind = returned.WhichOneof("data") if returned is not None else None
    if kind is None:
        return HttpReply(204, [], b"")
    if kind != "http":
        return HttpReply(200, [("content-type", "text/plain; charset=utf-8")], _typed_bytes(returned))
    rpc = returned.http
    headers = [(k, v) for k, v in rpc.headers.items()]
    for cookie in rpc.cookies:
        headers.append(("set-cookie", f"{cookie.name}={cookie.value}"))
    return HttpReply(int(rpc.status_code or 200), headers, _typed_bytes(rpc.body))


# ---------------------------------------------------------------------------------------------- timer
def timer_request(
    schedule: str, last: datetime | None, next_: datetime | None, *, past_due: bool
) -> TriggerInput:
    """The host's TimerInfo as JSON (`json` TypedData), as the timer extension serializes it."""

    def iso(t: datetime | None) -> str | None:
        return NetDateTime(t.astimezone(UTC), "offset").json_text() if t else None

    info = {
        "Schedule": {"AdjustForDST": False},
        "ScheduleStatus": {"Last": iso(last), "Next": iso(next_), "LastUpdated": iso(datetime.now(UTC))},
        "IsPastDue": past_due,
    }
    return TriggerInput(protos.TypedData(json=json.dumps(info)), {})
