"""cardinality=many: the local host's batch input, built as the Functions host builds it (`...Array` trigger
metadata, the bodies as one collection) and decoded by azure.functions' own ServiceBusMessageInConverter."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from devstack.host.payload import servicebus_batch_binding_data, servicebus_batch_invocation
from shared.functions_adapter import envelopes_from_messages
from tests.support.worker_convert import servicebus_messages
from tests.unit.test_host_payload import ENQUEUED, Received


def batch(n: int = 3) -> list[Received]:
    return [
        Received(
            body=f'{{"order_id":"ord-{i}"}}'.encode(),
            message_id=f"ord-{i}:1",
            sequence_number=100 + i,
            delivery_count=i,  # AMQP: prior attempts
            enqueued_time_utc=ENQUEUED + timedelta(seconds=i),
            application_properties={b"n": i},
        )
        for i in range(n)
    ]


def test_binding_data_has_one_array_per_member_as_the_extension_5x_sends() -> None:
    data = servicebus_batch_binding_data(batch())
    for name in (
        "MessageIdArray",
        "SessionIdArray",
        "DeliveryCountArray",
        "SequenceNumberArray",
        "EnqueuedTimeUtcArray",
        "ApplicationPropertiesArray",
        "UserPropertiesArray",
        "LockTokenArray",
        "ContentTypeArray",
        "CorrelationIdArray",
        "SubjectArray",
        "LabelArray",
    ):
        assert len(data[name].values) == 3, name
    assert data["MessageIdArray"].values == ["ord-0:1", "ord-1:1", "ord-2:1"]
    assert data["DeliveryCountArray"].values == [1, 2, 3]  # .NET DeliveryCount: AMQP count + 1


def test_the_converter_builds_the_list_the_function_receives() -> None:
    received = batch()
    invocation = servicebus_batch_invocation(received, "binary")
    kind = {name: typed.WhichOneof("data") for name, typed in invocation.metadata.items()}
    assert invocation.data.WhichOneof("data") == "collection_bytes"
    assert kind["MessageIdArray"] == "collection_string"
    assert kind["SequenceNumberArray"] == "collection_sint64"
    assert kind["DeliveryCountArray"] == "json"  # int[]: no typed collection

    msgs = servicebus_messages(received, "binary")
    assert [m.get_body() for m in msgs] == [r.body for r in received]
    assert [m.message_id for m in msgs] == ["ord-0:1", "ord-1:1", "ord-2:1"]
    assert [m.session_id for m in msgs] == ["cust-a"] * 3
    assert [m.sequence_number for m in msgs] == [100, 101, 102]
    assert [m.delivery_count for m in msgs] == [1, 2, 3]
    assert [m.application_properties for m in msgs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    enqueued = [m.enqueued_time_utc for m in msgs]
    assert [e.replace(tzinfo=UTC) if e and not e.tzinfo else e for e in enqueued] == [
        ENQUEUED + timedelta(seconds=i) for i in range(3)
    ]


def test_string_triggers_get_the_bodies_as_strings() -> None:
    msgs = servicebus_messages(batch(2), "string")
    assert [m.get_body() for m in msgs] == [b'{"order_id":"ord-0"}', b'{"order_id":"ord-1"}']


def test_null_strings_shift_the_host_arrays_and_the_app_drops_what_it_cannot_trust() -> None:
    """The host leaves null/empty strings out of string[] metadata (collection_string): a message without a
    content type makes every later message's ContentType wrong. The app's adapter notices the short array
    and keeps no content type for the batch instead of a wrong one; ids stay exact."""
    received = batch()
    received[0] = replace(received[0], content_type=None, correlation_id=None)
    received[2] = replace(received[2], content_type="text/plain")
    msgs = servicebus_messages(received, "binary")
    assert [m.content_type for m in msgs] == ["application/json", "text/plain", None]  # shifted, as in Azure
    envelopes = envelopes_from_messages(msgs)
    assert [e.content_type for e in envelopes] == [None, None, None]
    assert [e.correlation_id for e in envelopes] == [None, None, None]
    assert [e.message_id for e in envelopes] == ["ord-0:1", "ord-1:1", "ord-2:1"]
    assert [e.delivery_count for e in envelopes] == [1, 2, 3]
    whole = envelopes_from_messages(servicebus_messages(batch(), "binary"))
    assert [e.content_type for e in whole] == ["application/json"] * 3


@pytest.mark.parametrize("n", [1, 100])
def test_batch_sizes(n: int) -> None:
    msgs = servicebus_messages(batch(n), "binary")
    assert len(msgs) == n and msgs[-1].message_id == f"ord-{n - 1}:1"
    assert isinstance(msgs[0].enqueued_time_utc, datetime)
