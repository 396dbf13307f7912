"""The one place a workflow is bound to the app: which workflow runs, and what it is called outside the
engine (log fields, span attributes, views, the HTTP route, the store's workflow record).

`ORDERS_WORKFLOW` selects it: `orders` (the default), `accounts` (shared/examples/accounts.py), or
`package.module:NAME` for a `WorkflowBinding` of your own (docs/adapting.md). The service, the operator
CLI, function_app.py, the traces and the stores all ask `selected_binding()`; nothing else names order
fields. This module is light on purpose (function_app imports it at cold start): a binding names its
workflow object by import path, loaded on first use.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from shared.engine.ledger import Ledger
    from shared.engine.workflow import Step

WORKFLOW_SETTING = "ORDERS_WORKFLOW"
DEFAULT_WORKFLOW = "orders"

S = TypeVar("S", contravariant=True)
P = TypeVar("P")


class AppWorkflow(Protocol[S, P]):
    """What the app asks of a workflow beyond the engine's `Workflow`: its own fields for the read model
    and the contract's message id of a step. (A Protocol can extend only protocols; the engine's part is
    checked where the binding loads it.)"""

    def view(self, state: S) -> dict[str, Any]:
        """The state's own fields for `orders status --json` and the HTTP endpoint (ids and amounts only)."""
        ...

    def message_id(self, step: Step[P]) -> str:
        """The contract's message id of a step (what the publisher sends it under)."""
        ...

    def examples(self, session_id: str, stream_key: str) -> list[bytes]:
        """The bodies of one complete stream, in sequence (smoke tests and the guide's first run)."""
        ...


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """Which workflow wrote a store: its name and the version of its stored documents. A store refuses a
    workflow with another name, or a version it was not written with unless the running workflow `reads`
    that version (then the record is upgraded on first open)."""

    name: str
    version: str
    reads: tuple[str, ...] = ()  # older versions of stored documents this version can read

    def accepts(self, recorded: WorkflowRecord) -> bool:
        return recorded.name == self.name and (
            recorded.version == self.version or recorded.version in self.reads
        )

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True, slots=True)
class WorkflowBinding:
    """A workflow and its names outside the engine. Field names are log-line keys, span attributes
    (`{name}.{field}`) and view keys; labels are for people (CLI tables)."""

    name: str  # the registry name, the store record's name and the span attribute prefix
    version: str  # of the stored state documents; bump it when they change shape
    workflow_path: str  # "package.module:NAME" of the object implementing Workflow and AppWorkflow
    session_field: str  # e.g. customer_id: the session key in log lines, views, the HTTP route
    stream_field: str  # e.g. order_id: the stream key
    status_field: str  # e.g. order_state: the stream's status label in log lines
    session_label: str  # e.g. customer (CLI headings)
    stream_label: str  # e.g. order
    stream_plural: str  # e.g. orders (the HTTP route, CLI headings)
    session_plural: str  # e.g. customers
    reads_versions: tuple[str, ...] = ()

    @property
    def record(self) -> WorkflowRecord:
        return WorkflowRecord(self.name, self.version, self.reads_versions)

    @property
    def log_message(self) -> str:
        """The per-message log line's message prefix, e.g. `order step applied`."""
        return f"{self.stream_label} step"

    @property
    def http_route(self) -> str:
        """`customers/{customer_id}/orders`: one session's streams through the read model."""
        return f"{self.session_plural}/{{{self.session_field}}}/{self.stream_plural}"

    @property
    def http_function_name(self) -> str:
        return f"get_{self.session_label}_{self.stream_plural}"

    def result_fields(self) -> tuple[str, ...]:
        """The per-message log line's result fields, in order (the service fills them)."""
        return (self.session_field, self.stream_field, "sequence", "step", "outcome", "reason")

    def span_attributes(self) -> dict[str, str]:
        """Log field -> span attribute of the processing span (ids and labels only, never payloads)."""
        keys = (*self.result_fields(), self.status_field, "error")
        return {key: f"{self.name}.{key}" for key in keys}

    def load(self) -> Any:
        """The workflow object (imported on first use, then cached)."""
        return _load_object(self.workflow_path)

    def ledger_keys(self, ledger: Ledger[Any]) -> dict[str, str]:
        return {self.session_field: ledger.session_id, self.stream_field: ledger.stream_key}


