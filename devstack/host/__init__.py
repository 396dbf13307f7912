"""Local Functions host: runs function_app.py's Service Bus and timer triggers (see docs/local-host.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.host.runtime import HostCounters, LocalHost

__all__ = ["HostCounters", "LocalHost"]


def __getattr__(name: str) -> Any:  # lazy: `import devstack.host` stays cheap for the CLI
    if name in __all__:
        from devstack.host import runtime

        return getattr(runtime, name)
    raise AttributeError(name)
