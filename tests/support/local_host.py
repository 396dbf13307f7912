"""The local Functions host as the end-to-end tests run it: on one emulator queue, a SQLite store in the
test's tmp_path, no local.settings.json, and sessions released after half a second idle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.host import LocalHost

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_SESSION_IDLE = {"sessionIdleTimeout": "00:00:00.5"}


def local_host(
    emulator: Any,
    queue: str,
    tmp_path: Path,
    *,
    settings: Mapping[str, str] | None = None,
    http_port: int | None = None,
    binding_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> LocalHost:
    """A host (not started) running function_app.py; `settings` adds to or replaces the defaults.

    The store is `tmp_path / "orders.db"`; the settings file named does not exist, so only these
    settings and the environment apply.
    """
    return LocalHost(
        REPO_ROOT,
        settings_path=tmp_path / "no-local.settings.json",
        settings_overrides={
            "ServiceBusConnection": emulator.connection_string,
            "ORDERS_QUEUE_NAME": queue,
            "OrderStoreConnection": f"sqlite:///{tmp_path / 'orders.db'}",
            **(settings or {}),
        },
        host_json_overrides=FAST_SESSION_IDLE,
        http_port=http_port,
        binding_overrides=binding_overrides,
    )
