"""`orders publish --jsonl FILE`: publish any workflow's messages, one JSON object per line, in file order.

A line: {"session_id": "...", "message_id": "..." (optional), "body": ...}. `body` is the body's text (a JSON
string, sent as its UTF-8 bytes: what `orders publish --dry-run` writes) or a JSON object or array (sent as
compact JSON); `body_base64` instead sends exact bytes. Without `message_id` the id is the contract's: the
selected workflow (ORDERS_WORKFLOW) parses the body and names it (`message_id(step)`), so a resend of the
same step is the same id. Optional: `content_type` (default application/json), `application_properties`
(string, number or boolean values). The keys `--dry-run` adds for people (kind, expected_outcome, ...) are
accepted and ignored; any other key is an error, so a typo never silently changes an id.

Checks before anything is sent (exit 2, naming the line): a missing or over-long session or message id
(Service Bus allows 128 characters), a body the workflow refuses without an explicit message id, and two
lines with one message id (the queue's duplicate detection would drop the second without an error). The
send itself is the publisher's: same sender, batching, progress bar and duplicate-window warning.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orders_cli.traffic import CONTENT_TYPE, Expected, OutgoingMessage, PublishUsageError

if TYPE_CHECKING:
    from shared.workflows import WorkflowBinding

MAX_ID_LENGTH = 128  # Service Bus: SessionId and MessageId (azure-servicebus _common/message.py)
KNOWN_KEYS = frozenset(
    {"session_id", "message_id", "body", "body_base64", "content_type", "application_properties"}
)
# What `orders publish --dry-run` writes besides those: information for people, not sent.
DRY_RUN_KEYS = frozenset({"kind", "expected_outcome", "expected_reason", "order_id", "sequence", "step"})


class JsonlError(PublishUsageError):
    """A line of the file cannot be published as it is (exit code 2); the message names the line."""


@dataclass(frozen=True, slots=True)
class JsonlMessages:
    messages: list[OutgoingMessage]
    derived_ids: int  # how many message ids came from the contract (the rest were given)


def read_jsonl(path: str, binding: WorkflowBinding) -> JsonlMessages:
    """Every line of `path` (`-`: stdin) as a message to send, in order; JsonlError naming the bad line."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise JsonlError(f"--jsonl {path} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise JsonlError(f"cannot read --jsonl {path}: {exc.strerror or exc}") from None
    messages: list[OutgoingMessage] = []
    first_line_of: dict[str, int] = {}
    derived = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        message, was_derived = _message(line, number, binding)
        earlier = first_line_of.setdefault(message.message_id, number)
        if earlier != number:
            raise JsonlError(
                f"line {number}: message id {message.message_id!r} is also line {earlier}'s; the queue's "
                "duplicate detection would drop it without an error: give it another message_id"
            )
        derived += was_derived
        messages.append(message)
    if not messages:
        raise JsonlError(f"--jsonl {path} holds no messages (one JSON object per line)")
    return JsonlMessages(messages, derived)


def _message(line: str, number: int, binding: WorkflowBinding) -> tuple[OutgoingMessage, bool]:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise JsonlError(f"line {number}: not JSON (column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict):
        raise JsonlError(f"line {number}: must be a JSON object with session_id and body")
    unknown = set(doc) - KNOWN_KEYS - DRY_RUN_KEYS
    if unknown:
        raise JsonlError(
            f"line {number}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(KNOWN_KEYS))}"
        )
    session_id = _id(doc, "session_id", number, required=True)
    body = _body(doc, number)
    content_type = doc.get("content_type", CONTENT_TYPE)
    if not isinstance(content_type, str) or not content_type:
        raise JsonlError(f"line {number}: content_type must be a non-empty string")
    properties = doc.get("application_properties") or {}
    if not isinstance(properties, dict) or not all(
        isinstance(v, str | int | float | bool) for v in properties.values()
    ):
        raise JsonlError(
            f"line {number}: application_properties must map names to strings, numbers or booleans"
        )
    message_id = _id(doc, "message_id", number, required=False)
    derived = message_id is None
    stream_key = sequence = step_name = None
    try:
        step = binding.load().parse(body)
    except Exception as exc:  # ContractError: a body the workflow refuses (poison, on purpose or not)
        if derived:
            detail = getattr(exc, "detail", type(exc).__name__)
            raise JsonlError(
                f"line {number}: the body is not a valid {binding.name} message ({detail}); give the line a "
                "message_id to send it anyway"
            ) from None
    else:
        stream_key, sequence, step_name = step.stream_key, step.sequence, step.name
        if derived:
            message_id = binding.load().message_id(step)
            if len(message_id) > MAX_ID_LENGTH:
                raise JsonlError(
                    f"line {number}: the contract's message id is over {MAX_ID_LENGTH} characters; "
                    "give the line a shorter message_id"
                )
    assert message_id is not None
    message = OutgoingMessage(
        session_id=session_id,
        message_id=message_id,
        body=body,
        content_type=content_type,
        application_properties=dict(properties),
        kind="step",
        expected=Expected("unknown"),  # the file says nothing of what should happen
        order_id=stream_key,
        sequence=sequence,
        step=step_name,
    )
    return message, derived


def _id(doc: dict[str, Any], key: str, number: int, *, required: bool) -> Any:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise JsonlError(f"line {number}: {key} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise JsonlError(
            f"line {number}: {key} is {len(value)} characters; Service Bus allows {MAX_ID_LENGTH}"
        )
    return value


def _body(doc: dict[str, Any], number: int) -> bytes:
    if ("body" in doc) == ("body_base64" in doc):
        raise JsonlError(f"line {number}: give exactly one of body and body_base64")
    if "body_base64" in doc:
        try:
            return base64.b64decode(str(doc["body_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise JsonlError(f"line {number}: body_base64 is not base64") from None
    body = doc["body"]
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape: not UTF-8 text
            raise JsonlError(
                f"line {number}: body is not UTF-8 text; send such bytes as body_base64"
            ) from None
    if isinstance(body, dict | list):
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raise JsonlError(f"line {number}: body must be the body's text (a string) or a JSON object or array")


def summary_rows(messages: Sequence[OutgoingMessage], derived_ids: int) -> list[tuple[str, str]]:
    """What the run sent, beyond the sender's own figures (for the table and the JSON summary)."""
    return [
        ("sessions", str(len({m.session_id for m in messages}))),
        ("message ids from the contract", str(derived_ids)),
        ("message ids from the file", str(len(messages) - derived_ids)),
    ]
