"""Translate Azure Functions types into the app's own: the only module of `shared` importing them."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from shared.envelope import SessionEnvelope


def envelope_from_message(msg: func.ServiceBusMessage) -> SessionEnvelope:
    """Broker metadata from the trigger, body as raw bytes (parsed later, so bad bodies are kept whole).

    The trigger is declared `dataType: binary`, so the host copies nothing from the body into these fields:
    the body never decides the session, message id or delivery count (docs/local-host.md)."""
    props: Any = getattr(msg, "application_properties", None) or getattr(msg, "user_properties", None) or {}
    return SessionEnvelope(
        body=msg.get_body(),
        session_id=msg.session_id or "",
        message_id=msg.message_id or "",
        delivery_count=int(getattr(msg, "delivery_count", None) or 1),
        sequence_number=getattr(msg, "sequence_number", None),
        enqueued_time=getattr(msg, "enqueued_time_utc", None),
        content_type=msg.content_type,
        correlation_id=msg.correlation_id,
        application_properties=dict(props),
    )
