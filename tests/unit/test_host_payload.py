"""The local host's invocation input, built as the Functions host builds it and decoded by azure.functions'
own ServiceBusMessageInConverter / HttpRequestConverter / TimerRequestConverter (devstack/host/payload.py).

The received message is a stand-in with the attributes of azure.servicebus' ServiceBusReceivedMessage (the
real SDK object is exercised by tests/e2e/test_host_binding_data.py against the emulator)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from devstack.host.payload import (
    NetDateTime,
    apply_binding_data,
    http_reply,
    servicebus_invocation,
    to_typed_data,
)
from devstack.host.rpc import protos
from tests.support.worker_convert import http_request, servicebus_message, timer_request

ENQUEUED = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
LOCK = uuid.UUID("6f1c0e2a-1b2c-4d5e-8f90-a1b2c3d4e5f6")
PROP_UUID = uuid.UUID("11111111-2222-3333-4444-555555555555")


@dataclass
class Received:
    """The attributes of azure.servicebus.ServiceBusReceivedMessage the host reads."""

    body: Any = b'{"order_id":"ord-1"}'
    message_id: str | None = "ord-1:1"
    session_id: str | None = "cust-a"
    content_type: str | None = "application/json"
    correlation_id: str | None = "corr-1"
    reply_to: str | None = "replies"
    reply_to_session_id: str | None = "reply-session"
    to: str | None = "orders"
    subject: str | None = "order.placed"
    partition_key: str | None = "cust-a"
    delivery_count: int | None = 2  # AMQP header: prior attempts
    sequence_number: int | None = 42
    enqueued_time_utc: datetime | None = ENQUEUED
    expires_at_utc: datetime | None = ENQUEUED + timedelta(days=14)
    lock_token: Any = LOCK
    dead_letter_source: str | None = None
    application_properties: dict[Any, Any] = field(
        default_factory=lambda: {
            b"source": b"publisher",
            b"attempt": 3,
            b"ratio": 0.5,
            b"flag": True,
            b"blob": b"\xff\x00\x01",
            b"ref": PROP_UUID,
            b"at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        }
    )


def decode(received: Received, data_type: str | None = "binary") -> func.ServiceBusMessage:
    return servicebus_message(received, data_type)


def test_every_metadata_field_reaches_the_converter_as_the_host_sends_it() -> None:
    msg = decode(Received())
    assert msg.get_body() == b'{"order_id":"ord-1"}'
    assert msg.message_id == "ord-1:1" and msg.session_id == "cust-a"
    assert msg.content_type == "application/json" and msg.correlation_id == "corr-1"
    assert msg.reply_to == "replies" and msg.reply_to_session_id == "reply-session"
    assert msg.to == "orders" and msg.label == "order.placed" and msg.subject == "order.placed"
    assert msg.partition_key == "cust-a"
    assert msg.delivery_count == 3  # AMQP header 2 + 1, as .NET reports it
    assert msg.sequence_number == 42
    assert msg.lock_token == str(LOCK)
    # DateTimeOffset.DateTime: Json.NET writes no offset, so the converter yields naive UTC datetimes.
    assert msg.enqueued_time_utc == datetime(2026, 3, 4, 5, 6, 7, 891000)
    assert msg.enqueued_time_utc is not None and msg.enqueued_time_utc.tzinfo is None
    assert msg.expires_at_utc == datetime(2026, 3, 18, 5, 6, 7, 891000)
    expected_props = {
        "source": "publisher",
        "attempt": 3,
        "ratio": 0.5,
        "flag": True,
        "blob": base64.b64encode(b"\xff\x00\x01").decode(),
        "ref": str(PROP_UUID),
        "at": "2026-01-02T03:04:05Z",
    }
    assert msg.application_properties == expected_props and msg.user_properties == expected_props
    # Not in the extension's binding data, so None in Python, as in Azure:
    assert msg.locked_until is None and msg.state is None and msg.enqueued_sequence_number is None
    assert msg.time_to_live is None and msg.scheduled_enqueue_time_utc is None
    assert msg.dead_letter_source is None and msg.dead_letter_reason is None
    assert msg.dead_letter_error_description is None and msg.transaction_partition_key is None
    metadata = msg.metadata or {}
    assert metadata["DeliveryCount"] == 3 and metadata["SequenceNumber"] == 42
    assert metadata["EnqueuedTimeUtc"] == "2026-03-04T05:06:07.891"
    assert metadata["EnqueuedTime"] == "2026-03-04T05:06:07.891+00:00"
    assert metadata["ApplicationProperties"] == expected_props
    assert "LockedUntil" not in metadata and "State" not in metadata and "DeadLetterSource" not in metadata


def test_trigger_metadata_types_are_what_torpc_makes() -> None:
    invocation = servicebus_invocation(Received(), "binary")
    types = {k: d.WhichOneof("data") for k, d in invocation.metadata.items()}
    assert types["MessageId"] == types["SessionId"] == types["LockToken"] == "string"
    assert types["DeliveryCount"] == types["SequenceNumber"] == "json"  # int/long -> ToRpcDefault
    assert types["EnqueuedTimeUtc"] == types["ApplicationProperties"] == "json"
    assert invocation.data.WhichOneof("data") == "bytes"
    assert servicebus_invocation(Received(), None).data.WhichOneof("data") == "string"


def test_a_message_without_expiry_reports_net_max_value() -> None:
    msg = decode(Received(expires_at_utc=None))
    assert msg.expires_at_utc == datetime(9999, 12, 31, 23, 59, 59, 999999)
    # ExpiresAt (DateTimeOffset.MaxValue) is sent too, with its offset, as the extension sends it.
    expires_at = servicebus_invocation(Received(expires_at_utc=None), "binary").metadata["ExpiresAt"]
    assert json.loads(expires_at.json) == "9999-12-31T23:59:59.9999999+00:00"


def test_absent_values_are_not_sent() -> None:
    msg = decode(Received(content_type=None, correlation_id=None, session_id=None, application_properties={}))
    assert msg.content_type is None and msg.correlation_id is None and msg.session_id is None
    assert "ContentType" not in (msg.metadata or {}) and msg.application_properties == {}


@pytest.mark.parametrize("data_type", ["binary", None, "string"])
def test_body_kinds(data_type: str | None) -> None:
    invalid = b"\xff\xfe not utf-8 \xc3"
    text_form = invalid.decode("utf-8", "replace").encode("utf-8")
    binary = data_type == "binary"
    assert decode(Received(body=invalid), data_type).get_body() == (invalid if binary else text_form)
    assert decode(Received(body=b""), data_type).get_body() == b""
    assert decode(Received(body=[b"ab", b"cd"]), data_type).get_body() == b"abcd"  # data sections joined
    assert decode(Received(body="héllo"), data_type).get_body() == "héllo".encode()


HOSTILE = {
    "SessionId": "cust-b",
    "MessageId": "forged-id",
    "ContentType": "text/evil",
    "CorrelationId": "forged-corr",
    "SequenceNumber": "7",
    "Label": "forged-label",
}


def test_binary_binding_is_immune_to_every_body_override() -> None:
    body = json.dumps({**HOSTILE, "DeliveryCount": "x", "ApplicationProperties": {"a": 1}}).encode()
    msg = decode(Received(body=body), "binary")
    assert msg.session_id == "cust-a" and msg.message_id == "ord-1:1" and msg.delivery_count == 3
    assert msg.content_type == "application/json" and msg.correlation_id == "corr-1"
    assert msg.sequence_number == 42 and msg.label == "order.placed"
    assert msg.application_properties["source"] == "publisher"
    assert msg.get_body() == body
    assert "order_id" not in (msg.metadata or {})


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("SessionId", "cust-b", "session_id", "cust-b"),
        ("sessionid", "cust-c", "session_id", "cust-c"),  # case-insensitive, as the host's dictionary
        ("MessageId", "forged-id", "message_id", "forged-id"),
        ("MessageId", 12, "message_id", "12"),  # (string)JToken
        ("ContentType", "text/evil", "content_type", "text/evil"),
        ("CorrelationId", True, "correlation_id", "True"),  # .NET bool.ToString()
        ("DeliveryCount", "9", "delivery_count", 9),
        ("DeliveryCount", 9, "delivery_count", 9),
        ("SequenceNumber", "7", "sequence_number", 7),
        ("Label", "forged", "label", "forged"),
        ("ApplicationProperties", {"a": 1}, "application_properties", {"a": 1}),  # JObject stays JSON
    ],
)
def test_string_binding_lets_a_json_body_override_metadata(
    name: str, value: Any, attribute: str, expected: Any
) -> None:
    msg = decode(Received(body=json.dumps({"order_id": "ord-1", name: value}).encode()), None)
    assert getattr(msg, attribute) == expected
    assert (msg.metadata or {})["order_id"] == "ord-1"  # every top-level property is binding data


@pytest.mark.parametrize(
    "body",
    [
        {"DeliveryCount": "x"},
        {"SequenceNumber": "not-a-number"},
        {"ApplicationProperties": "not-an-object"},
        {"EnqueuedTimeUtc": "yesterday"},
    ],
)
def test_string_binding_conversion_failures_fail_the_invocation(body: dict[str, Any]) -> None:
    """The worker's converter refuses the overridden metadata: the invocation fails before user code."""
    with pytest.raises((ValueError, TypeError)):
        decode(Received(body=json.dumps(body).encode()), None)


