"""The app's runtime: settings, store and processor built once per worker, plus the per-message
report (one structured log line). `function_app.py` and the local host call into this."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.settings import AppSettings
from shared.store.base import OrderStore, TransientStoreError

if TYPE_CHECKING:  # the processor (pydantic, the contract) loads on the first message, not at cold start
    from shared.envelope import SessionEnvelope
    from shared.processing import ProcessingResult
    from shared.tracing import MessageSpan

log = logging.getLogger("orders.processing")

# The fields every per-message log line carries (the operations runbook's KQL relies on them).
MESSAGE_LOG_FIELDS: tuple[str, ...] = (
    "session_id",
    "message_id",
    "delivery_count",
    "sequence_number",
    "enqueued_time",
    "lag_ms",
    "customer_id",
    "order_id",
    "sequence",
    "step",
    "outcome",
    "reason",
    "duration_ms",
)
# Plus `trace_id` and `span_id` of the message's span (shared/tracing.py): the JSON formatter writes
# them at the top of the line, next to `invocation_id`, not under "extra".


class OrderService:
    def __init__(self, settings: AppSettings, store: OrderStore) -> None:
        self.settings = settings
        self.store = store
        from shared.processing import OrderStepProcessor
        from shared.tracing import traced_store

        self.processor = OrderStepProcessor(traced_store(store), park_limit=settings.park_limit)

    def handle(self, envelope: SessionEnvelope) -> ProcessingResult:
        """Process one message in its own span, continuing the publisher's trace (shared/tracing.py)."""
        from shared import tracing

        with tracing.message_span(envelope) as span:
            return self._process_and_log(envelope, span)

    def _process_and_log(self, envelope: SessionEnvelope, span: MessageSpan) -> ProcessingResult:
        """Process one message and log its outcome. Transient store failures are logged and re-raised,
        so the trigger fails and the host abandons the message for redelivery."""
        started = time.perf_counter()
        fields = self._broker_fields(envelope) | span.log_fields()
        try:
            result = self.processor.process(envelope)
        except TransientStoreError as exc:
            fields |= {
                "outcome": "retry",
                "error": type(exc).__name__,
                "duration_ms": _ms_since(started),
                "final_attempt": envelope.delivery_count >= self.settings.max_delivery_count,
            }
            span.record(fields)
            log.warning("order step will be retried: store failed", extra=fields)
            raise
        fields |= {
            "customer_id": result.customer_id,
            "order_id": result.order_id,
            "sequence": result.sequence,
            "step": result.step,
            "outcome": result.outcome.value,
            "reason": result.reason.value if result.reason else None,
            "applied_sequences": list(result.applied_sequences),
            "quarantine_ids": list(result.quarantine_ids),
            "order_state": result.order_state,
            "duration_ms": _ms_since(started),
        }
        span.record(fields)
        log.info("order step %s", result.outcome.value, extra=fields)
        return result

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
                from shared.store.factory import open_store

                settings = AppSettings.load()
                _service = OrderService(settings, open_store(settings))
    return _service


def reset_service(service: OrderService | None = None) -> None:
    """Replace (tests, local host) or drop the worker's service."""
    global _service
    with _service_lock:
        if _service is not None and service is not _service:
            _service.store.close()
        _service = service


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
