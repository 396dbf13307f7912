"""The functions the local host runs: what Azure's worker library reported at indexing
(FunctionMetadataResponse: each function's id, name and raw bindings, the function.json equivalent),
never read from function_app.py by the host itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from devstack.host.worker import LoadedFunction


class DiscoveryError(RuntimeError):
    """The worker reported a function the local host cannot run (no trigger binding)."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    function_id: str  # the worker's id for InvocationRequest.function_id
    trigger_type: str  # binding type, e.g. "serviceBusTrigger", "timerTrigger", "httpTrigger"
    trigger: dict[str, Any]  # the trigger binding as function.json would have it
    trigger_arg: str  # the parameter the trigger payload is passed as
    bindings: tuple[dict[str, Any], ...]
    directory: str


def spec_from_worker(fn: LoadedFunction) -> FunctionSpec:
    """A FunctionSpec from the worker's metadata: the trigger is the binding whose type ends in
    "Trigger", as the host reads it."""
    bindings = tuple(json.loads(raw) for raw in fn.raw_bindings)
    triggers = [b for b in bindings if str(b.get("type", "")).lower().endswith("trigger")]
    if len(triggers) != 1:
        raise DiscoveryError(f"function {fn.name} has {len(triggers)} trigger bindings; it needs exactly one")
    trigger = triggers[0]
    return FunctionSpec(
        name=fn.name,
        function_id=fn.function_id,
        trigger_type=str(trigger.get("type")),
        trigger=trigger,
        trigger_arg=str(trigger.get("name")),
        bindings=bindings,
        directory=fn.directory,
    )


def binding_data_type(binding: dict[str, Any]) -> str:
    """The binding's dataType as the host reads it (case-insensitive enum): "binary", "string", "stream"
    or "" (undefined: the host's default, a string)."""
    value = str(binding.get("dataType") or "").lower()
    return "" if value == "undefined" else value
