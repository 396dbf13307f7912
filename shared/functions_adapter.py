"""Translate Azure Functions types into the app's own: the only module of `shared` importing them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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


# Optional string members the host may send shorter than the batch: it drops null and empty strings from
# string[] trigger metadata (collection_string), so a message without a content type or correlation id
# shifts every later element. Broker identity (MessageIdArray, SessionIdArray) is never null.
_SHIFTABLE = (("ContentTypeArray", "content_type"), ("CorrelationIdArray", "correlation_id"))


def envelopes_from_messages(msgs: Sequence[func.ServiceBusMessage]) -> list[SessionEnvelope]:
    """A cardinality=many batch: each message's envelope, except that content type and correlation id
    are left out (None) when the host's array for them does not have one element per message."""
    envelopes = [envelope_from_message(m) for m in msgs]
    metadata: Any = (getattr(msgs[0], "metadata", None) or {}) if msgs else {}
    shifted = {
        field
        for array, field in _SHIFTABLE
        if isinstance(metadata.get(array), list) and len(metadata[array]) != len(msgs)
    }
    if "content_type" in shifted:
        envelopes = [replace(e, content_type=None) for e in envelopes]
    if "correlation_id" in shifted:
        envelopes = [replace(e, correlation_id=None) for e in envelopes]
    return envelopes
