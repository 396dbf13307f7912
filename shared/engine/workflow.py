"""The small interface through which the engine knows a workflow (the order workflow is one).

A workflow parses a body into a typed `Step` (or raises `ContractError`), applies a step to its state (or
raises `StepRefused`), says whether a state is terminal, and turns a state into and from a JSON document.
Everything else (sequencing, duplicates, parking, quarantine, commits) is the engine's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from shared.engine.outcomes import QuarantineReason

if TYPE_CHECKING:
    from shared.engine.ledger import Ledger

S = TypeVar("S")  # a stream's state
P = TypeVar("P")  # a step's payload (the workflow's validated message)
L_co = TypeVar("L_co", bound="Ledger[Any]", covariant=True)  # the workflow's ledger type


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


class StateCodec(Protocol[S, L_co]):
    """What a store needs from a workflow: a state as a JSON-safe document and back, and its ledger type."""

    def state_to_document(self, state: S) -> dict[str, Any]: ...

    def state_from_document(self, doc: Mapping[str, Any]) -> S: ...

    def status(self, state: S) -> str:
        """A short label of the state (logs, views, an indexable store column)."""
        ...

    def new_ledger(self, session_id: str, stream_key: str, state: S) -> L_co:
        """An empty ledger of the workflow's ledger type (a subclass may add typed accessors)."""
        ...


class Workflow(StateCodec[S, "Ledger[S]"], Protocol[S, P]):
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
