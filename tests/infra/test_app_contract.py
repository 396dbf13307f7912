"""Cross-check the app against infra: every connection and %SETTING% the functions use, and every
setting the order store reads (shared.settings), is provided by the Function App's app settings."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra import bicep_rules as rules

_PERCENT = re.compile(r"%([A-Za-z0-9_.:-]+)%")


def _function_app() -> Any:
    if not (rules.REPO_ROOT / "function_app.py").is_file():
        pytest.skip("function_app.py does not exist yet: app/infra cross-check not possible")
    if str(rules.REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(rules.REPO_ROOT))
    try:
        module = importlib.import_module("function_app")
    except ImportError as exc:  # a dependency of the app is missing in this environment
        pytest.skip(f"function_app is not importable yet: {exc}")
    if not hasattr(module, "app"):
        pytest.skip("function_app has no module-level `app` (func.FunctionApp) yet")
    return module


def _functions(app: Any) -> list[Any]:
    """``app.get_functions()`` without tripping its duplicate-name guard.

    FunctionApp.get_functions() remembers every name it built in ``functions_bindings`` and raises
    "does not have a unique function name" when called a second time on the same app (other test
    modules call it too). Build against an empty registry and restore the original afterwards,
    so neither this module nor the others depend on test order.
    """
    saved = getattr(app, "functions_bindings", None)
    try:
        app.functions_bindings = {}
        return list(app.get_functions())
    finally:
        app.functions_bindings = saved


def _bindings(module: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for function in _functions(module.app):
        for binding in function.get_bindings():
            yield function.get_function_name(), binding.get_dict_repr()


def _required_app_settings() -> tuple[str, ...]:
    try:
        settings = importlib.import_module("shared.settings")
    except ImportError as exc:
        pytest.skip(f"shared.settings is not importable yet: {exc}")
    required = getattr(settings, "REQUIRED_APP_SETTINGS", None)
    if required is None:
        pytest.skip("shared.settings.REQUIRED_APP_SETTINGS is not defined yet")
    return tuple(required)


def _provided() -> set[str]:
    parsed = rules.parse_file(rules.MODULES / "functionapp.bicep")
    return set(rules.app_settings(parsed))


def _connection_satisfied(name: str, provided: set[str]) -> bool:
    return name in provided or any(f"{name}{suffix}" in provided for suffix in rules.CONNECTION_SUFFIXES)


def test_every_binding_connection_is_provided() -> None:
    module = _function_app()
    provided = _provided()
    connections = {(fn, b["connection"]) for fn, b in _bindings(module) if b.get("connection")}
    assert connections, "expected at least the Service Bus trigger connection"
    missing = sorted(f"{fn}: {conn}" for fn, conn in connections if not _connection_satisfied(conn, provided))
    assert not missing, f"connections without app settings: {missing}"


def test_every_percent_setting_in_bindings_is_provided() -> None:
    module = _function_app()
    provided = _provided()
    tokens = {
        (fn, token)
        for fn, b in _bindings(module)
        for value in b.values()
        if isinstance(value, str)
        for token in _PERCENT.findall(value)
    }
    missing = sorted(f"{fn}: %{token}%" for fn, token in tokens if token not in provided)
    assert not missing, f"%SETTING% references without app settings: {missing}"


def test_order_store_settings_are_provided() -> None:
    _function_app()
    provided = _provided()
    missing = [name for name in _required_app_settings() if name not in provided]
    assert not missing, f"settings the app reads but infra does not set: {missing}"
    connections = getattr(importlib.import_module("shared.settings"), "CONNECTIONS", ())
    missing_conn = [c for c in connections if not _connection_satisfied(c, provided)]
    assert not missing_conn, f"connections the app uses but infra does not set: {missing_conn}"


def test_session_trigger_matches_session_queue() -> None:
    module = _function_app()
    triggers = [(fn, b) for fn, b in _bindings(module) if b.get("type") == "serviceBusTrigger"]
    assert triggers, "no Service Bus trigger found in function_app"
    queue = rules.props(
        rules.parse_file(rules.MODULES / "servicebus.bicep"), "Microsoft.ServiceBus/namespaces/queues"
    )
    for fn, b in triggers:
        assert bool(b.get("isSessionsEnabled")) is queue["requiresSession"] is True, fn
        assert b.get("queueName") == "%ORDERS_QUEUE_NAME%", fn


def test_always_ready_targets_the_service_bus_function() -> None:
    module = _function_app()
    names = {fn for fn, b in _bindings(module) if b.get("type") == "serviceBusTrigger"}
    default = rules.param_default(rules.parse_file(rules.MODULES / "functionapp.bicep"), "ordersFunctionName")
    assert default in names, f"ordersFunctionName default {default!r} is not a Service Bus function: {names}"
