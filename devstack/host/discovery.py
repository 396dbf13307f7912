"""Find the functions a v2-model `function_app.py` declares, from the FunctionApp's own bindings
(exactly what the Python worker reports to the host), not from hard-coded names."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DiscoveryError(RuntimeError):
    """function_app.py could not be loaded or declares something the local host cannot run."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger_type: str  # binding type, e.g. "serviceBusTrigger", "timerTrigger", "httpTrigger"
    trigger: dict[str, Any]  # the trigger binding as function.json would have it
    trigger_arg: str  # the parameter the trigger payload is passed as
    bindings: tuple[dict[str, Any], ...]
    user_function: Callable[..., Any]
    takes_context: bool
    is_async: bool
    directory: str


def load_function_app(app_dir: Path, module_name: str = "function_app") -> Any:
    """Import `<app_dir>/function_app.py` (app_dir first on sys.path, like the worker) and return
    its FunctionApp (the module-level object with get_functions())."""
    script = app_dir / f"{module_name}.py"
    if not script.is_file():
        raise DiscoveryError(f"no {module_name}.py in {app_dir}")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    existing = sys.modules.get(module_name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() != script.resolve():
        raise DiscoveryError(f"another {module_name} module is already imported from {existing.__file__}")
    module = existing or importlib.import_module(module_name)
    apps = [v for v in vars(module).values() if callable(getattr(v, "get_functions", None))]
    if not apps:
        raise DiscoveryError(f"{script} defines no FunctionApp (func.FunctionApp)")
    if len(apps) > 1:
        raise DiscoveryError(f"{script} defines {len(apps)} FunctionApp objects; the worker allows one")
    return apps[0]


def _app_functions(app: Any) -> list[Any]:
    """app.get_functions() as the worker calls it once at indexing. FunctionApp remembers the names it
    validated and refuses a second call, so that state is set aside and restored: tests or other code in
    the same process may index the app too."""
    has_state = hasattr(app, "functions_bindings")
    saved = getattr(app, "functions_bindings", None)
    if has_state:
        app.functions_bindings = {}
    try:
        return list(app.get_functions())
    finally:
        if has_state:
            app.functions_bindings = saved


def discover_functions(app: Any, directory: str) -> list[FunctionSpec]:
    specs: list[FunctionSpec] = []
    for fn in _app_functions(app):
        trigger = fn.get_trigger()
        if trigger is None:
            continue
        bindings = _indexed_bindings(fn)
        trigger_name = trigger.get_dict_repr().get("name")
        trigger_dict = next((b for b in bindings if b.get("name") == trigger_name), None)
        if trigger_dict is None:
            trigger_dict = _plain(trigger.get_dict_repr())
        user_function = fn.get_user_function()
        params = inspect.signature(user_function).parameters
        specs.append(
            FunctionSpec(
                name=fn.get_function_name(),
                trigger_type=str(trigger_dict.get("type")),
                trigger=trigger_dict,
                trigger_arg=str(trigger_dict.get("name")),
                bindings=bindings,
                user_function=user_function,
                takes_context="context" in params,
                is_async=inspect.iscoroutinefunction(user_function),
                directory=directory,
            )
        )
    return specs


def _indexed_bindings(fn: Any) -> tuple[dict[str, Any], ...]:
    """The bindings as the worker reports them to the host at indexing (`get_raw_bindings()`: the
    function.json equivalent, e.g. `"dataType": "BINARY"`); enum names otherwise."""
    raw = getattr(fn, "get_raw_bindings", None)
    if callable(raw):
        return tuple(json.loads(b) for b in raw())
    return tuple(_plain(b.get_dict_repr()) for b in fn.get_bindings())


def binding_data_type(binding: dict[str, Any]) -> str:
    """The binding's dataType as the host reads it (case-insensitive enum): "binary", "string", "stream"
    or "" (undefined: the host's default, a string)."""
    value = str(binding.get("dataType") or "").lower()
    return "" if value == "undefined" else value


def _plain(value: Any) -> Any:
    """Enum members (BindingDirection, AuthLevel, ...) to their names/values, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and type(value).__module__.startswith("azure.functions"):
        return value.value
    return value
