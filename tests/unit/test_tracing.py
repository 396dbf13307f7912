"""shared.tracing without a broker: trace context in application properties, spans, log ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orders_cli.sender import with_trace_context
from orders_cli.traffic import OutgoingMessage, PublishPlan, generate_messages
from shared import tracing
from shared.envelope import SessionEnvelope
from shared.workflows import ORDERS

REPO_ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (the tracer provider is set once per process)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_traceparent_property_is_continued_and_diagnostic_id_is_the_fallback(spans: Any) -> None:
    variants: list[dict[Any, Any]] = [
        {"traceparent": TRACEPARENT},
        {"Diagnostic-Id": TRACEPARENT},
        {b"traceparent": TRACEPARENT},
    ]
    for props in variants:
        with tracing.message_span(SessionEnvelope(b"{}", "cust-1", "m-1", application_properties=props)) as s:
            assert s.log_fields()["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    for span in spans.get_finished_spans():
        assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


@pytest.mark.parametrize(
    "props", [{}, {"traceparent": "garbage"}, {"traceparent": "00-" + "0" * 32 + "-1-01"}]
)
def test_no_or_malformed_trace_context_starts_a_new_trace(spans: Any, props: dict[str, Any]) -> None:
    envelope = SessionEnvelope(
        b"{}", "cust-1", "m-1", delivery_count=3, sequence_number=7, application_properties=props
    )
    with tracing.message_span(envelope) as s:
        s.record(
            {"outcome": "quarantined", "reason": "malformed-json", "order_id": None}, ORDERS.span_attributes()
        )
    [span] = spans.get_finished_spans()
    assert span.parent is None and span.context.trace_id != 0
    assert span.attributes[tracing.ATTR_DELIVERY_COUNT] == 3
    assert span.attributes[tracing.ATTR_SEQUENCE_NUMBER] == 7
    assert span.attributes[tracing.ATTR_OUTCOME] == "quarantined"
    assert span.attributes[tracing.ATTR_REASON] == "malformed-json"
    assert "orders.order_id" not in span.attributes


def test_publisher_writes_one_new_trace_per_message_into_its_properties(spans: Any) -> None:
    messages = generate_messages(PublishPlan(customers=1, orders_per_customer=1))
    traced = with_trace_context(messages, "q")
    parents = [m.application_properties["traceparent"] for m in traced]
    assert [m.application_properties["Diagnostic-Id"] for m in traced] == parents
    assert len({p.split("-")[1] for p in parents}) == len(messages)  # one trace each
    finished = spans.get_finished_spans()
    assert [s.attributes[tracing.ATTR_MESSAGE_ID] for s in finished] == [m.message_id for m in messages]
    assert all(f"{s.context.span_id:016x}" == p.split("-")[2] for s, p in zip(finished, parents, strict=True))
    assert "traceparent" not in messages[0].application_properties  # the plan itself stays untraced


def test_a_replayed_message_gets_a_new_trace_linked_to_the_old_one(spans: Any) -> None:
    [message] = generate_messages(PublishPlan(customers=1, orders_per_customer=1))[:1]
    old = OutgoingMessage(**{**_fields(message), "application_properties": {"traceparent": TRACEPARENT}})
    [replayed] = with_trace_context([old], "q")
    assert replayed.application_properties["traceparent"] != TRACEPARENT
    [span] = spans.get_finished_spans()
    assert [f"{link.context.trace_id:032x}" for link in span.links] == ["0af7651916cd43dd8448eb211c80319c"]


def test_inject_trace_properties_without_a_current_span_writes_nothing() -> None:
    assert tracing.inject_trace_properties({"a": 1}) == {"a": 1}


def test_store_calls_are_child_spans_and_reach_the_real_store(spans: Any) -> None:
    from shared.store.memory import InMemoryOrderStore

    store = tracing.traced_store(InMemoryOrderStore())
    with tracing.message_span(SessionEnvelope(b"{}", "cust-1", "m-1")):
        assert store.get_ledger("cust-1", "ord-1") is None
    store_span, message_span = spans.get_finished_spans()
    assert store_span.name == "orders store get_ledger"
    assert store_span.parent.span_id == message_span.context.span_id


def test_a_cached_ledger_read_is_no_round_trip_and_gets_no_span(spans: Any, tmp_path: Path) -> None:
    from shared.engine.records import SessionChanges
    from shared.order_workflow import ORDERS
    from shared.store.sqlite import SqliteOrderStore

    sqlite = SqliteOrderStore(tmp_path / "orders.db", codec=ORDERS)
    try:
        store = tracing.traced_store(sqlite)
        ledger = ORDERS.new_ledger("cust-1", "ord-1", ORDERS.initial_state("cust-1", "ord-1"))
        with tracing.message_span(SessionEnvelope(b"{}", "cust-1", "m-1")):
            assert store.get_ledger("cust-1", "ord-1") is None  # a read of the file
            store.commit(SessionChanges("cust-1", ledger=ledger))
            assert store.get_ledger("cust-1", "ord-1") is not None  # from the cache the commit filled
        names = [span.name for span in spans.get_finished_spans()]
        assert names == ["orders store get_ledger", "orders store commit", tracing.PROCESS_SPAN]
    finally:
        sqlite.close()


def test_without_an_exporter_ids_are_logged_but_no_span_is_recorded() -> None:
    """The default with no exporter: the processing span continues the message's trace (its ids are on
    the log line), nothing is recorded, store calls make no spans; a publisher's span stays sampled, so
    a function that does export records the trace of a message sent by a tool that does not."""
    code = (
        "import os\n"
        "for k in ('OTEL_SDK_DISABLED', 'OTEL_TRACES_EXPORTER', 'OTEL_TRACES_SAMPLER',\n"
        "          'OTEL_EXPORTER_OTLP_ENDPOINT', 'APPLICATIONINSIGHTS_CONNECTION_STRING'):\n"
        "    os.environ.pop(k, None)\n"
        "from opentelemetry import trace\n"
        "from shared import tracing\n"
        "from shared.envelope import SessionEnvelope\n"
        "from shared.store.memory import InMemoryOrderStore\n"
        "calls = []\n"
        "store = tracing.traced_store(InMemoryOrderStore())\n"
        f"props = {{'traceparent': '{TRACEPARENT}'}}\n"
        "with tracing.message_span(SessionEnvelope(b'{}', 's', 'm', application_properties=props)) as s:\n"
        "    ids = s.log_fields()\n"
        "    assert not s.span.is_recording()\n"
        "    assert store.get_ledger('s', 'o') is None\n"
        "    assert not trace.get_current_span().is_recording()\n"
        "assert ids['trace_id'] == '0af7651916cd43dd8448eb211c80319c', ids\n"
        "assert len(ids['span_id']) == 16 and ids['span_id'] != 'b7ad6b7169203331', ids\n"
        "sent = {}\n"
        "with tracing.publish_span(session_id='s', message_id='m', queue='q', properties=sent):\n"
        "    pass\n"
        "assert int(sent['traceparent'][-2:], 16) & 1, sent  # the sampled flag\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "exporter = InMemorySpanExporter()\n"
        "tracing.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "with tracing.message_span(SessionEnvelope(b'{}', 's', 'm', application_properties=sent)):\n"
        "    store.get_ledger('s', 'o')\n"
        "names = [span.name for span in exporter.get_finished_spans()]\n"
        "assert names == ['orders store get_ledger', tracing.PROCESS_SPAN], names\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr


def test_disabled_tracing_adds_nothing_and_cold_import_stays_free_of_opentelemetry() -> None:
    code = (
        "import os, sys; os.environ['OTEL_SDK_DISABLED'] = 'true'\n"
        "import function_app\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'imported at cold start'\n"
        "from shared import tracing\n"
        "from shared.envelope import SessionEnvelope\n"
        "with tracing.message_span(SessionEnvelope(b'', 's', 'm')) as s: assert s.log_fields() == {}\n"
        "assert tracing.inject_trace_properties({}) == {}\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)


def _fields(message: OutgoingMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in OutgoingMessage.__dataclass_fields__}


def _exporters(processors: list[Any]) -> list[Any]:
    found = []
    for processor in processors:
        exporter = getattr(processor, "span_exporter", None) or getattr(processor, "_exporter", None)
        if exporter is None:  # BatchSpanProcessor keeps it on its batch processor
            exporter = processor._batch_processor._exporter
        found.append(exporter)
    return found


def test_exporters_come_from_the_standard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    for name in (
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
    ):
        monkeypatch.delenv(name, raising=False)
    assert tracing._processors_from_environment() == []  # spans (and log ids) without any exporter
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    [console] = _exporters(tracing._processors_from_environment())
    assert isinstance(console, ConsoleSpanExporter)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing._processors_from_environment() == []
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    processors = tracing._processors_from_environment()
    try:
        assert [type(e) for e in _exporters(processors)] == [OTLPSpanExporter]
    finally:
        for processor in processors:
            processor.shutdown()


def test_application_insights_ingestion_uses_the_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local auth is disabled on the component (infra/modules/monitoring.bicep): the exporter must
    authenticate with the identity named in APPLICATIONINSIGHTS_AUTHENTICATION_STRING, as the
    Bicep sets it."""
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/",
    )
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD",
    )
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")  # no telemetry about telemetry
    processors = tracing._processors_from_environment()
    try:
        [exporter] = _exporters(processors)
        assert isinstance(exporter, AzureMonitorTraceExporter)
        assert isinstance(exporter._credential, ManagedIdentityCredential)
    finally:
        for processor in processors:
            processor.shutdown()


def test_without_opentelemetry_messages_are_still_processed() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None  # import opentelemetry -> ImportError\n"
        "from shared.envelope import SessionEnvelope\n"
        "from shared.service import OrderService\n"
        "from shared.settings import AppSettings\n"
        "from shared.store.memory import InMemoryOrderStore\n"
        "from orders_cli.sender import with_trace_context\n"
        "from orders_cli.traffic import PublishPlan, generate_messages\n"
        "from tests.support.builders import body\n"
        "service = OrderService(AppSettings(), InMemoryOrderStore())\n"
        "result = service.handle(SessionEnvelope(body('order.placed', 1), 'cust-1', 'm-1'))\n"
        "assert result.outcome.value == 'applied', result\n"
        "[m] = with_trace_context(generate_messages(PublishPlan(1, 1))[:1], 'q')\n"
        "assert 'traceparent' not in m.application_properties\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert "tracing disabled: OpenTelemetry is not importable" in done.stderr
