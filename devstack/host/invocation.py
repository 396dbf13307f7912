"""Per-invocation values the host makes: the W3C trace context of InvocationRequest.trace_context (the
worker builds the function's `func.Context` from it, with the invocation id the host chose)."""

from __future__ import annotations

import secrets


def new_trace_parent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
