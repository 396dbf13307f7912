"""Traces from publish to process: W3C trace context carried in each message's application properties.

The publisher (and `orders quarantine replay`) starts a producer span per message and writes its context
as `traceparent` (and `Diagnostic-Id`, the name the Service Bus SDKs use) into the message's application
properties. The function continues that trace itself from those properties -- it does not rely on the
Functions host, whose OpenTelemetry mode loses the context for session triggers
(Azure/azure-functions-host#11734) -- with one consumer span per message and a child span per store
round trip. A message without trace context starts a new trace.

Exporters come from the environment, nothing from code: APPLICATIONINSIGHTS_CONNECTION_STRING -> Azure
Monitor; OTEL_TRACES_EXPORTER=console (JSON lines on stderr) and/or otlp (or any OTEL_EXPORTER_OTLP_*
endpoint) -> those; OTEL_SDK_DISABLED=true -> no tracing at all. With no exporter (and no processor added
with `add_span_processor`), span ids are still made, continued from the message and logged, but nothing is
recorded: spans no one receives would be ~80 us of CPU per message (bench/bench_tracing.py). Store calls are
child spans only of a recorded span. OpenTelemetry is imported on first use, never at `import function_app`
(cold start). See docs/operations.md "Traces".
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.envelope import SessionEnvelope
    from shared.store.base import OrderStore

log = logging.getLogger("orders.tracing")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
DIAGNOSTIC_ID = (
    "Diagnostic-Id"  # what azure-servicebus writes and reads (azure/servicebus/_common/tracing.py)
)
TRACER_NAME = "orders"

PUBLISH_SPAN = "orders publish"
PROCESS_SPAN = "orders process"

# Span attributes of the processing span (docs/operations.md lists them; the workbook does not need them).
ATTR_SESSION_ID = "messaging.servicebus.session_id"
ATTR_MESSAGE_ID = "messaging.message.id"
ATTR_DELIVERY_COUNT = "messaging.servicebus.message.delivery_count"
ATTR_SEQUENCE_NUMBER = "messaging.servicebus.message.sequence_number"
ATTR_OUTCOME = "orders.outcome"
ATTR_REASON = "orders.reason"
# Which log-line fields are copied onto the span when the outcome is known, and under which attribute,
# is the workflow binding's (shared/workflows.py `span_attributes`: `orders.customer_id`, ... for orders;
# ids and labels only, never payload contents).

_lock = threading.Lock()
_configured = False


_unavailable = False  # set once if OpenTelemetry cannot be imported: tracing never stops processing


def enabled() -> bool:
    """False when OTEL_SDK_DISABLED is true (the standard switch): no spans, no trace ids in logs.
    Read from the environment on every call (cheap enough; tests and the CLI change it)."""
    if _unavailable:
        return False
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() not in _DISABLED


_DISABLED = frozenset({"true", "1", "yes"})


def configure(service_name: str) -> None:
    """Install an SDK TracerProvider with the exporters the environment asks for, once per process.

    A provider someone else installed (a test's in-memory exporter, a host's distro) is kept as it is:
    the first caller's service name wins."""
    global _configured
    if _configured or not enabled():
        return
    with _lock:
        if _configured:
            return
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            global _gate
            name = os.environ.get("OTEL_SERVICE_NAME") or service_name
            processors = _processors_from_environment()
            sampler: Any = None  # OTEL_TRACES_SAMPLER, when the operator set one, decides alone
            if not os.environ.get("OTEL_TRACES_SAMPLER", "").strip():
                _gate = _RecordWhenExported(exporting=bool(processors))
                sampler = _gate
            provider = TracerProvider(resource=Resource.create({"service.name": name}), sampler=sampler)
            for processor in processors:
                provider.add_span_processor(processor)
            trace.set_tracer_provider(provider)
        _configured = True