def test_overrides_skip_arrays_nulls_and_non_objects() -> None:
    assert decode(Received(body=b'{"SessionId": ["x"]}'), None).session_id == "cust-a"
    assert decode(Received(body=b'{"SessionId": null}'), None).session_id == "cust-a"
    assert decode(Received(body=b'[{"SessionId": "x"}]'), None).session_id == "cust-a"
    assert decode(Received(body=b'{"SessionId": "x"'), None).session_id == "cust-a"  # not JSON
    assert decode(Received(body=b'  {"SessionId": "y"}  '), None).session_id == "y"  # trimmed


def test_iso_dates_in_overrides_become_net_date_strings() -> None:
    binding: dict[str, Any] = {}
    apply_binding_data('{"When": "2026-01-02T03:04:05.678Z", "N": 1.5}', binding)
    assert binding == {"When": "01/02/2026 03:04:05", "N": "1.5"}
    # ...which the library's datetime parser does not read: an ISO date override fails the invocation.
    with pytest.raises(ValueError):
        decode(Received(body=b'{"EnqueuedTimeUtc": "2026-01-02T03:04:05Z"}'), None)


def test_net_datetime_text() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert NetDateTime(t).json_text() == "2026-01-02T03:04:05.12"
    assert NetDateTime(t, "utc").json_text() == "2026-01-02T03:04:05.12Z"
    assert NetDateTime(t.replace(microsecond=0), "offset").json_text() == "2026-01-02T03:04:05+00:00"


