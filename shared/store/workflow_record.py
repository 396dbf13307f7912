"""Which workflow a store belongs to: every store records the workflow (name + version) that first opened
it and refuses another, so a store of one workflow is never read or written with another's codec.

A store written before records existed has none: the first workflow to open it adopts it, after checking
that it can read a ledger already there (docs/store.md "Which workflow a store holds").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.workflows import WORKFLOW_SETTING, WorkflowRecord


class WorkflowMismatch(ValueError):
    """The store belongs to another workflow (or version): not transient, retrying cannot help."""


def settle(recorded: WorkflowRecord | None, running: WorkflowRecord, where: str) -> WorkflowRecord | None:
    """The record to write (adopting a store without one, or upgrading a version `running` reads), None
    when the record stands as it is; WorkflowMismatch (one line, saying what to do) otherwise."""
    if recorded is None:
        return running
    if not running.accepts(recorded):
        raise WorkflowMismatch(
            f"{where} belongs to workflow {recorded}, not {running}: set {WORKFLOW_SETTING}={recorded.name} "
            f"to use it, or point the store connection at another store for {running.name}"
        )
    return None if recorded.version == running.version else running


def check_readable(
    doc: Mapping[str, Any] | None,
    decode: Callable[[Mapping[str, Any]], object],
    running: WorkflowRecord,
    where: str,
) -> None:
    """Before adopting a store without a record: one of its ledgers must decode with the running workflow."""
    if doc is None:
        return
    try:
        decode(doc)
    except Exception as exc:  # any failure of the workflow's decoder means "not mine"
        raise WorkflowMismatch(
            f"{where} has no workflow record and holds ledgers workflow {running} cannot read "
            f"({type(exc).__name__}): set {WORKFLOW_SETTING} to the workflow that wrote it, or point the "
            "store connection at another store"
        ) from None
