"""The quarantine replay use case behind `orders quarantine replay`: send a quarantined message again.

The original body is re-sent under its original message id (the app then sees the same message again),
or under a new one when asked; a corrected body always gets a new id (`replay_message_id`), so the
queue's duplicate detection does not take it for the original. A corrected body the app would quarantine
again is refused unless forced. The record is marked replayed only after the send succeeded.

Like shared/dlq.py this knows nothing of argparse, rich or the SDK: the caller passes a send function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contract import ContractError, parse_order_step
from shared.records import QuarantineRecord, utcnow
from shared.store.base import OrderStore

REPLAYED_FROM = "replayed-from"  # application property: the quarantine id the message was replayed from


class ReplayError(Exception):
    """A replay that cannot or must not happen, as one line."""


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """What to send: the session, the id, the body and the original's application properties."""

    session_id: str
    message_id: str
    body: bytes
    application_properties: dict[str, Any] = field(default_factory=dict)
    order_id: str | None = None
    sequence: int | None = None
    step: str | None = None
    corrected: bool = False


def replay_message_id(record: QuarantineRecord, body: bytes | None, now: datetime) -> str:
    """Message id for a replay. The original body keeps its message id (the app then sees the same
    message again); a corrected body gets `{order_id}:{sequence}:replay-{UTC time}` so the queue's
    duplicate detection does not take it for the original."""
    order_id, sequence = record.order_id, record.sequence
    if body is not None:
        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                order_id = doc.get("order_id", order_id)
                sequence = doc.get("sequence", sequence)
        except ValueError:
            pass
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    base = f"{order_id}:{sequence}" if order_id and sequence is not None else record.message_id
    return f"{base}:replay-{stamp}"[-128:]


def check_corrected_body(body: bytes, session_id: str) -> None:
    """Refuse a corrected body the app would quarantine again."""
    try:
        message = parse_order_step(body)
    except ContractError as exc:
        raise ReplayError(
            f"corrected body would be quarantined again ({exc.reason}: {exc.detail}); --force sends it anyway"
        ) from None
    if message.customer_id != session_id:
        raise ReplayError(
            f"corrected body's customer_id is not the session id {session_id!r} (session-mismatch); "
            "--force sends it anyway"
        )


def replay(
    store: OrderStore,
    record: QuarantineRecord,
    send: Callable[[ReplayMessage], None],
    *,
    corrected: bytes | None = None,
    new_message_id: bool = False,
    force: bool = False,
    now: datetime | None = None,
) -> ReplayMessage:
    """Send `record` again (or `corrected` in its place) through `send`, then mark it replayed."""
    if not record.session_id:
        raise ReplayError(f"quarantined message {record.id} has no session id; cannot replay it")
    if record.status == "replayed" and not force:
        raise ReplayError(
            f"{record.id} was already replayed at {record.replayed_at}; pass --force to replay again"
        )
    now = now or utcnow()
    if corrected is not None:
        if not force:
            check_corrected_body(corrected, record.session_id)
        body, message_id = corrected, replay_message_id(record, corrected, now)
    else:
        body = record.raw_body
        message_id = replay_message_id(record, None, now) if new_message_id else record.message_id
    props = {
        str(k): v
        for k, v in (record.metadata.get("application_properties") or {}).items()
        if isinstance(v, str | int | float | bool)
    }
    props[REPLAYED_FROM] = record.id
    message = ReplayMessage(
        session_id=record.session_id,
        message_id=message_id,
        body=body,
        application_properties=props,
        order_id=record.order_id,
        sequence=record.sequence,
        step=record.step,
        corrected=corrected is not None,
    )
    send(message)
    store.mark_replayed(record.id, now)
    return message
