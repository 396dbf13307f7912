"""How AMQP outcomes and management bodies carry Service Bus settlement details.

Service Bus maps the receiver's outcome on a peek-locked delivery to a settlement: accepted completes,
rejected dead-letters, modified abandons (with undeliverable-here it defers), released unlocks
without counting a delivery attempt. The
SDKs put their `propertiesToModify` in a modified outcome's message-annotations and the dead-letter
reason/description in a rejection's error info. See docs/emulator.md for the sources.
"""

from __future__ import annotations

from typing import Any

from .codec import Described
from .frames import field

DEAD_LETTER_CONDITION = "com.microsoft:dead-letter"
DEAD_LETTER_REASON = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"


def property_changes(raw: Any) -> dict[str, Any]:
    """A `modified` outcome's message-annotations (or a rejection's extra info) as application-property
    updates: how the SDKs' abandon/defer/dead-letter `propertiesToModify` reach the broker."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if k is not None}


def dead_letter_fields(error: Any) -> tuple[str | None, str | None, dict[str, Any]]:
    """(reason, description, property changes) from a `rejected` outcome's error.

    The SDKs send condition com.microsoft:dead-letter with DeadLetterReason/DeadLetterErrorDescription
    in the error's info (the JS SDK adds propertiesToModify there too). A plain AMQP client's own
    condition and description become the reason and description.
    """
    if not isinstance(error, Described) or not isinstance(error.value, list):
        return None, None, {}
    condition = field(error.value, 0)
    description = field(error.value, 1)
    info = property_changes(field(error.value, 2))
    reason = info.pop(DEAD_LETTER_REASON, None)
    desc = info.pop(DEAD_LETTER_DESCRIPTION, None)
    if reason is None and condition is not None and str(condition) != DEAD_LETTER_CONDITION:
        reason = str(condition)
    if desc is None and description is not None:
        desc = str(description)
    return (
        str(reason) if reason is not None else None,
        str(desc) if desc is not None else None,
        info,
    )
