"""The app's runtime: settings, store and processor built once per worker, plus the per-message
report (one structured log line). `function_app.py` and the local host call into this.

The engine is bound here to the workflow ORDERS_WORKFLOW selects (shared/workflows.py), and the engine's
generic result becomes that workflow's log line: its field names (customer_id, order_id, order_state for
orders) and span attributes come from the binding, never from this file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from shared.settings import AppSettings
from shared.store import retry
from shared.store.base import OrderStore, TransientStoreError
from shared.store.circuit import StoreCircuit
from shared.workflows import GENERIC_LOG_FIELDS, ORDERS, WorkflowBinding

if TYPE_CHECKING:  # the processor (pydantic, the contract) loads on the first message, not at cold start
    from shared.engine.processor import ProcessingResult
    from shared.envelope import SessionEnvelope
    from shared.tracing import MessageSpan

T = TypeVar("T")
log = logging.getLogger("orders.processing")


def message_log_fields(binding: WorkflowBinding) -> tuple[str, ...]:
    """The fields every per-message log line of this workflow carries (the runbook's KQL relies on them)."""
    at = GENERIC_LOG_FIELDS.index("sequence")
    return (*GENERIC_LOG_FIELDS[:at], binding.session_field, binding.stream_field, *GENERIC_LOG_FIELDS[at:])


# The order workflow's (the default): customer_id and order_id between lag_ms and sequence.
MESSAGE_LOG_FIELDS: tuple[str, ...] = message_log_fields(ORDERS)
# A processed message's line also has `parked_steps` (steps its stream holds parked after it): the stuck
# alert (infra/modules/alerts.bicep) and the workbook read when a gap opened and closed from it.
# Plus `trace_id` and `span_id` of the message's span (shared/tracing.py): the JSON formatter writes
# them at the top of the line, next to `invocation_id`, not under "extra".


class OrderService:
    def __init__(
        self,
        settings: AppSettings,
        store: OrderStore,
        *,
        retry_policy: retry.RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        binding: WorkflowBinding | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.binding = binding or settings.binding()
        self.log_fields = message_log_fields(self.binding)
        self._span_attributes = self.binding.span_attributes()
        self._step_message = self.binding.log_message + " %s"
        self._retry_message = self.binding.log_message + " will be retried: store failed"
        self.retry_policy = retry_policy or retry.RetryPolicy.for_budget(settings.store_retry_seconds)
        self._sleep = sleep  # both injectable so tests run the back-off on a fake clock
        self._clock = clock
        # One per service, i.e. per worker process and store: every session's invocation waits on it.
        self.circuit = StoreCircuit(
            self.retry_policy, clock=clock, sleep=None if sleep is time.sleep else sleep
        )
        from shared.engine.processor import StreamProcessor
        from shared.tracing import traced_store

        workflow = self.binding.load()
        self.processor = StreamProcessor(traced_store(store), workflow, park_limit=settings.park_limit)

    def handle(self, envelope: SessionEnvelope) -> ProcessingResult:
        """Process one message in its own span, continuing the publisher's trace (shared/tracing.py)."""
        from shared import tracing

        with tracing.message_span(envelope) as span:
            return self._process_and_log(envelope, span)

    def _process_and_log(self, envelope: SessionEnvelope, span: MessageSpan) -> ProcessingResult:
        """Process one message and log its outcome. A transient store failure is retried here, with
        back-off, for up to settings.store_retry_seconds (evicting the session's cached state, and
        reopening the store after an outage, between attempts); if it persists it is logged once and
        re-raised, so the trigger fails and the host abandons the message for redelivery."""
        started = time.perf_counter()
        fields = self._broker_fields(envelope) | span.log_fields()
        burst = retry.RetryBurst()
        try:
            result = self._retrying(lambda: self.processor.process(envelope), [envelope.session_id], burst)
        except TransientStoreError as exc:
            fields |= self._retry_fields(exc, burst, started, envelope)
            span.record(fields, self._span_attributes)
            log.warning(self._retry_message, extra=fields)
            raise
        _log_recovered(burst, fields)
        fields |= self._result_fields(result) | {"duration_ms": _ms_since(started)}
        span.record(fields, self._span_attributes)
        log.info(self._step_message, result.outcome.value, extra=fields)
        return result

    def handle_batch(self, envelopes: Sequence[SessionEnvelope]) -> list[ProcessingResult]:
        """Process one session's batch (cardinality=many): one outcome and one log line per message, one
        store commit. A transient store failure re-runs the whole batch (its decisions are re-made from
        what the store holds) within the same retry budget as `handle`; if it persists, a `retry` line is
        logged per message and the error re-raised: the host abandons the whole batch for redelivery."""
        from shared import tracing
        from shared.engine.batch import process_batch

        started = time.perf_counter()
        fields = [self._broker_fields(envelope) for envelope in envelopes]
        batch = {"batch_size": len(envelopes)}
        sessions = sorted({envelope.session_id for envelope in envelopes})
        burst = retry.RetryBurst()
        try:
            results = self._retrying(lambda: process_batch(self.processor, envelopes), sessions, burst)
        except TransientStoreError as exc:
            for envelope, line in zip(envelopes, fields, strict=True):
                line |= batch | self._retry_fields(exc, burst, started, envelope)
                with tracing.message_span(envelope) as span:
                    span.record(line, self._span_attributes)
                    log.warning(self._retry_message, extra=line | span.log_fields())
            raise
        _log_recovered(burst, {"session_id": sessions[0] if len(sessions) == 1 else None, **batch})
        duration = _ms_since(started)
        for envelope, line, result in zip(envelopes, fields, results, strict=True):
            line |= self._result_fields(result) | batch | {"duration_ms": duration}
            # each message's own span (continuing its publisher's trace) carries its outcome and gives its
            # log line trace_id/span_id; the batch's store calls are not its children (docs/performance.md)
            with tracing.message_span(envelope) as span:
                span.record(line, self._span_attributes)
                log.info(self._step_message, result.outcome.value, extra=line | span.log_fields())
        return results

    def _retrying(self, work: Callable[[], T], sessions: Sequence[str], burst: retry.RetryBurst) -> T:
        """`work`, with transient store failures retried for up to settings.store_retry_seconds. One
        place for every conflict and outage, whoever raised it (a commit, a parked row that vanished, a
        partition read): what this process cached about the sessions is suspect, so it is evicted after
        each failure and when giving up (the redelivery, maybe on another host, re-reads). An outage
        opens the process's store circuit: this invocation then holds, waiting on it, and the store is
        reopened before each probe (shared/store/circuit.py), not by every waiting session."""

        def evict(exc: TransientStoreError) -> None:
            for session_id in sessions:
                self.store.evict(session_id)

        try:
            return retry.run(
                work,
                self.retry_policy,
                circuit=self.circuit,
                after_failure=evict,
                before_probe=self.store.reopen,
                sleep=self._sleep,
                clock=self._clock,
                burst=burst,
            )
        except TransientStoreError as exc:
            evict(exc)  # also when it never got to try: the redelivery may follow another host's changes
            raise

    def _retry_fields(
        self, exc: TransientStoreError, burst: retry.RetryBurst, started: float, envelope: SessionEnvelope
    ) -> dict[str, Any]:
        """The log fields of a message given back to the host after a retry burst."""
        return {
            "outcome": "retry",
            "error": type(exc).__name__,
            "detail": str(exc)[:300],
            "attempts": burst.attempts,
            "retried_s": round(burst.elapsed_s, 3),
            "duration_ms": _ms_since(started),
            "final_attempt": envelope.delivery_count >= self.settings.max_delivery_count,
        }

    def _result_fields(self, result: ProcessingResult) -> dict[str, Any]:
        b = self.binding
        return {
            b.session_field: result.session_key,
            b.stream_field: result.stream_key,
            "sequence": result.sequence,
            "step": result.step,
            "outcome": result.outcome.value,
            "reason": result.reason.value if result.reason else None,
            "applied_sequences": list(result.applied_sequences),
            "quarantine_ids": list(result.quarantine_ids),
            b.status_field: result.status,
            "parked_steps": result.parked,  # after this message: 0 when the stream waits for nothing
        }

    def _broker_fields(self, envelope: SessionEnvelope) -> dict[str, Any]:
        enqueued = envelope.enqueued_time
        lag_ms = None
        if enqueued is not None:
            aware = enqueued if enqueued.tzinfo else enqueued.replace(tzinfo=UTC)
            lag_ms = round((datetime.now(UTC) - aware).total_seconds() * 1000, 1)
        if envelope.delivery_count >= self.settings.max_delivery_count - 1:
            log.warning(
                "message is near its last delivery attempt",
                extra={
                    "session_id": envelope.session_id,
                    "message_id": envelope.message_id,
                    "delivery_count": envelope.delivery_count,
                    "max_delivery_count": self.settings.max_delivery_count,
                },
            )
        return {
            "session_id": envelope.session_id,
            "message_id": envelope.message_id,
            "delivery_count": envelope.delivery_count,
            "sequence_number": envelope.sequence_number,
            "enqueued_time": enqueued.isoformat() if enqueued else None,
            "lag_ms": lag_ms,
        }

    def purge_idempotency_records(self, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.settings.retention_days)
        purged = self.store.purge_idempotency_records(cutoff)
        log.info("idempotency records purged", extra={"purged": purged, "older_than": cutoff.isoformat()})
        return purged


_service: OrderService | None = None
_service_lock = threading.Lock()


def get_service() -> OrderService:
    """The worker's OrderService, built on first use (not at import: keeps cold start short)."""
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                from shared.settings import merged_environment, validate_app_settings
                from shared.store.factory import open_workflow_store

                settings = validate_app_settings(merged_environment())
                _service = OrderService(settings, open_workflow_store(settings))
    return _service


def reset_service(service: OrderService | None = None) -> None:
    """Replace (tests, local host) or drop the worker's service."""
    global _service
    with _service_lock:
        if _service is not None and service is not _service:
            _service.store.close()
        _service = service


def release_waiting_invocations() -> None:
    """The worker is stopping: invocations holding through a store outage give up now (their messages
    are abandoned and redelivered) rather than keep the process alive for the rest of their budget."""
    with _service_lock:
        if _service is not None:
            _service.circuit.release()


def _log_recovered(burst: retry.RetryBurst, fields: dict[str, Any]) -> None:
    """One line per retry burst that ended well (never one per attempt)."""
    if burst.retried:
        log.warning(
            "store recovered after retries",
            extra={
                **fields,
                "attempts": burst.attempts,
                "retried_s": round(burst.elapsed_s, 3),
                "errors": sorted(set(burst.errors)),
            },
        )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
