"""Message ids: the one scheme for every message this project sends to the orders queue.

Why a scheme at all: the queue's duplicate detection (RequiresDuplicateDetection, 10-minute window) is
queue-wide and keyed on the message id alone, and it drops a repeated id *silently* (the send succeeds).
("No other parts of the message other than the MessageId are considered":
https://learn.microsoft.com/azure/service-bus-messaging/duplicate-detection.)
So an id must name exactly one thing to send, across all customers, and it must be deterministic, so that
re-sending the same thing (a publisher retry, a rerun after a crash) is what the broker drops.
Service Bus refuses a message id longer than 128 characters (the SDK raises ValueError before sending:
azure-servicebus `_common/message.py`, `MESSAGE_PROPERTY_MAX_LENGTH = 128` in `_common/constants.py`).

Three derivations, never equal to one another (docs/contract.md, "Message ids"):
  step      `{customer_id}:{order_id}:{sequence}` (`step_message_id`): readable, and unique because ids
            have no `:`; when that text is over 128 characters, `sha256-` + the hex SHA-256 of it (71).
  replay    a name-based UUID (RFC 4122 version 5, 36 characters) of the quarantine record, the body sent
            and the record's previous replay time (`replay_message_id`).
  resubmit  a name-based UUID of the dead-lettered copy's message id and DLQ sequence number
            (`resubmit_message_id`, unchanged since `orders dlq resubmit` was written, so a run interrupted
            before an upgrade derives the same ids after it).
A plain step id holds a `:` and a hashed one starts with `sha256-`; a UUID has neither, and the two
UUIDs use their own namespaces.

The app never reads a message id for a decision (idempotency is (session, order, sequence) + content),
so messages sent with an older id format are processed the same.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

MAX_MESSAGE_ID_LENGTH = 128  # Service Bus (see the module docstring)
SEPARATOR = ":"
HASHED_PREFIX = "sha256-"
# Fixed namespaces of the derived ids (uuid5). RESUBMIT_NAMESPACE's value must never change.
RESUBMIT_NAMESPACE = uuid.UUID("5f0c3a52-6c1e-4d55-9a43-0d7e2b9b8c11")
REPLAY_NAMESPACE = uuid.UUID("0b6f1f4e-9a5d-4c1e-8f3a-6d2c7e41a9b5")


def composite_id(*parts: str | int) -> str:
    """`part:part:...`, or `sha256-{hex}` of that text when it is over 128 characters.

    At least two parts, none empty and none holding `:`: so the text names its parts unambiguously, and a
    plain id holds a `:`, which neither a hashed id (`sha256-` + hex) nor a UUID does."""
    texts = [str(p) for p in parts]
    if len(texts) < 2 or any(not t or SEPARATOR in t for t in texts):
        raise ValueError(f"message id parts must be 2 or more non-empty texts without {SEPARATOR!r}")
    plain = SEPARATOR.join(texts)
    if len(plain) <= MAX_MESSAGE_ID_LENGTH:
        return plain
    return HASHED_PREFIX + hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def step_message_id(customer_id: str, order_id: str, sequence: int) -> str:
    """The id of one order step: unique per queue (customer ids are unique, order ids per customer)."""
    return composite_id(customer_id, order_id, sequence)


def replay_message_id(quarantine_id: str, body: bytes, previous_replay: datetime | None) -> str:
    """The id of one replay of a quarantined message: new (never the original's id, which the queue may
    still remember), the same when a replay that was sent but not marked is run again (the broker then
    drops the second copy), and different for a forced replay after a recorded one (its time is part)."""
    previous = previous_replay.isoformat() if previous_replay is not None else ""
    name = f"{quarantine_id}\n{hashlib.sha256(body).hexdigest()}\n{previous}"
    return str(uuid.uuid5(REPLAY_NAMESPACE, name))


def resubmit_message_id(original_message_id: str | None, dlq_sequence_number: int) -> str:
    """The id of a dead-lettered copy sent back to its queue (shared/dlq.py says why)."""
    return str(uuid.uuid5(RESUBMIT_NAMESPACE, f"{original_message_id or ''}\n{dlq_sequence_number}"))