ORDERS = WorkflowBinding(
    name="orders",
    version="1",
    workflow_path="shared.order_workflow:ORDERS",
    session_field="customer_id",
    stream_field="order_id",
    status_field="order_state",
    session_label="customer",
    stream_label="order",
    stream_plural="orders",
    session_plural="customers",
)

ACCOUNTS = WorkflowBinding(
    name="accounts",
    version="1",
    workflow_path="shared.examples.accounts:ACCOUNTS",
    session_field="owner_id",
    stream_field="account_id",
    status_field="account_state",
    session_label="owner",
    stream_label="account",
    stream_plural="accounts",
    session_plural="owners",
)

# The log-line fields every workflow's lines carry besides its own three (shared/service.py fills them).
GENERIC_LOG_FIELDS: tuple[str, ...] = (
    "session_id",
    "message_id",
    "delivery_count",
    "sequence_number",
    "enqueued_time",
    "lag_ms",
    "sequence",
    "step",
    "outcome",
    "reason",
    "duration_ms",
)

# Short names ORDERS_WORKFLOW accepts; anything else must be `package.module:NAME` of a WorkflowBinding.
REGISTRY: dict[str, WorkflowBinding] = {b.name: b for b in (ORDERS, ACCOUNTS)}

_FIELD = re.compile(r"[a-z][a-z0-9_]{0,62}")
_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_cache: dict[str, Any] = {}
_lock = threading.Lock()


class WorkflowSettingError(ValueError):
    """ORDERS_WORKFLOW names no usable workflow (shared.settings turns it into a SettingsError)."""


def binding_named(value: str) -> WorkflowBinding:
    """The binding a value of ORDERS_WORKFLOW names, checked; WorkflowSettingError (one line) otherwise."""
    name = value.strip()
    if name in REGISTRY:
        return REGISTRY[name]
    if not _PATH.fullmatch(name):
        known = ", ".join(sorted(REGISTRY))
        raise WorkflowSettingError(
            f"{WORKFLOW_SETTING} must be one of {known} or package.module:NAME of a WorkflowBinding, "
            f"not {value!r}"
        )
    try:
        binding = _load_object(name)
    except (ImportError, AttributeError) as exc:
        raise WorkflowSettingError(f"{WORKFLOW_SETTING}={name}: cannot import it ({exc})") from None
    if not isinstance(binding, WorkflowBinding):
        raise WorkflowSettingError(
            f"{WORKFLOW_SETTING}={name} is a {type(binding).__name__}, not a WorkflowBinding"
        )
    check_binding(binding)
    return binding


def check_binding(binding: WorkflowBinding) -> None:
    """Names that end up as log keys, span attributes and the HTTP route must be plain."""
    for what in ("session_field", "stream_field", "status_field", "name"):
        value = getattr(binding, what)
        if not _FIELD.fullmatch(value):
            raise WorkflowSettingError(f"workflow {binding.name!r}: {what} {value!r} is not a plain name")
    fields = {binding.session_field, binding.stream_field, binding.status_field}
    if len(fields) != 3 or fields & set(GENERIC_LOG_FIELDS):
        raise WorkflowSettingError(
            f"workflow {binding.name!r}: its field names must differ from each other and from "
            f"{', '.join(GENERIC_LOG_FIELDS)}"
        )


def selected_binding(values: Mapping[str, str]) -> WorkflowBinding:
    """The binding ORDERS_WORKFLOW selects in these settings (default `orders`); see AppSettings.binding."""
    return binding_named(values.get(WORKFLOW_SETTING) or DEFAULT_WORKFLOW)


def _load_object(path: str) -> Any:
    with _lock:
        if path not in _cache:
            module, _, attribute = path.partition(":")
            _cache[path] = getattr(importlib.import_module(module), attribute)
        return _cache[path]
