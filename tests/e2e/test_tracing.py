"""Traces from publish to process: publisher -> emulator (real AMQP, real SDK) -> local host running
function_app.py in-process -> store, recorded with the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.host import LocalHost
from orders_cli.traffic import PublishPlan, generate_messages
from shared import tracing
from tests.support.e2e import local_host, publish

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _queue(fresh_queue: Any) -> str:
    return fresh_queue(requires_session=True, requires_duplicate_detection=True, max_delivery_count=10)


def _run_host(emulator: Any, queue: str, tmp_path: Path) -> LocalHost:
    host = local_host(emulator, queue, tmp_path)
    host.run_until_idle(1.0, timeout=90)
    return host


def _by_name(finished: Any, name: str) -> list[Any]:
    return [s for s in finished if s.name == name]


def _log_records(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    return {
        str(getattr(r, "message_id", "")): r
        for r in caplog.records
        if r.name == "orders.processing" and getattr(r, "outcome", None) not in (None, "retry")
    }


def test_each_message_is_one_trace_from_publisher_span_to_processing_span(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="orders.processing")
    queue = _queue(fresh_queue)
    messages = generate_messages(PublishPlan(customers=2, orders_per_customer=1, poison=2, seed=5))
    publish(servicebus_emulator, queue, messages)
    _run_host(servicebus_emulator, queue, tmp_path)

    finished = spans.get_finished_spans()
    published = {s.attributes[tracing.ATTR_MESSAGE_ID]: s for s in _by_name(finished, tracing.PUBLISH_SPAN)}
    processed = {s.attributes[tracing.ATTR_MESSAGE_ID]: s for s in _by_name(finished, tracing.PROCESS_SPAN)}
    assert set(published) == set(processed) == {m.message_id for m in messages}
    logs = _log_records(caplog)
    expected = {m.message_id: m for m in messages}

    trace_ids = set()
    for message_id, span in processed.items():
        producer = published[message_id]
        # one trace: the processing span is the publisher span's child
        assert span.context.trace_id == producer.context.trace_id
        assert span.parent is not None and span.parent.span_id == producer.context.span_id
        trace_ids.add(span.context.trace_id)
        attrs = span.attributes
        m = expected[message_id]
        assert attrs[tracing.ATTR_SESSION_ID] == m.session_id
        assert attrs[tracing.ATTR_DELIVERY_COUNT] == 1
        assert isinstance(attrs[tracing.ATTR_SEQUENCE_NUMBER], int)
        assert attrs[tracing.ATTR_OUTCOME] == m.expected_outcome
        assert attrs.get(tracing.ATTR_REASON) == m.expected_reason
        # store calls are children of the processing span
        children = [s for s in finished if s.parent is not None and s.parent.span_id == span.context.span_id]
        assert any(c.name == "orders store commit" for c in children), message_id
        # the per-message log line carries the span's ids
        record = logs[message_id]
        assert record.trace_id == f"{span.context.trace_id:032x}"
        assert record.span_id == f"{span.context.span_id:016x}"
    assert len(trace_ids) == len(messages), "each message is its own trace"


def test_a_message_without_trace_context_starts_a_new_trace(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from azure.servicebus import ServiceBusClient, ServiceBusMessage

    caplog.set_level("INFO", logger="orders.processing")
    queue = _queue(fresh_queue)
    [message] = generate_messages(PublishPlan(customers=1, orders_per_customer=1, seed=3))[:1]
    with (
        ServiceBusClient.from_connection_string(servicebus_emulator.connection_string) as client,
        client.get_queue_sender(queue) as sender,
    ):  # the raw SDK, no tracing: no traceparent / Diagnostic-Id on the message
        sender.send_messages(
            ServiceBusMessage(message.body, session_id=message.session_id, message_id=message.message_id)
        )
    _run_host(servicebus_emulator, queue, tmp_path)

    [span] = _by_name(spans.get_finished_spans(), tracing.PROCESS_SPAN)
    assert span.parent is None
    assert span.context.trace_id != 0
    assert span.attributes[tracing.ATTR_OUTCOME] == "applied"
    record = _log_records(caplog)[message.message_id]
    assert record.trace_id == f"{span.context.trace_id:032x}"
