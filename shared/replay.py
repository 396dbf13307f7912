"""The quarantine replay use case behind `orders quarantine replay`: send a quarantined message again.

The original body is re-sent under its original message id (the app then sees the same message again),
or under a new one when asked; a corrected body always gets a new id (`replay_message_id`), so the
queue's duplicate detection does not take it for the original. A corrected body the app would quarantine
again (the workflow's `parse` refuses it, or it names another session) is refused unless forced; a record
whose body was too large to keep needs a body to send. The
record is marked replayed only after the send succeeded.

Like shared/dlq.py this knows nothing of argparse, rich or the SDK, nor of orders: the caller passes a
send function and the workflow's `parse` (shared.order_workflow.ORDERS.parse for this app).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.engine.records import QuarantineRecord, utcnow
from shared.engine.workflow import ContractError, Step
from shared.envelope import MAX_BODY_BYTES
from shared.store.base import OrderStore

Parse = Callable[[bytes], Step[Any]]  # a workflow's parse: body -> step, or ContractError
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
    stream_key: str | None = None
    sequence: int | None = None
    step: str | None = None
    corrected: bool = False


def replay_message_id(record: QuarantineRecord, step: Step[Any] | None, now: datetime) -> str:
    """Message id for a replay under a new id: `{stream_key}:{sequence}:replay-{UTC time}`, from the
    corrected body's step when there is one (else from the record), so the queue's duplicate detection
    does not take it for the original."""
    stream_key, sequence = record.stream_key, record.sequence
    if step is not None:
        stream_key, sequence = step.stream_key, step.sequence
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    base = f"{stream_key}:{sequence}" if stream_key and sequence is not None else record.message_id
    return f"{base}:replay-{stamp}"[-128:]


def body_not_kept(record: QuarantineRecord) -> str:
    """A body over the record's bound (MAX_BODY_BYTES) is kept only as its size and SHA-256."""
    size = "unknown size" if record.body_size is None else f"{record.body_size} bytes"
    sha = f", sha256 {record.body_sha256}" if record.body_sha256 else ""
    return f"body not kept: {size}{sha} (over the {MAX_BODY_BYTES // 1024} KiB a record keeps)"


def check_corrected_body(body: bytes, session_id: str, parse: Parse) -> Step[Any]:
    """The corrected body's step; refused when the app would quarantine it again."""
    try:
        step = parse(body)
    except ContractError as exc:
        raise ReplayError(
            f"corrected body would be quarantined again ({exc.reason}: {exc.detail}); --force sends it anyway"
        ) from None
    if step.session_key != session_id:
        raise ReplayError(
            f"corrected body's session ({step.session_key!r}) is not the session id {session_id!r} "
            "(session-mismatch); --force sends it anyway"
        )
    return step


def _step_or_none(body: bytes, parse: Parse) -> Step[Any] | None:
    try:
        return parse(body)
    except ContractError:
        return None


def replay(
    store: OrderStore,
    record: QuarantineRecord,
    send: Callable[[ReplayMessage], None],
    *,
    parse: Parse,
    corrected: bytes | None = None,
    new_message_id: bool = False,
    force: bool = False,
    now: datetime | None = None,
) -> ReplayMessage:
    """Send `record` again (or `corrected` in its place) through `send`, then mark it replayed."""
    if not record.session_id:
        raise ReplayError(f"quarantined message {record.id} has no session id; cannot replay it")
    if corrected is None and record.body_encoding == "omitted":
        raise ReplayError(f"{record.id}: {body_not_kept(record)}; pass the body to send with --body-file")
    if record.status == "replayed" and not force:
        raise ReplayError(
            f"{record.id} was already replayed at {record.replayed_at}; pass --force to replay again"
        )
    now = now or utcnow()
    if corrected is not None:
        step = (
            _step_or_none(corrected, parse)
            if force
            else check_corrected_body(corrected, record.session_id, parse)
        )
        body, message_id = corrected, replay_message_id(record, step, now)
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
        stream_key=record.stream_key,
        sequence=record.sequence,
        step=record.step,
        corrected=corrected is not None,
    )
    send(message)
    store.mark_replayed(record.id, now)
    return message