def add_span_processor(processor: Any) -> None:
    """Attach a span processor (a test's in-memory exporter, an extra exporter) to the provider this
    module installed, and record spans from now on (until then, with no exporter, only ids are made)."""
    from opentelemetry import trace

    configure("orders-processor")
    provider = trace.get_tracer_provider()
    provider.add_span_processor(processor)  # type: ignore[attr-defined]
    if _gate is not None:
        _gate.exporting = True


class _RecordWhenExported:
    """The SDK's default sampler (parent-based, always on) while something receives spans. Otherwise the
    processing and store spans are dropped: each still gets a span id in the trace it continues (the log
    line's trace_id/span_id), but no attributes, events or processors run for it. Producer spans are
    always sampled, so a message published by a process without an exporter still carries a sampled
    `traceparent` and the function that receives it (with Application Insights) records its trace.
    A Sampler of the OpenTelemetry SDK (duck-typed, so this module imports nothing at cold start)."""

    def __init__(self, *, exporting: bool) -> None:
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
        from opentelemetry.trace import SpanKind

        self.exporting = exporting
        self._on = ParentBased(ALWAYS_ON)
        self._off = ALWAYS_OFF
        self._producer = SpanKind.PRODUCER

    def should_sample(
        self, parent_context: Any, trace_id: int, name: str, kind: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        sampler = self._on if self.exporting or kind == self._producer else self._off
        return sampler.should_sample(parent_context, trace_id, name, kind, *args, **kwargs)

    def get_description(self) -> str:
        return f"RecordWhenExported{{{self._on.get_description() if self.exporting else 'no exporter'}}}"


_gate: _RecordWhenExported | None = None


def _processors_from_environment() -> list[Any]:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    processors: list[Any] = []
    connection = os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if connection:
        try:
            from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
        except ImportError as exc:  # pragma: no cover - a deployed app has it (requirements.txt)
            log.warning("Application Insights traces disabled: %s", exc)
        else:
            processors.append(BatchSpanProcessor(AzureMonitorTraceExporter(connection_string=connection)))
    wanted = {x.strip().lower() for x in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if x.strip()}
    if any(k in os.environ for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        wanted.add("otlp")
    if "none" in wanted:
        return processors
    for kind in sorted(wanted):
        if kind == "console":
            processors.append(SimpleSpanProcessor(json_lines_exporter(sys.stderr)))
        elif kind == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                log.warning(
                    "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http "
                    "(installed by `make install`; not deployed)"
                )
            else:
                processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported here (console, otlp, none)", kind)
    return processors


def json_lines_exporter(out: Any) -> Any:
    """The SDK's console exporter, one compact JSON object per span and line (grep-able, jq-able)."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")


_tracer_cache: Any = None
_propagator_cache: Any = None


def _tracer(service_name: str) -> Any:
    """The app's tracer (made once: `get_tracer` builds a new object per call), or None when
    OpenTelemetry is not installed (logged once; processing goes on without spans)."""
    global _tracer_cache, _unavailable
    if _tracer_cache is None:
        try:
            configure(service_name)
            from opentelemetry import trace
        except ImportError as exc:
            _unavailable = True
            log.warning("tracing disabled: OpenTelemetry is not importable (%s)", exc)
            return None
        _tracer_cache = trace.get_tracer(TRACER_NAME)
    return _tracer_cache


def _propagator() -> Any:
    global _propagator_cache
    if _propagator_cache is None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        _propagator_cache = TraceContextTextMapPropagator()
    return _propagator_cache


# --------------------------------------------------------------------------------------------------
# producer side: publisher, quarantine replay, dlq resubmit


def extract_context(properties: Mapping[Any, Any] | None) -> Any:
    """The OpenTelemetry context in a message's application properties (`traceparent`, else
    `Diagnostic-Id`), or None when there is none or it is malformed."""
    if not properties:
        return None
    carrier: dict[str, str] = {}
    for key, value in properties.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(text, str):
            carrier[name.lower()] = text
    traceparent = carrier.get(TRACEPARENT) or carrier.get(DIAGNOSTIC_ID.lower())
    if not traceparent:
        return None
    from opentelemetry import trace

    headers = {TRACEPARENT: traceparent}
    if carrier.get(TRACESTATE):
        headers[TRACESTATE] = carrier[TRACESTATE]
    context = _propagator().extract(headers)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def inject_trace_properties(properties: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Write the current span's context into `properties` as `traceparent`, `Diagnostic-Id` (and
    `tracestate`); returns `properties`. Nothing is written when there is no valid current span."""
    if not enabled():
        return properties
    headers: dict[str, str] = {}
    _propagator().inject(headers)
    if headers.get(TRACEPARENT):
        properties[TRACEPARENT] = headers[TRACEPARENT]
        properties[DIAGNOSTIC_ID] = headers[TRACEPARENT]
        if headers.get(TRACESTATE):
            properties[TRACESTATE] = headers[TRACESTATE]
    return properties


@contextmanager
def publish_span(
    *,
    session_id: str,
    message_id: str,
    queue: str,
    properties: MutableMapping[str, Any],
    service_name: str = "orders-publisher",
) -> Iterator[None]:
    """A producer span for one outgoing message; its context is injected into `properties`.

    A message that already carries trace context (a replay of a quarantined message) gets a new trace
    that links to the old one, so both can be found from either."""
    tracer = _tracer(service_name) if enabled() else None
    if tracer is None:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind

    previous = extract_context(properties)
    links = [Link(trace.get_current_span(previous).get_span_context())] if previous is not None else []
    with tracer.start_as_current_span(
        PUBLISH_SPAN,
        kind=SpanKind.PRODUCER,
        links=links,
        attributes={
            "messaging.system": "servicebus",
            "messaging.operation.type": "send",
            "messaging.destination.name": queue,
            ATTR_SESSION_ID: session_id,
            ATTR_MESSAGE_ID: message_id,
        },
    ):
        inject_trace_properties(properties)
        yield


# --------------------------------------------------------------------------------------------------
# consumer side: the function


class MessageSpan:
    """The processing span of one message: its ids for the log line, the outcome onto the span."""

    def __init__(self, span: Any) -> None:
        self.span = span
        self._ids: dict[str, str] | None = None

    def log_fields(self) -> dict[str, str]:
        """`trace_id` and `span_id` (hex, as Application Insights shows them) for the log line."""
        if self._ids is None:
            context = self.span.get_span_context() if self.span is not None else None
            self._ids = (
                {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
                if context is not None and context.is_valid
                else {}
            )
        return dict(self._ids)

    def record(self, fields: Mapping[str, Any], attributes: Mapping[str, str]) -> None:
        """Copy the log line's result fields onto the span: `attributes` maps a log field to its span
        attribute (the workflow binding's `span_attributes()`, e.g. `orders.outcome`)."""
        if self.span is None or not self.span.is_recording():
            return
        self.span.set_attributes(
            {
                attribute: value
                for key, attribute in attributes.items()
                if isinstance(value := fields.get(key), str | int | float | bool)
            }
        )
        if fields.get("outcome") == "retry":
            from opentelemetry.trace import Status, StatusCode

            self.span.set_status(Status(StatusCode.ERROR, str(fields.get("error") or "retry")))


@contextmanager
def message_span(envelope: SessionEnvelope, service_name: str = "orders-processor") -> Iterator[MessageSpan]:
    """The consumer span of one message, continuing the trace in its application properties."""
    tracer = _tracer(service_name) if enabled() else None
    if tracer is None:
        yield MessageSpan(None)
        return
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "messaging.system": "servicebus",
        "messaging.operation.type": "process",
        ATTR_SESSION_ID: envelope.session_id,
        ATTR_MESSAGE_ID: envelope.message_id,
        ATTR_DELIVERY_COUNT: envelope.delivery_count,
    }
    if envelope.sequence_number is not None:
        attributes[ATTR_SEQUENCE_NUMBER] = envelope.sequence_number
    span = tracer.start_span(
        PROCESS_SPAN,
        context=extract_context(envelope.application_properties),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
    message = MessageSpan(span)
    bound = _bind_log_ids(message.log_fields())
    try:
        if span.is_recording():  # the current span while processing: store calls become its children
            from opentelemetry.trace import use_span

            with use_span(span, end_on_exit=True):
                yield message
        else:  # dropped (nothing exports): its ids are all there is, nothing needs it to be current
            yield message
    finally:
        _unbind_log_ids(bound)


def _bind_log_ids(ids: Mapping[str, str]) -> list[tuple[Any, Any]]:
    """Make the JSON log line's top-level `trace_id`/`span_id` this message's span, not the host
    invocation's: azure-functions-logging's context filter writes them from its context variables
    (azure_functions_logging/_context.py, ContextFilter), overriding any `extra` of the same name."""
    if not ids:
        return []
    try:  # a private module: if a release moves it, the line keeps the host's ids instead
        from azure_functions_logging import _context

        variables = ((_context.trace_id_var, ids["trace_id"]), (_context.span_id_var, ids["span_id"]))
    except (ImportError, AttributeError):  # pragma: no cover
        return []
    return [(var, var.set(value)) for var, value in variables]


def _unbind_log_ids(bound: list[tuple[Any, Any]]) -> None:
    for var, token in reversed(bound):
        var.reset(token)


class TracedStore:
    """An OrderStore whose per-message calls are child spans (`orders store commit`, ...) of the current
    span, when that span is recorded (no child spans under a dropped one: nothing would see them). A
    ledger read the store answers from its cache (`answers_from_cache`, where a store has one) is no
    round trip and gets no span: a recorded span costs ~20-50 us (bench/bench_single_floor.py).

    Methods are looked up on the wrapped store at call time, so replacing one on it (tests) still takes
    effect; everything else is the wrapped store's."""

    def __init__(self, store: OrderStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_ledger(self, session_id: str, stream_key: str) -> Any:
        cached = getattr(self._store, "answers_from_cache", None)
        if self._recording() and not (cached is not None and cached(session_id, stream_key)):
            return self._traced("get_ledger", session_id, stream_key)
        return self._store.get_ledger(session_id, stream_key)

    def get_parked(self, session_id: str, stream_key: str, sequence: int) -> Any:
        return self._call("get_parked", session_id, stream_key, sequence)

    def commit(self, changes: Any) -> None:
        self._call("commit", changes)

    def commit_batch(self, session_id: str, units: Any) -> None:
        self._call("commit_batch", session_id, units)

    def _call(self, name: str, *args: Any) -> Any:
        return self._traced(name, *args) if self._recording() else getattr(self._store, name)(*args)

    @staticmethod
    def _recording() -> bool:
        """Whether the current span is recorded (cheap checks first: tracing never used, nothing exports)."""
        if _tracer_cache is None or (_gate is not None and not _gate.exporting):
            return False
        from opentelemetry import trace

        return bool(trace.get_current_span().is_recording())

    def _traced(self, name: str, *args: Any) -> Any:
        from opentelemetry.trace import SpanKind

        with _tracer_cache.start_as_current_span(
            _STORE_SPAN_NAMES[name], kind=SpanKind.CLIENT, attributes=_STORE_SPAN_ATTRIBUTES[name]
        ):
            return getattr(self._store, name)(*args)


_TRACED_CALLS = ("get_ledger", "get_parked", "commit", "commit_batch")
_STORE_SPAN_NAMES = {name: f"orders store {name}" for name in _TRACED_CALLS}
_STORE_SPAN_ATTRIBUTES = {name: {"db.operation.name": name} for name in _TRACED_CALLS}


def traced_store(store: OrderStore) -> OrderStore:
    """`store` with child spans per call, or `store` itself when tracing is disabled."""
    if not enabled():
        return store
    return TracedStore(store)  # type: ignore[return-value,unused-ignore]