def test_typed_data_kinds() -> None:
    """GrpcMessageConversionExtensions.ToRpc: bytes, double and the rest as Json.NET JSON; nulls skipped."""
    assert to_typed_data(None) is None
    assert to_typed_data(b"x").WhichOneof("data") == "bytes"
    assert to_typed_data(1.5).WhichOneof("data") == "double"
    typed = to_typed_data({"a": [1]})
    assert (typed.WhichOneof("data"), typed.json) == ("json", '{"a":[1]}')


def test_http_request_and_response_go_through_the_library_converters() -> None:
    req = http_request(
        "get",
        "http://127.0.0.1:7071/api/customers/cust-1/orders?x=1",
        {"X-Custom": "v"},
        {"x": "1"},
        {"customer_id": "cust-1"},
        b"",
    )
    assert isinstance(req, func.HttpRequest)
    assert req.method == "GET" and req.route_params == {"customer_id": "cust-1"}
    assert req.params == {"x": "1"} and req.headers["x-custom"] == "v" and req.get_body() == b""
    from azure_functions_runtime.bindings import meta

    response = func.HttpResponse('{"a":1}', status_code=201, mimetype="application/json")
    returned = meta.to_outgoing_proto("http", response, pytype=func.HttpResponse, protos=protos)
    reply = http_reply(returned)  # what the worker put in InvocationResponse.return_value
    assert reply.status == 201 and reply.body == b'{"a":1}'
    assert ("content-type", "application/json") in reply.headers
    assert http_reply(protos.TypedData(string="plain")).status == 200
    assert http_reply(None).status == 204


def test_timer_request_through_the_converter() -> None:
    last = datetime(2026, 1, 1, 2, 30, tzinfo=UTC)
    request = timer_request("0 30 2 * * *", last, last + timedelta(days=1), past_due=True)
    assert isinstance(request, func.TimerRequest) and request.past_due is True


def test_the_receiver_actions_and_client_objects_are_sent_as_the_host_serializes_them() -> None:
    """Extension 5.x: one message-actions object under four keys, receive actions, the client; Json.NET
    writes public properties only, so actions are `{}` (a session trigger's carry SessionLockedUntil)."""
    from devstack.host.payload import ReceiverObjects

    locked = datetime(2026, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    objects = ReceiverObjects(locked, "ns.servicebus.windows.net", "ns.servicebus.windows.net-0f0e")
    invocation = servicebus_invocation(Received(), "binary", objects)
    sent = {k: json.loads(v.json) for k, v in invocation.metadata.items() if v.WhichOneof("data") == "json"}
    actions = {"SessionLockedUntil": "2026-05-06T07:08:09.123+00:00"}
    for key in ("MessageReceiver", "MessageSession", "MessageActions", "SessionActions"):
        assert sent[key] == actions, key
    assert sent["ReceiveActions"] == {}
    assert sent["Client"] == {
        "FullyQualifiedNamespace": "ns.servicebus.windows.net",
        "IsClosed": False,
        "TransportType": 0,
        "Identifier": "ns.servicebus.windows.net-0f0e",
    }
    # a queue without sessions: the actions object has no public property
    plain = servicebus_invocation(Received(), "binary", ReceiverObjects(None, "ns", "ns-1"))
    assert json.loads(plain.metadata["MessageActions"].json) == {}
    # the function sees them in msg.metadata, as in Azure (the worker's converter, json -> Python)
    msg = servicebus_message(Received(), "binary")
    assert "Client" not in (msg.metadata or {})  # nothing invented when the host did not pass them
    from tests.support.worker_convert import decode

    decoded = decode("serviceBusTrigger", invocation, func.ServiceBusMessage)
    assert decoded.metadata["Client"]["TransportType"] == 0 and decoded.metadata["ReceiveActions"] == {}


def test_a_batch_carries_the_objects_once_not_as_arrays() -> None:
    from devstack.host.payload import ReceiverObjects, servicebus_batch_invocation

    objects = ReceiverObjects(None, "ns", "ns-1")
    invocation = servicebus_batch_invocation([Received(), Received(message_id="ord-1:2")], "binary", objects)
    assert json.loads(invocation.metadata["Client"].json)["Identifier"] == "ns-1"
    assert json.loads(invocation.metadata["SessionActions"].json) == {}
    assert not any(
        k.startswith(("Client", "MessageActions")) and k.endswith("Array") for k in invocation.metadata
    )
