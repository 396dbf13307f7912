"""The closed vocabulary of what can happen to a message: one outcome, at most one reason."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"
    QUARANTINED = "quarantined"


class QuarantineReason(StrEnum):
    MALFORMED_JSON = "malformed-json"
    SCHEMA_VIOLATION = "schema-violation"
    SESSION_MISMATCH = "session-mismatch"
    INVALID_TRANSITION = "invalid-transition"
    RULE_VIOLATION = "rule-violation"
    CONFLICTING_DUPLICATE = "conflicting-duplicate"
    RESEQUENCE_OVERFLOW = "resequence-overflow"
    # The store can never hold what the message would write (a key or entity over the store's limit): the
    # detail names the limit. Never retried: the same message would be refused the same way again.
    STORE_LIMIT = "store-limit"
    # Anything else that raised while reading or evaluating the message (the detail names the exception
    # type only): it is quarantined, never retried, since the same bytes would fail the same way again.
    UNPROCESSABLE = "unprocessable"
