"""The app's runtime: settings, store and processor built once per worker, plus the per-message
report (one structured log line). `function_app.py` and the local host call into this.

This is where the generic engine is bound to the order workflow (`ORDERS`) and where the engine's
generic result becomes the order log line (customer_id, order_id, order_state).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.settings import AppSettings
from shared.store.base import OrderStore, TransientStoreError

if TYPE_CHECKING:  # the processor (pydantic, the contract) loads on the first message, not at cold start
    from shared.engine.processor import ProcessingResult
    from shared.envelope import SessionEnvelope

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


class OrderService:
    def __init__(self, settings: AppSettings, store: OrderStore) -> None:
        self.settings = settings
        self.store = store
        from shared.engine.processor import StreamProcessor
        from shared.order_workflow import ORDERS

        self.processor = StreamProcessor(store, ORDERS, park_limit=settings.park_limit)

    def handle(self, envelope: SessionEnvelope) -> ProcessingResult:
        """Process one message and log its outcome. Transient store failures are logged and re-raised,
        so the trigger fails and the host abandons the message for redelivery."""
        started = time.perf_counter()
        fields = self._broker_fields(envelope)
        try:
            result = self.processor.process(envelope)
        except TransientStoreError as exc:
            fields |= {
                "outcome": "retry",
                "error": type(exc).__name__,
                "duration_ms": _ms_since(started),
                "final_attempt": envelope.delivery_count >= self.settings.max_delivery_count,
            }
            log.warning("order step will be retried: store failed", extra=fields)
            raise
        fields |= {
            "customer_id": result.session_key,
            "order_id": result.stream_key,
            "sequence": result.sequence,
            "step": result.step,
            "outcome": result.outcome.value,
            "reason": result.reason.value if result.reason else None,
            "applied_sequences": list(result.applied_sequences),
            "quarantine_ids": list(result.quarantine_ids),
            "order_state": result.status,
            "duration_ms": _ms_since(started),
        }
        log.info("order step %s", result.outcome.value, extra=fields)
        return result

    def handle_batch(self, envelopes: Sequence[SessionEnvelope]) -> list[ProcessingResult]:
        """Process one session's batch (cardinality=many): one outcome and one log line per message, one
        store commit. A transient store failure logs a `retry` line per message and re-raises: the
        function fails and the host abandons the whole batch for redelivery."""
        started = time.perf_counter()
        fields = [self._broker_fields(envelope) for envelope in envelopes]
        batch = {"batch_size": len(envelopes)}
        try:
            results = self.processor.process_batch(envelopes)
        except TransientStoreError as exc:
            for envelope, line in zip(envelopes, fields, strict=True):
                line |= batch | {
                    "outcome": "retry",
                    "error": type(exc).__name__,
                    "duration_ms": _ms_since(started),
                    "final_attempt": envelope.delivery_count >= self.settings.max_delivery_count,
                }
                log.warning("order step will be retried: store failed", extra=line)
            raise
        duration = _ms_since(started)
        for line, result in zip(fields, results, strict=True):
            line |= self._result_fields(result) | batch | {"duration_ms": duration}
            log.info("order step %s", result.outcome.value, extra=line)
        return results

    @staticmethod
    def _result_fields(result: ProcessingResult) -> dict[str, Any]:
        return {
            "customer_id": result.session_key,
            "order_id": result.stream_key,
            "sequence": result.sequence,
            "step": result.step,
            "outcome": result.outcome.value,
            "reason": result.reason.value if result.reason else None,
            "applied_sequences": list(result.applied_sequences),
            "quarantine_ids": list(result.quarantine_ids),
            "order_state": result.status,
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
                from shared.order_workflow import ORDERS
                from shared.store.factory import open_store

                settings = AppSettings.load()
                _service = OrderService(settings, open_store(settings, ORDERS))
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
