"""The end-to-end path as the tests drive it: the publisher's messages sent to one emulator queue, and the
local Functions host on that queue with a SQLite store in the test's tmp_path, no local.settings.json,
and sessions released after half a second idle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.host import LocalHost
from orders_cli.sender import send_messages
from orders_cli.traffic import OutgoingMessage

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


def publish(emulator: Any, queue: str, messages: Sequence[OutgoingMessage]) -> None:
    """Send with the publisher's sender (batched, real SDK) to the emulator, no progress bar."""
    send_messages(
        messages, connection_string=emulator.connection_string, namespace=None, queue=queue, progress=False
    )
