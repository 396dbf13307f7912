"""The small interface through which the engine knows a workflow (the order workflow is one).

A workflow parses a body into a typed `Step` (or raises `ContractError`), applies a step to its state (or
raises `StepRefused`), says whether a state is terminal, and turns a state into and from a JSON document.
Everything else (sequencing, duplicates, parking, quarantine, commits) is the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

# StateCodec lives with the ledger it encodes (ledger.py imports nothing from here: no import cycle).
from shared.engine.ledger import Ledger, StateCodec
from shared.engine.outcomes import QuarantineReason

S = TypeVar("S")  # a stream's state
P = TypeVar("P")  # a step's payload (the workflow's validated message)


@dataclass(frozen=True, slots=True)
class Step(Generic[P]):
    """One parsed message: where it belongs, its place in its stream, and the workflow's own payload."""

    session_key: str  # the session the body claims; the engine checks it against the broker's session id
    stream_key: str  # the stream inside the session (one ledger per stream)
    sequence: int  # 1, 2, 3, ... within the stream
    name: str  # the step's name, for logs and the ledger's history
    content_hash: str  # of the validated content: same content -> same hash, whatever the formatting
    payload: P


class ContractError(Exception):
    """The body is not a valid message of the workflow; `reason` is the quarantine reason code."""

    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class StepRefused(Exception):
    """The workflow refuses a well-formed step in its turn (a domain rule); nothing changes."""

    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Workflow(StateCodec[S, Ledger[S]], Protocol[S, P]):
    """A workflow as the engine sees it."""

    def parse(self, body: bytes) -> Step[P]:
        """The validated step, or raise ContractError. Details never echo input values."""
        ...

    def initial_state(self, session_id: str, stream_key: str) -> S:
        """The state of a stream that has seen no step yet."""
        ...

    def apply(self, state: S, step: Step[P]) -> S:
        """The next state, or raise StepRefused. Pure: no I/O."""
        ...

    def is_terminal(self, state: S) -> bool:
        """A terminal stream takes no more steps: later ones are quarantined, parked ones too."""
        ...
