"""The quarantine replay use case behind `orders quarantine replay`: send a quarantined message again.

Every replay goes out under a NEW message id derived from the record (`shared.message_ids.replay_message_id`:
the record id, the body sent and the record's previous replay time), never under the original id: the
queue's duplicate detection remembers the original for its window (10 min) and would drop the replay
silently while the send reports success. Derived, not random: if the replay was sent but the record could
not be marked (the run stopped, the store failed), running it again sends the same id and the broker drops
that second copy, so the app sees the replay once. A forced replay of a replayed record gets another id.

A corrected body the app would quarantine again (the workflow's `parse` refuses it, or it names another
session) is refused unless forced; a record whose body was too large to keep needs a body to send. The
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
from shared.message_ids import replay_message_id
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


def replay(
    store: OrderStore,
    record: QuarantineRecord,
    send: Callable[[ReplayMessage], None],
    *,
    parse: Parse,
    corrected: bytes | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> ReplayMessage:
    """Send `record` again (or `corrected` in its place) through `send` under a derived message id, then
    mark it replayed."""
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
        if not force:
            check_corrected_body(corrected, record.session_id, parse)
        body = corrected
    else:
        body = record.raw_body
    message_id = replay_message_id(record.id, body, record.replayed_at)
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
    try:
        store.mark_replayed(record.id, now)
    except Exception as exc:
        raise ReplayError(
            f"{record.id} was sent as message id {message_id}, but marking it replayed failed "
            f"({_describe(exc)}); run the same replay again to mark it (the queue drops the repeated id "
            "within its duplicate window, so the app sees it once)"
        ) from exc
    return message


def _describe(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
